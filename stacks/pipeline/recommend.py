"""Phase 4, batch recommendations: the top-k products of every customer of an approved run, written to
runs/<id>/recommendations/ before any endpoint changes ("Batch recommendations"): a SageMaker Processing job
on the prep image running `python -m jobs.recommend` on the run's serving factors and index, ranked with the
popularity weight "Export FM factors" chose on the validation rows."""

from __future__ import annotations

from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from contract import layout
from stacks.pipeline import asl, paths
from stacks.pipeline.shared import (
    TAGS,
    Fallible,
    SharedResources,
    run_sagemaker_jobs,
    start_sagemaker_work,
    volume_key,
)

RECOMMENDATIONS_PER_CUSTOMER = 10
ENTRYPOINT = ["python", "-m", "jobs.recommend"]


def recommend_arguments() -> str:
    """The job's arguments (jobs/recommend/__main__.py): the container paths Processing mounts, k, and the
    run's popularity weight (a number in the execution's state: States.Format makes it the string an
    argument is)."""
    fixed = [
        "--factors",
        layout.RECOMMEND_CONTAINER_FACTORS,
        "--index",
        layout.RECOMMEND_CONTAINER_INDEX,
        "--output",
        layout.RECOMMEND_CONTAINER_OUTPUT,
        "--k",
        str(RECOMMENDATIONS_PER_CUSTOMER),
        "--failure-message",
        layout.CONTAINER_FAILURE_MESSAGE,
    ]
    weight = f"States.Format('{{}}', {paths.export('ranking', 'popularity_weight')})"
    return "States.Array(" + ", ".join(f"'{a}'" for a in fixed) + f", '--popularity-weight', {weight})"


def _input(name: str, path: str, local_path: str) -> dict[str, object]:
    return {
        "InputName": name,
        "S3Input": {
            "S3Uri.$": paths.in_run(path),
            "LocalPath": local_path,
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated",
        },
    }


class BatchRecommendations(sfn.StateMachineFragment):
    """Batch recommendations: one Processing job; its failure is notified before any endpoint changed."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        shared: SharedResources,
        image: ecr_assets.DockerImageAsset,
    ) -> None:
        super().__init__(scope, construct_id)
        self._shared = shared
        config, key = shared.config, shared.storage.key
        self._job = asl.task(
            self,
            "Batch recommendations",
            asl.integration("sagemaker:createProcessingJob.sync"),
            {
                "ProcessingJobName.$": paths.run("names", "recommend"),
                "RoleArn": shared.sagemaker_role.role_arn,
                "AppSpecification": {
                    "ImageUri": image.image_uri,
                    "ContainerEntrypoint": ENTRYPOINT,
                    "ContainerArguments.$": recommend_arguments(),
                },
                "ProcessingResources": {
                    "ClusterConfig": {
                        "InstanceCount": 1,
                        "InstanceType": config.prep_instance_type,
                        "VolumeSizeInGB": config.prep_volume_size_gb,
                        **volume_key(config.prep_instance_type, key.key_arn),
                    }
                },
                "ProcessingInputs": [
                    _input("factors", layout.SERVING_FACTORS, layout.RECOMMEND_CONTAINER_FACTORS),
                    _input("index", layout.INDEX, layout.RECOMMEND_CONTAINER_INDEX),
                ],
                "ProcessingOutputConfig": {
                    "KmsKeyId": key.key_arn,
                    "Outputs": [
                        {
                            "OutputName": "recommendations",
                            # Processing uploads the output folder's files under this URI.
                            "S3Output": {
                                "S3Uri.$": paths.in_run(layout.RECOMMENDATIONS.rstrip("/")),
                                "LocalPath": layout.RECOMMEND_CONTAINER_OUTPUT,
                                "S3UploadMode": "EndOfJob",
                            },
                        }
                    ],
                },
                "StoppingCondition": {"MaxRuntimeInSeconds": config.training_max_runtime_seconds},
                "Tags": TAGS,
            },
        )
        self.fallible: list[Fallible] = [self._job]

    @property
    def start_state(self) -> sfn.State:
        return self._job

    @property
    def end_states(self) -> list[sfn.INextable]:
        return [self._job]

    def grant(self, role: iam.IRole) -> None:
        """What the state machine's role needs for this phase's states."""
        start_sagemaker_work(role, self._shared)
        run_sagemaker_jobs(
            role,
            "ProcessingJob",
            kind="processing-job",
            events="Processing",
        )
