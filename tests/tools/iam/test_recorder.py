"""The recorder keeps the calls a client makes inside a recording, with their error codes, and nothing
outside; the inventory it makes is deterministic."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import botocore.handlers
import pytest
from moto import mock_aws

from tools.iam.recorder import Recorder, normalize, substitute


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="data-bucket")
        yield client


def test_calls_inside_a_recording_are_kept_with_their_errors(
    s3: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    # This recorder's hooks go away with the test.
    monkeypatch.setattr(botocore.handlers, "BUILTIN_HANDLERS", list(botocore.handlers.BUILTIN_HANDLERS))
    recorder = Recorder()
    recorder.install()
    client = boto3.client("s3", region_name="us-east-1")  # created after the hooks: the handler's client
    client.put_object(Bucket="data-bucket", Key="outside", Body=b"x")
    with recorder.recording("lambdas.pipeline.gate.handler", {"data-bucket": "{data_bucket}"}):
        client.put_object(Bucket="data-bucket", Key="runs/20240107-030000-weekly-ab12cd/gate.json", Body=b"x")
        with pytest.raises(client.exceptions.NoSuchKey):
            client.get_object(Bucket="data-bucket", Key="serving/current.json")
    client.get_object(Bucket="data-bucket", Key="outside")
    assert recorder.normalized() == [
        {
            "error": "NoSuchKey",
            "handler": "lambdas.pipeline.gate.handler",
            "operation": "GetObject",
            "params": {"Bucket": "{data_bucket}", "Key": "serving/current.json"},
            "service": "s3",
        },
        {
            "error": None,
            "handler": "lambdas.pipeline.gate.handler",
            "operation": "PutObject",
            "params": {"Bucket": "{data_bucket}", "Key": "runs/{run_id}/gate.json"},
            "service": "s3",
        },
    ]


def test_the_inventory_is_deduplicated_and_symbols_go_back_to_values() -> None:
    entry = {
        "handler": "h",
        "service": "s3",
        "operation": "GetObject",
        "params": {"Key": "runs/20240101-000000-a-0f0f0f/x"},
        "error": None,
    }
    twice = normalize([entry, {**entry, "params": {"Key": "runs/20250101-000000-b-c-1a2b3c/x"}}], {})
    assert twice == [{**entry, "params": {"Key": "runs/{run_id}/x"}}]
    assert substitute(twice[0]["params"], {"{run_id}": "r1"}) == {"Key": "runs/r1/x"}
    with pytest.raises(ValueError, match="gives no value"):
        substitute({"Bucket": "{data_bucket}"}, {})
