"""The cloud layout: run files and the run record in S3 (moto's in-process S3, no AWS), the endpoints on the
local runtime server; the same handlers and exporter as with file:// URIs."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from contract import layout
from lambdas.kit import storage
from lambdas.kit.errors import StorageNotFoundError
from lambdas.serving.title_table import handler as export_handler
from local.runtime_server import RuntimeServer
from tests.lambdas.serving.support import (
    answer,
    api_event,
    aws_test_environment,
    blazingtext_model,
    load_handlers,
    trained_blazingtext,
    write_index,
    write_record,
    write_run,
)

BUCKET = "loftrec-data-test"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    aws_test_environment(monkeypatch)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def _upload(client: Any, folder: Path, prefix: str) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            client.put_object(
                Bucket=BUCKET, Key=f"{prefix}/{path.relative_to(folder)}", Body=path.read_bytes()
            )


def test_storage_reads_writes_and_says_not_found_for_both_schemes(s3: Any, tmp_path: Path) -> None:
    for base in (f"s3://{BUCKET}/x", (tmp_path / "x").as_uri()):
        storage.write_bytes(layout.under(base, "a/b.txt"), b"hello")
        assert storage.read_bytes(layout.under(base + "/", "a/b.txt")) == b"hello"
        stream = storage.open_stream(layout.under(base, "a/b.txt"))
        assert stream.read(2) == b"he"
        stream.close()
        with pytest.raises(StorageNotFoundError, match="nothing at"):
            storage.read_bytes(layout.under(base, "missing"))
        with pytest.raises(StorageNotFoundError):
            storage.open_stream(layout.under(base, "missing"))
    with pytest.raises(StorageNotFoundError):
        storage.read_bytes("s3://no-such-bucket-here/key")
    with pytest.raises(ValueError, match="is not an s3://bucket/key or file:///path URI"):
        storage.read_bytes("https://example.com/x")


def test_export_from_a_model_tar_gz_in_s3_and_serve_from_s3(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_index(tmp_path / "index")
    _upload(s3, tmp_path / "index", "runs/r1/prep/index")
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for name in ("vectors.bin", "vectors.txt"):
            tar.add(trained_blazingtext() / name, arcname=name)
    s3.put_object(Bucket=BUCKET, Key="runs/r1/blazingtext/job/output/model.tar.gz", Body=archive.getvalue())

    summary = export_handler(
        {
            "model_artifact_uri": f"s3://{BUCKET}/runs/r1/blazingtext/job/output/model.tar.gz",
            "index_uri": f"s3://{BUCKET}/runs/r1/prep/index/",
            "output_uri": f"s3://{BUCKET}/runs/r1/serving/",
        },
        None,
    )
    assert summary["count"] == 8
    local = write_run(tmp_path, "r1")  # the same run on disk: its FM model for the endpoint
    _upload(s3, local / "serving" / "fm", "runs/r1/serving/fm")  # its factors, shrinkage and ranking weight
    for path in (layout.COLD_START, layout.RANKING):
        s3.put_object(Bucket=BUCKET, Key=f"runs/r1/{path}", Body=(local / path).read_bytes())
    assert (
        storage.read_bytes(f"s3://{BUCKET}/runs/r1/serving/titles.f32")
        == (local / "serving" / "titles.f32").read_bytes()
    )

    record = tmp_path / "current.json"
    write_record(record, local, fm="fm-r1", blazingtext="bt-r1")
    text = record.read_text().replace((tmp_path / "runs").as_uri(), f"s3://{BUCKET}/runs")
    s3.put_object(Bucket=BUCKET, Key="serving/current.json", Body=text.encode())
    with RuntimeServer() as server:
        server.add_endpoint("fm-r1", local / "fm")
        server.add_endpoint("bt-r1", blazingtext_model())
        handlers = load_handlers(
            monkeypatch,
            RUN_RECORD_URI=f"s3://{BUCKET}/serving/current.json",
            SAGEMAKER_RUNTIME_ENDPOINT_URL=server.url,
        )
        item = {"customer_id": "C1", "product_id": "NEW", "product_title": "Sherlock Season 5"}
        status, body = answer(handlers.predict_handler(api_event({"items": [item]}), None))
        # The other shim in its own cold start: it reads the run from S3 too.
        similar = load_handlers(
            monkeypatch,
            RUN_RECORD_URI=f"s3://{BUCKET}/serving/current.json",
            SAGEMAKER_RUNTIME_ENDPOINT_URL=server.url,
        )
        event = api_event({"titles": ["Sherlock Season 5"], "k": 2}, path="/similar-titles")
        similar_status, similar_body = answer(similar.similar_titles_handler(event, None))
        # And a third, for top-N: the factors read from S3 into memory.
        recommend = load_handlers(
            monkeypatch,
            RUN_RECORD_URI=f"s3://{BUCKET}/serving/current.json",
            SAGEMAKER_RUNTIME_ENDPOINT_URL=server.url,
        )
        event = api_event({"customer_id": "C2", "k": 2, "date": "2014-01-01"}, path="/recommendations")
        top_status, top_body = answer(recommend.recommendations_handler(event, None))

    assert status == 200
    assert body["run_id"] == "r1"
    assert body["predictions"][0]["status"] == "cold_start"
    assert body["predictions"][0]["answered_from"] == "title_neighbours"
    assert server.received("fm-r1") == []  # a cold start is scored from the factors
    assert similar_status == 200
    assert [t["title"] for t in similar_body["results"][0]["similar"]] == [
        "sherlock-season-3",
        "sherlock-season-2",
    ]
    assert top_status == 200
    # C2 reviewed P-SH1 and P-SH2; the best of the rest by w_i + 0.5 log(1 + reviews) (C2 has no factors):
    # P-IMG 0.75 + 0.5 log 2, then P-DA1 0 + 0.5 log 2.
    assert [r["product_id"] for r in top_body["recommendations"]] == ["P-IMG", "P-DA1"]


def test_no_run_record_in_s3_is_not_deployed(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    handlers = load_handlers(monkeypatch, RUN_RECORD_URI=f"s3://{BUCKET}/serving/current.json")
    status, body = answer(handlers.similar_titles_handler(api_event({"titles": ["x"]}), None))
    assert (status, body["error"]["code"]) == (503, "not_deployed")
