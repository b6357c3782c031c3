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
    Fallible,
    SharedResources,
    prep_image_job,
    processing_input,
    run_sagemaker_jobs,
    start_sagemaker_work,
    state_array,
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
    return state_array(fixed, ("--popularity-weight", weight))


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
        self._job = asl.task(
            self,
            "Batch recommendations",
            asl.integration("sagemaker:createProcessingJob.sync"),
            prep_image_job(
                shared,
                image_uri=image.image_uri,
                name=paths.run("names", "recommend"),
                entrypoint=ENTRYPOINT,
                arguments=recommend_arguments(),
                inputs=[
                    processing_input(
                        "factors",
                        layout.RECOMMEND_CONTAINER_FACTORS,
                        {"S3Uri.$": paths.in_run(layout.SERVING_FACTORS)},
                    ),
                    processing_input(
                        "index", layout.RECOMMEND_CONTAINER_INDEX, {"S3Uri.$": paths.in_run(layout.INDEX)}
                    ),
                ],
                output=("recommendations", layout.RECOMMENDATIONS, layout.RECOMMEND_CONTAINER_OUTPUT),
            ),
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
