"""The container images the pipeline runs: the built-in algorithms' (by region) and the prep job's (built from
the repository at deploy time)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_cdk import Aws, CfnMapping, Fn, IgnoreMode, Stack
from aws_cdk import aws_ecr_assets as ecr_assets
from constructs import Construct

from stacks.functions import ROOT, code_asset

ALGORITHM_IMAGES: dict[str, Any] = json.loads((ROOT / "stacks" / "algorithm_images.json").read_text())
# The prep image's build context: these folders of the repository, under their repository paths.
PREP_IMAGE_FOLDERS = ("jobs", "contract", "fm")
PREP_DOCKERFILE = Path("jobs") / "prep" / "Dockerfile"


def algorithm_image(scope: Construct, model: str) -> str:
    """The built-in algorithm's image URI in the deploying region, from a CfnMapping generated from the
    SageMaker SDK (tools/generate_algorithm_images.py), so synth needs neither the SDK nor a region."""
    stack = Stack.of(scope)
    mapping = stack.node.try_find_child("AlgorithmImages")
    if not isinstance(mapping, CfnMapping):
        mapping = CfnMapping(stack, "AlgorithmImages", mapping=ALGORITHM_IMAGES["registries"])
    account = mapping.find_in_map(Aws.REGION, model)
    repository = ALGORITHM_IMAGES["repositories"][model]
    return Fn.join(
        "",
        [account, ".dkr.ecr.", Aws.REGION, ".", Aws.URL_SUFFIX, f"/{repository}:", ALGORITHM_IMAGES["tag"]],
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
