"""The record-and-notify phase alone: the deployed run's record has exactly the contract's fields."""

from __future__ import annotations

import typing

import pytest

from contract.documents import RunRecord
from stacks.pipeline.record import RecordRun
from tests.stacks import asl
from tests.stacks.pipeline.alone import ENDPOINT_NAMES, Alone, build


@pytest.fixture(scope="module")
def alone() -> Alone[RecordRun]:
    return build(lambda stack, shared: RecordRun(stack, "Record", shared=shared))


def test_states_in_order_and_a_lost_notification_still_ends_deployed(alone: Alone[RecordRun]) -> None:
    assert alone.machine["StartAt"] == "Describe deployed run"
    assert alone.states() == {
        "Describe deployed run": "Pass",
        "Record deployed run": "Task",
        "Notify deployed": "Task",
        "Deployed": "Succeed",
    }
    notify = alone.state("Notify deployed")
    assert notify["Next"] == "Deployed"
    assert notify["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.notify_error", "Next": "Deployed"}
    ]


def test_the_record_has_the_contracts_fields_read_from_the_run_and_the_gate(alone: Alone[RecordRun]) -> None:
    record = alone.state("Describe deployed run")["Parameters"]
    fields = {key.removesuffix(".$") for key in record}
    hints = typing.get_type_hints(RunRecord, include_extras=True)
    required = {name for name, hint in hints.items() if typing.get_origin(hint) is not typing.NotRequired}
    assert required <= fields <= set(hints)
    run = "$.run.run_uri"
    assert record == {
        "schema_version": 1,
        "run_id.$": "$.run.run_id",
        "deployed_at.$": "$$.State.EnteredTime",
        "endpoints": ENDPOINT_NAMES,
        "endpoint_configs": {
            "fm.$": "$.run.names.fm_config",
            "blazingtext.$": "$.run.names.blazingtext_config",
        },
        "run_uri.$": run,
        "index_uri.$": f"States.Format('{{}}prep/index/', {run})",
        "title_table_uri.$": f"States.Format('{{}}serving/', {run})",
        "manifest_uri.$": f"States.Format('{{}}prep/manifest.json', {run})",
        "metrics": {
            "fm_test_rmse.$": "$.gate.value.fm_test_rmse",
            "baseline_global_mean_rmse.$": "$.gate.value.baseline_global_mean_rmse",
            "baseline_bias_rmse.$": "$.gate.value.baseline_bias_rmse",
        },
    }
    write = alone.state("Record deployed run")
    assert write["Parameters"]["Key"] == "serving/current.json"
    assert write["Parameters"]["Body.$"] == "States.JsonToString($.record)"
    assert write["ResultPath"] is None
    assert {
        n: asl.request_errors(s) for n, s in asl.task_states(alone.machine).items() if asl.request_errors(s)
    } == {}


def test_the_state_machine_may_write_the_record_and_publish_only(alone: Alone[RecordRun]) -> None:
    grants = alone.grants()
    bucket = asl.resource_arn(alone.document, alone.logical_id("AWS::S3::Bucket", "StorageData"))
    assert grants["s3:PutObject"] == [f"{bucket}/serving/current.json"]
    assert not [action for action in grants if action.startswith(("s3:Get", "lambda:", "sagemaker:"))]
    assert "sns:Publish" in grants and "kms:GenerateDataKey*" in grants
