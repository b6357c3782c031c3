"""The ASL shapes every phase is written in, and the JSONPaths into the execution's state."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import assertions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn

from contract import layout
from lambdas.kit.errors import EndpointBusyError
from stacks.pipeline import asl as pipeline_asl
from stacks.pipeline import paths
from tests.stacks import asl


def _rendered(stack: cdk.Stack, state: sfn.State) -> dict[str, Any]:
    """The state as a state machine starting with it has it, tokens resolved (tests/stacks/asl.py)."""
    sfn.StateMachine(stack, "Machine", definition_body=sfn.DefinitionBody.from_chainable(state))
    document = dict(assertions.Template.from_stack(stack).to_json())
    return asl.states_by_name(asl.definition(document))[state.state_id]


def test_a_task_retries_transient_errors_and_can_discard_its_result() -> None:
    stack = cdk.Stack()
    state = _rendered(stack, pipeline_asl.task(stack, "Call", pipeline_asl.sdk("s3", "listBuckets"), {}))
    assert state["Type"] == "Task"
    assert state["Resource"] == "arn:aws:states:::aws-sdk:s3:listBuckets"
    assert state["ResultPath"] is None
    assert state["Retry"] == [
        {"ErrorEquals": pipeline_asl.RETRYABLE, "IntervalSeconds": 10, "MaxAttempts": 4, "BackoffRate": 2}
    ]


def test_an_invocation_puts_the_functions_answer_under_its_key() -> None:
    stack = cdk.Stack()
    function = lambda_.Function.from_function_name(stack, "Fn", "some-function")
    state = _rendered(
        stack, pipeline_asl.invoke(stack, "Ask", function, {"a.$": "$.b"}, result_path="$.answer", key="k")
    )
    assert state["ResultSelector"] == {"k.$": "$.Payload"}
    assert state["ResultPath"] == "$.answer"
    assert state["Parameters"]["Payload"] == {"a.$": "$.b"}


def test_the_endpoint_busy_retry_names_the_error_the_endpoint_functions_raise() -> None:
    assert EndpointBusyError.__name__ == pipeline_asl.ENDPOINT_BUSY
    stack = cdk.Stack()
    state = pipeline_asl.task(stack, "Plan", pipeline_asl.sdk("s3", "listBuckets"), {})
    pipeline_asl.retry_while_endpoint_busy(state)
    retries = _rendered(stack, state)["Retry"]
    assert [retry["ErrorEquals"] for retry in retries] == [pipeline_asl.RETRYABLE, ["EndpointBusyError"]]
    # 30 attempts, 1 minute growing by 1.2 each time, at most 5 minutes: about two hours in all.
    waits = [min(60 * 1.2**attempt, 300) for attempt in range(30)]
    assert 7000 < sum(waits) < 8000


def test_a_notification_links_the_execution_and_refuses_a_quote() -> None:
    stack = cdk.Stack()
    topic = sns.Topic(stack, "Topic")
    state = pipeline_asl.notify(
        stack, "Tell", topic=topic, subject="s", text="Run {} did {}.", values=["$.a", "$.b"]
    )
    message = _rendered(stack, state)["Parameters"]["Message.$"]
    assert message == (
        "States.Format('Run {} did {}. Execution: https://us-east-1.console.aws.amazon.com/states/home"
        "?region=us-east-1#/v2/executions/details/{}', $.a, $.b, $$.Execution.Id)"
    )
    with pytest.raises(ValueError, match="no ' in"):
        pipeline_asl.notify(stack, "Quote", topic=topic, subject="s", text="it's", values=[])


def test_paths_into_contract_documents_are_checked_against_their_types() -> None:
    assert paths.run("names", "fm_config") == "$.run.names.fm_config"
    assert paths.manifest("baselines", "bias", "rmse") == "$.manifest.content.baselines.bias.rmse"
    assert paths.gate("deploy") == "$.gate.value.deploy"
    assert paths.trained("blazingtext", "model_data") == "$.training.blazingtext.model_data"
    for reader, field in ((paths.run, "run_url"), (paths.gate, "fm_rmse"), (paths.manifest, "featuredim")):
        with pytest.raises(KeyError, match=field):
            reader(field)
    with pytest.raises(KeyError, match="job"):
        paths.trained("fm", "job")


def test_a_path_in_the_run_is_formatted_from_its_uri_or_its_prefix() -> None:
    assert paths.in_run(layout.INDEX) == "States.Format('{}prep/index/', $.run.run_uri)"
    assert paths.in_run(layout.MANIFEST, base="run_prefix") == (
        "States.Format('{}prep/manifest.json', $.run.run_prefix)"
    )
