"""The batch-recommendations phase alone: a Processing job on the prep image, what it sends and grants."""

from __future__ import annotations

import re

import pytest

from contract import layout
from jobs.recommend.__main__ import build_parser
from stacks.pipeline.images import prep_image
from stacks.pipeline.recommend import BatchRecommendations
from tests.stacks import asl
from tests.stacks.pipeline.alone import Alone, build


@pytest.fixture(scope="module")
def alone() -> Alone[BatchRecommendations]:
    return build(
        lambda stack, shared: BatchRecommendations(
            stack, "Recommend", shared=shared, image=prep_image(stack, "Image")
        )
    )


def test_one_processing_job_on_the_prep_image(alone: Alone[BatchRecommendations]) -> None:
    assert alone.states() == {"Batch recommendations": "Task"}
    job = alone.state("Batch recommendations")
    assert job["Resource"] == "arn:aws:states:::sagemaker:createProcessingJob.sync"
    assert asl.request_errors(job) == ""
    assert asl.literal_errors(job) == []
    parameters = job["Parameters"]
    assert parameters["ProcessingJobName.$"] == "$.run.names.recommend"
    assert parameters["AppSpecification"]["ContainerEntrypoint"] == ["python", "-m", "jobs.recommend"]
    run = "$.run.run_uri"
    inputs = {i["InputName"]: i["S3Input"] for i in parameters["ProcessingInputs"]}
    assert {name: (i["S3Uri.$"], i["LocalPath"]) for name, i in inputs.items()} == {
        "factors": (f"States.Format('{{}}serving/fm/', {run})", layout.RECOMMEND_CONTAINER_FACTORS),
        "index": (f"States.Format('{{}}prep/index/', {run})", layout.RECOMMEND_CONTAINER_INDEX),
    }
    (output,) = parameters["ProcessingOutputConfig"]["Outputs"]
    assert output["S3Output"]["S3Uri.$"] == f"States.Format('{{}}recommendations', {run})"
    assert output["S3Output"]["LocalPath"] == layout.RECOMMEND_CONTAINER_OUTPUT
    key = asl.resource_arn(alone.document, alone.logical_id("AWS::KMS::Key", "StorageDataKey"))
    assert parameters["ProcessingOutputConfig"]["KmsKeyId"] == key
    assert parameters["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == key


def test_the_jobs_parser_reads_the_arguments_with_the_runs_popularity_weight(
    alone: Alone[BatchRecommendations],
) -> None:
    specification = alone.state("Batch recommendations")["Parameters"]["AppSpecification"]
    expression = specification["ContainerArguments.$"]
    weight = "States.Format('{}', $.export.value.ranking.popularity_weight)"
    assert expression.startswith("States.Array(") and expression.endswith(f", {weight})")
    # What Step Functions makes of it for a run whose export chose 0.5.
    arguments = [*re.findall(r"'([^']*)'", expression.removesuffix(f", {weight})")), "0.5"]
    parsed = build_parser().parse_args(arguments)
    assert (str(parsed.factors), str(parsed.index), str(parsed.output)) == (
        layout.RECOMMEND_CONTAINER_FACTORS,
        layout.RECOMMEND_CONTAINER_INDEX,
        layout.RECOMMEND_CONTAINER_OUTPUT,
    )
    assert (parsed.k, parsed.popularity_weight, parsed.include_reviewed) == (10, 0.5, False)
    assert str(parsed.failure_message) == layout.CONTAINER_FAILURE_MESSAGE


def test_the_state_machine_may_run_processing_jobs_only(alone: Alone[BatchRecommendations]) -> None:
    grants = alone.grants()
    arn = f"arn:aws:sagemaker:{asl.REGION}:{asl.ACCOUNT}"
    for action in ("CreateProcessingJob", "DescribeProcessingJob", "StopProcessingJob"):
        assert grants[f"sagemaker:{action}"] == [f"{arn}:processing-job/loftrec-*"]
    assert grants["events:PutRule"] == [
        f"arn:aws:events:{asl.REGION}:{asl.ACCOUNT}:rule/StepFunctionsGetEventsForSageMakerProcessingJobsRule"
    ]
    assert not [action for action in grants if action.startswith("s3:")]
