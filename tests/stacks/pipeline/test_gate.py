"""The quality-gate phase alone: the gate's decision routes to the deployment or to the notified rejection."""

from __future__ import annotations

import pytest
from aws_cdk import aws_stepfunctions as sfn

from stacks.pipeline.gate import QualityGate
from tests.stacks import asl
from tests.stacks.pipeline.alone import Alone, build

POWERTOOLS = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"}


@pytest.fixture(scope="module")
def alone() -> Alone[QualityGate]:
    return build(
        lambda stack, shared: QualityGate(
            stack, "Gate", shared=shared, approved=sfn.Succeed(stack, "Approved")
        )
    )


def test_the_decision_routes_to_the_deployment_or_the_rejection(alone: Alone[QualityGate]) -> None:
    assert alone.machine["StartAt"] == "Quality gate"
    assert alone.states() == {
        "Quality gate": "Task",
        "Deploy?": "Choice",
        "Approved": "Succeed",
        "Notify rejection": "Task",
        "Rejected by quality gate": "Fail",
    }
    choice = alone.state("Deploy?")
    assert choice["Choices"] == [
        {"Variable": "$.gate.value.deploy", "BooleanEquals": True, "Next": "Approved"}
    ]
    assert choice["Default"] == "Notify rejection"
    assert alone.state("Rejected by quality gate")["Error"] == "QualityGateRejected"


def test_the_gate_reads_fms_job_the_baselines_and_the_run(alone: Alone[QualityGate]) -> None:
    gate = alone.state("Quality gate")
    assert gate["Parameters"]["Payload"] == {
        "training_job_name.$": "$.training.fm.job_name",
        "baselines.$": "$.manifest.content.baselines",
        "run_uri.$": "$.run.run_uri",
    }
    assert (gate["ResultSelector"], gate["ResultPath"]) == ({"value.$": "$.Payload"}, "$.gate")
    message = alone.state("Notify rejection")["Parameters"]["Message.$"]
    assert message.startswith("States.Format('Run {} was rejected by the quality gate; serving is unchanged.")
    assert message.endswith("{}', $$.Execution.Name, $.gate.value.reasons, $$.Execution.Id)")
    assert {
        n: asl.request_errors(s) for n, s in asl.task_states(alone.machine).items() if asl.request_errors(s)
    } == {}


def test_the_state_machine_may_invoke_the_gate_and_publish(alone: Alone[QualityGate]) -> None:
    grants = alone.grants()
    topic = asl.resource_arn(alone.document, alone.logical_id("AWS::SNS::Topic", "Notifications"))
    function = asl.resource_arn(alone.document, alone.logical_id("AWS::Lambda::Function", "GateFunction"))
    assert grants["sns:Publish"] == [topic]
    assert grants["lambda:InvokeFunction"] == [function, f"{function}:*"]
    assert set(grants) == {"sns:Publish", "lambda:InvokeFunction", "kms:Decrypt", "kms:GenerateDataKey*"}


def test_the_gate_function_reads_the_record_and_fms_job_and_writes_gate_json(
    alone: Alone[QualityGate],
) -> None:
    grants = alone.grants("GateFunctionServiceRole")
    bucket = asl.resource_arn(alone.document, alone.logical_id("AWS::S3::Bucket", "StorageData"))
    assert grants["s3:GetObject*"] == [bucket, f"{bucket}/serving/current.json"]
    assert grants["s3:PutObject"] == [f"{bucket}/runs/*/gate.json"]
    assert grants["sagemaker:DescribeTrainingJob"] == [
        f"arn:aws:sagemaker:{asl.REGION}:{asl.ACCOUNT}:training-job/loftrec-*"
    ]
    variables = alone.function("lambdas.pipeline.gate.handler")["Environment"]["Variables"]
    assert set(variables) == {"RUN_RECORD_URI", "GATE_MIN_IMPROVEMENT", "GATE_MAX_REGRESSION", *POWERTOOLS}
