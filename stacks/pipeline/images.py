"""The container images the pipeline runs: the built-in algorithms' (by region) and the prep job's (built from
the repository at deploy time)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_cdk import Aws, CfnMapping, CfnRule, CfnRuleAssertion, Fn, IgnoreMode, Stack
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from constructs import Construct, IConstruct

from contract.algorithms import MODELS
from stacks.functions import ROOT, code_asset

ALGORITHM_IMAGES: dict[str, Any] = json.loads((ROOT / "stacks" / "algorithm_images.json").read_text())
# The prep image's build context: these folders of the repository, under their repository paths.
PREP_IMAGE_FOLDERS = ("jobs", "contract", "fm")
PREP_DOCKERFILE = Path("jobs") / "prep" / "Dockerfile"


def _registry(scope: IConstruct, model: str) -> str:
    """The account of the built-in algorithm's registry in the deploying region, from a CfnMapping generated
    from the SageMaker SDK (tools/generate_algorithm_images.py), so synth needs neither the SDK nor a
    region."""
    stack = Stack.of(scope)
    mapping = stack.node.try_find_child("AlgorithmImages")
    if not isinstance(mapping, CfnMapping):
        mapping = CfnMapping(stack, "AlgorithmImages", mapping=ALGORITHM_IMAGES["registries"])
        # An environment-agnostic stack learns its region at deploy: refuse any other region there, with one
        # line, before CloudFormation's own error for the missing mapping key (stacks/config.py refuses it
        # at synth when the region is configured).
        regions = sorted(ALGORITHM_IMAGES["registries"])
        CfnRule(
            stack,
            "SupportedRegion",
            assertions=[
                CfnRuleAssertion(
                    assert_=Fn.condition_contains(regions, Aws.REGION),
                    assert_description="loftrec deploys only to a region with both built-in algorithm "
                    "images: " + ", ".join(regions),
                )
            ],
        )
    return mapping.find_in_map(Aws.REGION, model)


def algorithm_image(scope: Construct, model: str) -> str:
    """The built-in algorithm's image URI in the deploying region."""
    repository = ALGORITHM_IMAGES["repositories"][model]
    return Fn.join(
        "",
        [
            _registry(scope, model),
            ".dkr.ecr.",
            Aws.REGION,
            ".",
            Aws.URL_SUFFIX,
            f"/{repository}:",
            ALGORITHM_IMAGES["tag"],
        ],
    )


def grant_algorithm_pulls(role: iam.IRole) -> None:
    """Let the execution role pull the built-in algorithms' images. SageMaker pulls a job's or model's image
    as the execution role, and checks at CreateTrainingJob that the role "has proper pull permissions for
    SageMaker: ecr:BatchCheckLayerAvailability, ecr:BatchGetImage, ecr:GetDownloadUrlForLayer" on the
    repository, another account's included (the ValidationException quoted in
    https://github.com/wpilibsuite/DetectCoral/issues/37); AWS's guide scopes these actions "to the
    AlgorithmSpecification.TrainingImage value" and "the PrimaryContainer.Image value"
    (https://docs.aws.amazon.com/sagemaker/latest/dg/sagemaker-roles.html). The two repositories in AWS's
    registry accounts of the region, nothing else."""
    repositories = [
        Fn.join(
            "",
            [
                f"arn:{Aws.PARTITION}:ecr:{Aws.REGION}:",
                _registry(role, model),
                f":repository/{ALGORITHM_IMAGES['repositories'][model]}",
            ],
        )
        for model in MODELS
    ]
    role.add_to_principal_policy(
        iam.PolicyStatement(
            actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
            resources=repositories,
        )
    )


def prep_image(scope: Construct, construct_id: str) -> ecr_assets.DockerImageAsset:
    """The prep job's image, built for SageMaker Processing's platform from jobs/ and contract/."""
    return ecr_assets.DockerImageAsset(
        scope,
        construct_id,
        directory=str(ROOT),
        file=str(PREP_DOCKERFILE),
        exclude=code_asset(PREP_IMAGE_FOLDERS),
        ignore_mode=IgnoreMode.DOCKER,
        platform=ecr_assets.Platform.LINUX_AMD64,
    )
