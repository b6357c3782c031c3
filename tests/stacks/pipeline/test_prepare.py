"""The prepare-data phase alone: its states, what they send, and what it grants."""

from __future__ import annotations

import json

import pytest

from stacks.pipeline.images import prep_image
from stacks.pipeline.prepare import PrepareData
from tests.stacks import asl
from tests.stacks.pipeline.alone import Alone, build

POWERTOOLS = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"}


@pytest.fixture(scope="module")
def alone() -> Alone[PrepareData]:
    return build(
        lambda stack, shared: PrepareData(stack, "Prepare", shared=shared, image=prep_image(stack, "Image"))
    )


def test_states_in_order(alone: Alone[PrepareData]) -> None:
    assert alone.machine["StartAt"] == "Start run"
    assert alone.states() == {
        "Start run": "Task",
        "Prepare data": "Task",
        "Read manifest": "Task",
        "Set FM feature_dim": "Pass",
    }
    assert [alone.state(name).get("Next") for name in ("Start run", "Prepare data", "Read manifest")] == [
        "Prepare data",
        "Read manifest",
        "Set FM feature_dim",
    ]
    assert alone.state("Set FM feature_dim")["End"] is True


def test_every_task_sends_what_its_service_accepts(alone: Alone[PrepareData]) -> None:
    assert {name: asl.request_errors(s) for name, s in asl.task_states(alone.machine).items()} == {
        "Start run": "",
        "Prepare data": "",
        "Read manifest": "",
    }


def test_paths_come_from_the_contract(alone: Alone[PrepareData]) -> None:
    prepare = alone.state("Prepare data")["Parameters"]
    assert prepare["ProcessingJobName.$"] == "$.run.names.prep"
    output = prepare["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri.$"]
    assert output == "States.Format('{}prep', $.run.run_uri)"
    assert prepare["ProcessingInputs"][0]["S3Input"]["S3Uri"] == "s3://example-reviews/us/video/"
    manifest = alone.state("Read manifest")["Parameters"]["Key.$"]
    assert manifest == "States.Format('{}prep/manifest.json', $.run.run_prefix)"
    fixed = alone.state("Set FM feature_dim")
    assert fixed["Parameters"] == {"feature_dim.$": "States.Format('{}', $.manifest.content.feature_dim)"}
    assert fixed["ResultPath"] == "$.fm_fixed"


def test_the_state_machine_may_run_processing_jobs_and_read_manifests_only(alone: Alone[PrepareData]) -> None:
    grants = alone.grants()
    account = f"{asl.REGION}:{asl.ACCOUNT}"
    assert grants["sagemaker:CreateProcessingJob"] == [
        f"arn:aws:sagemaker:{account}:processing-job/loftrec-*"
    ]
    assert not [action for action in grants if "TrainingJob" in action or "Endpoint" in action]
    assert grants["events:PutRule"] == [
        f"arn:aws:events:{account}:rule/StepFunctionsGetEventsForSageMakerProcessingJobsRule"
    ]
    bucket = asl.resource_arn(alone.document, alone.logical_id("AWS::S3::Bucket", "StorageData"))
    assert f"{bucket}/runs/*/prep/manifest.json" in grants["s3:GetObject*"]
    assert "s3:PutObject" not in grants
    (passed,) = grants["iam:PassRole"]
    assert passed == (
        asl.resource_arn(alone.document, alone.logical_id("AWS::IAM::Role", "SageMakerRole")),
        json.dumps({"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}),
    )
    function = asl.resource_arn(alone.document, alone.logical_id("AWS::Lambda::Function", "StartRunFunction"))
    assert grants["lambda:InvokeFunction"] == [function, f"{function}:*"]


def test_start_run_reads_its_defaults_from_the_environment_and_nothing_from_the_bucket(
    alone: Alone[PrepareData],
) -> None:
    variables = alone.function("lambdas.pipeline.start_run.handler")["Environment"]["Variables"]
    assert set(variables) == {"RUN_DEFAULTS", "DATA_BUCKET", "VOLUME_KMS_KEY", *POWERTOOLS}
    defaults = json.loads(variables["RUN_DEFAULTS"])
    assert defaults["fm_instance_count"] == 4
    assert (defaults["fm_volume_size_gb"], defaults["blazingtext_volume_size_gb"]) == (30, 5)
    assert defaults["blazingtext_instance_count"] == 1
    key = alone.logical_id("AWS::KMS::Key", "StorageDataKey")
    assert variables["VOLUME_KMS_KEY"] == {"Fn::GetAtt": [key, "Arn"]}
    assert alone.grants("StartRunFunctionServiceRole").keys() == {
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }


def test_the_prep_volume_is_encrypted_with_the_data_key(alone: Alone[PrepareData]) -> None:
    cluster = alone.state("Prepare data")["Parameters"]["ProcessingResources"]["ClusterConfig"]
    assert cluster["InstanceType"] == "ml.m5.xlarge"
    key = asl.resource_arn(alone.document, alone.logical_id("AWS::KMS::Key", "StorageDataKey"))
    assert cluster["VolumeKmsKeyId"] == key


def test_an_instance_type_with_local_storage_names_no_volume_key() -> None:
    # "You can't request a VolumeKmsKeyId when using an instance type with local storage" (contract.instances)
    local = build(
        lambda stack, shared: PrepareData(stack, "Prepare", shared=shared, image=prep_image(stack, "Image")),
        prep_instance_type="ml.r5d.large",
    )
    prepare = local.state("Prepare data")["Parameters"]
    assert prepare["ProcessingResources"]["ClusterConfig"] == {
        "InstanceCount": 1,
        "InstanceType": "ml.r5d.large",
        "VolumeSizeInGB": 30,
    }
    assert "KmsKeyId" in prepare["ProcessingOutputConfig"]  # the S3 outputs stay encrypted with the key
    assert asl.request_errors(local.state("Prepare data")) == ""
