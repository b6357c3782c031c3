"""The quality-gate phase alone: the gate's decision routes to the deployment or to the notified rejection."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import aws_stepfunctions as sfn

from stacks.pipeline.gate import QualityGate
from tests.stacks import asl
from tests.stacks.pipeline.alone import Alone, build

POWERTOOLS = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"}


def _gate(stack: Any, shared: Any) -> QualityGate:
    return QualityGate(stack, "Gate", shared=shared, approved=sfn.Succeed(stack, "Approved"))


@pytest.fixture(scope="module")
def alone() -> Alone[QualityGate]:
    return build(_gate)


def test_the_candidate_predicts_the_test_rows_before_the_decision(alone: Alone[QualityGate]) -> None:
    assert alone.machine["StartAt"] == "Create FM model"
    assert alone.states() == {
        "Create FM model": "Task",
        "Predict test rows": "Task",
        "Quality gate": "Task",
        "Deploy?": "Choice",
        "Approved": "Succeed",
        "Notify rejection": "Task",
        "Rejected by quality gate": "Fail",
    }
    assert alone.state("Create FM model")["Next"] == "Predict test rows"
    assert alone.state("Predict test rows")["Next"] == "Quality gate"
    choice = alone.state("Deploy?")
    assert choice["Choices"] == [
        {"Variable": "$.gate.value.deploy", "BooleanEquals": True, "Next": "Approved"}
    ]
    assert choice["Default"] == "Notify rejection"
    assert alone.state("Rejected by quality gate")["Error"] == "QualityGateRejected"


def test_every_task_sends_what_its_service_accepts(alone: Alone[QualityGate]) -> None:
    tasks = asl.task_states(alone.machine)
    assert {n: asl.request_errors(s) for n, s in tasks.items() if asl.request_errors(s)} == {}
    assert {n: asl.literal_errors(s) for n, s in tasks.items() if asl.literal_errors(s)} == {}


def test_batch_transform_scores_the_test_shard_with_the_candidate_on_the_endpoint_type(
    alone: Alone[QualityGate],
) -> None:
    key = asl.resource_arn(alone.document, alone.logical_id("AWS::KMS::Key", "StorageDataKey"))
    predict = alone.state("Predict test rows")
    assert predict["Resource"] == "arn:aws:states:::sagemaker:createTransformJob.sync"
    run = "$.run.run_uri"
    test = f"States.Format('{{}}prep/test/', {run})"
    assert predict["Parameters"] == {
        "TransformJobName.$": "$.run.names.fm_test_predictions",
        "ModelName.$": "$.run.names.fm_model",
        "MaxConcurrentTransforms": 1,
        "BatchStrategy": "MultiRecord",
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri.$": f"{test}"}},
            "ContentType": "application/x-recordio-protobuf",
            "SplitType": "RecordIO",
        },
        "TransformOutput": {
            "S3OutputPath.$": f"States.Format('{{}}predictions/test/', {run})",
            "Accept": "application/jsonlines",
            "AssembleWith": "Line",
            "KmsKeyId": key,
        },
        "TransformResources": {"InstanceType": "ml.m4.xlarge", "InstanceCount": 1, "VolumeKmsKeyId": key},
        "Tags": [{"Key": "project", "Value": "loftrec"}],
    }
    model = alone.state("Create FM model")["Parameters"]
    assert (model["ModelName.$"], model["PrimaryContainer"]["ModelDataUrl.$"]) == (
        "$.run.names.fm_model",
        "$.training.fm.model_data",
    )
    # Local storage takes no volume key (contract.instances).
    local = build(_gate, endpoint_instance_type="ml.g4dn.xlarge").state("Predict test rows")["Parameters"]
    assert local["TransformResources"] == {"InstanceType": "ml.g4dn.xlarge", "InstanceCount": 1}


def test_the_gate_reads_the_run_and_its_rating_range(alone: Alone[QualityGate]) -> None:
    gate = alone.state("Quality gate")
    assert gate["Parameters"]["Payload"] == {
        "run_uri.$": "$.run.run_uri",
        "rating_range.$": "$.manifest.content.rating_range",
    }
    assert (gate["ResultSelector"], gate["ResultPath"]) == ({"value.$": "$.Payload"}, "$.gate")
    message = alone.state("Notify rejection")["Parameters"]["Message.$"]
    assert message.startswith("States.Format('Run {} was rejected by the quality gate; serving is unchanged.")
    assert message.endswith("{}', $$.Execution.Name, $.gate.value.reasons, $$.Execution.Id)")


def test_the_state_machine_may_create_models_run_transform_jobs_invoke_the_gate_and_publish(
    alone: Alone[QualityGate],
) -> None:
    grants = alone.grants()
    arn = f"arn:aws:sagemaker:{asl.REGION}:{asl.ACCOUNT}"
    topic = asl.resource_arn(alone.document, alone.logical_id("AWS::SNS::Topic", "Notifications"))
    function = asl.resource_arn(alone.document, alone.logical_id("AWS::Lambda::Function", "GateFunction"))
    assert grants["sns:Publish"] == [topic]
    assert grants["lambda:InvokeFunction"] == [function, f"{function}:*"]
    assert grants["sagemaker:CreateModel"] == [f"{arn}:model/loftrec-*"]
    for action in ("CreateTransformJob", "DescribeTransformJob", "StopTransformJob"):
        assert grants[f"sagemaker:{action}"] == [f"{arn}:transform-job/loftrec-*"]
    assert grants["events:PutRule"] == [
        f"arn:aws:events:{asl.REGION}:{asl.ACCOUNT}:rule/StepFunctionsGetEventsForSageMakerTransformJobsRule"
    ]
    (passed,) = grants["iam:PassRole"]
    assert "sagemaker.amazonaws.com" in passed[1]
    assert not [action for action in grants if action.startswith("s3:")]


def test_the_gate_function_reads_the_runs_and_the_record_and_writes_gate_json(
    alone: Alone[QualityGate],
) -> None:
    grants = alone.grants("GateFunctionServiceRole")
    bucket = asl.resource_arn(alone.document, alone.logical_id("AWS::S3::Bucket", "StorageData"))
    reads = {
        f"{bucket}/runs/*/{path}"
        for path in (
            "prep/index/*",
            "prep/test/*",
            "prep/baselines/*",
            "predictions/test/*",
            "serving/ranking.json",
            "serving/fm/*",
        )
    }
    assert set(grants["s3:GetObject*"]) == {bucket, f"{bucket}/serving/current.json", *reads}
    assert grants["s3:PutObject"] == [f"{bucket}/runs/*/gate.json"]
    assert not [action for action in grants if action.startswith("sagemaker:")]
    function = alone.function("lambdas.pipeline.gate.handler")
    assert (function["MemorySize"], function["Timeout"], len(function["Layers"])) == (2048, 300, 2)
    variables = function["Environment"]["Variables"]
    assert set(variables) == {"RUN_RECORD_URI", "GATE_MIN_IMPROVEMENT", "GATE_MAX_REGRESSION", *POWERTOOLS}
