"""Failure and rollback alone: where a state's error goes, before and after serving may have changed."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import aws_stepfunctions as sfn

from stacks.pipeline import asl as pipeline_asl
from stacks.pipeline.failure import FailureHandling
from tests.stacks import asl
from tests.stacks.pipeline.alone import ENDPOINT_NAMES, Alone, build


def _chain(stack: Any, failure: FailureHandling) -> sfn.IChainable:
    """Two tasks: an error in the first is notified, one in the second rolled back first."""
    early = pipeline_asl.task(stack, "Early", pipeline_asl.sdk("s3", "listBuckets"), {})
    late = pipeline_asl.task(stack, "Late", pipeline_asl.sdk("s3", "listBuckets"), {})
    failure.notify_on([early])
    failure.roll_back_on([late])
    return early.next(late).next(sfn.Succeed(stack, "Done"))


@pytest.fixture(scope="module")
def alone() -> Alone[FailureHandling]:
    return build(lambda stack, shared: FailureHandling(stack, "Failure", shared=shared), chain=_chain)


def test_an_error_is_noted_with_its_state_then_notified_or_rolled_back_first(
    alone: Alone[FailureHandling],
) -> None:
    assert alone.states() == {
        "Early": "Task",
        "Late": "Task",
        "Done": "Succeed",
        "Failed: Early": "Pass",
        "Failed: Late": "Pass",
        "Roll back serving": "Task",
        "Notify failure": "Task",
        "Run failed": "Fail",
    }
    for task, handler in (("Early", "Notify failure"), ("Late", "Roll back serving")):
        assert alone.state(task)["Catch"] == [
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": f"Failed: {task}"}
        ]
        note = alone.state(f"Failed: {task}")
        assert note["Parameters"] == {"state": task, "error.$": "$.error.Error", "cause.$": "$.error.Cause"}
        assert (note["ResultPath"], note["Next"]) == ("$.failure", handler)
    rollback = alone.state("Roll back serving")
    assert rollback["Next"] == "Notify failure"
    assert rollback["Catch"][0]["Next"] == "Notify failure"
    assert rollback["Retry"][-1]["ErrorEquals"] == ["EndpointBusyError"]
    assert rollback["Parameters"]["Payload"] == {
        "run_configs": {"fm.$": "$.run.names.fm_config", "blazingtext.$": "$.run.names.blazingtext_config"}
    }
    assert alone.state("Run failed")["Error"] == "RunFailed"
    message = alone.state("Notify failure")["Parameters"]["Message.$"]
    assert "$$.Execution.Name, $.failure.state, $.failure.error, $.failure.cause, $$.Execution.Id)" in message


def test_the_rollback_function_knows_the_endpoints_and_may_change_only_them(
    alone: Alone[FailureHandling],
) -> None:
    variables = alone.function("lambdas.pipeline.endpoints.rollback_handler")["Environment"]["Variables"]
    assert (variables["FM_ENDPOINT"], variables["BLAZINGTEXT_ENDPOINT"]) == (
        ENDPOINT_NAMES["fm"],
        ENDPOINT_NAMES["blazingtext"],
    )
    grants = alone.grants("RollbackFunctionServiceRole")
    arn = f"arn:aws:sagemaker:{asl.REGION}:{asl.ACCOUNT}"
    assert grants["sagemaker:UpdateEndpoint"] == [
        f"{arn}:endpoint-config/loftrec-*",
        f"{arn}:endpoint/test-blazingtext",
        f"{arn}:endpoint/test-fm",
    ]
    assert grants["sagemaker:DeleteEndpoint"] == grants["sagemaker:UpdateEndpoint"]
    # It compares instance types and deregisters autoscaling before an update to another type and before a
    # delete; Application Auto Scaling validates the caller's permissions on any endpoint and alarm first.
    assert set(grants["sagemaker:DescribeEndpointConfig"]) == {
        f"{arn}:endpoint-config/loftrec-*",
        f"{arn}:endpoint-config/*",
        f"{arn}:endpoint/*",
        f"{arn}:endpoint/test-blazingtext",
        f"{arn}:endpoint/test-fm",
    }
    assert grants["application-autoscaling:DescribeScalableTargets"] == ["*"]
    assert grants["application-autoscaling:DeregisterScalableTarget"] == ["*"]
    assert grants["sagemaker:UpdateEndpointWeightsAndCapacities"] == [
        f"{arn}:endpoint-config/*",
        f"{arn}:endpoint/*",
    ]
    assert grants["cloudwatch:DeleteAlarms"] == [f"arn:aws:cloudwatch:{asl.REGION}:{asl.ACCOUNT}:alarm:*"]
    state_machine = alone.grants()
    function = asl.resource_arn(alone.document, alone.logical_id("AWS::Lambda::Function", "RollbackFunction"))
    assert state_machine["lambda:InvokeFunction"] == [function, f"{function}:*"]
    assert "sns:Publish" in state_machine
