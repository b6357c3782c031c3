"""One reader and one writer for s3:// and file:// URIs; JSON documents and the deployed-run record."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from contract import layout
from contract.documents import RecordFormatError, run_record
from lambdas.kit import clients, storage
from lambdas.kit.errors import LoftrecError, StorageNotFoundError

BUCKET = "loftrec-kit-test"
RECORD = run_record(
    run_id="r1",
    deployed_at="2026-11-29T03:00:00Z",
    run_uri="s3://data/runs/r1/",
    metrics={"fm_test_rmse": 1.0, "baseline_global_mean_rmse": 1.28, "baseline_bias_rmse": 1.1},
    endpoint_configs={"fm": "loftrec-r1-fm-config", "blazingtext": "loftrec-r1-bt-config"},
)


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    clients.client.cache_clear()
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client
    clients.client.cache_clear()


@pytest.fixture(params=["file", "s3"])
def base(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A folder URI of each scheme (s3 in moto)."""
    if request.param == "s3":
        request.getfixturevalue("s3")
        return f"s3://{BUCKET}/runs/r1"
    return (tmp_path / "runs" / "r1").as_uri()


def test_bytes_written_are_read_back_whole_and_as_a_stream(base: str) -> None:
    storage.write_bytes(layout.under(base, "serving/titles.txt"), b"a\nb\n", content_type="text/plain")
    assert storage.read_bytes(layout.under(base + "/", "serving/titles.txt")) == b"a\nb\n"
    stream = storage.open_stream(layout.under(base, "serving/titles.txt"))
    try:
        assert stream.read() == b"a\nb\n"
    finally:
        stream.close()
    storage.write_bytes(layout.under(base, "serving/titles.txt"), b"c\n")  # replaced, not appended
    assert storage.read_bytes(layout.under(base, "serving/titles.txt")) == b"c\n"


def test_nothing_at_a_uri_is_storage_not_found_for_both_readers(base: str) -> None:
    missing = layout.under(base, "serving/missing.json")
    with pytest.raises(StorageNotFoundError, match=f"nothing at {missing}"):
        storage.read_bytes(missing)
    with pytest.raises(StorageNotFoundError):
        storage.open_stream(missing)
    assert issubclass(StorageNotFoundError, LoftrecError)
    assert issubclass(StorageNotFoundError, FileNotFoundError)


def test_json_and_the_run_record_round_trip(base: str) -> None:
    record_uri = layout.under(base, layout.RUN_RECORD_KEY)
    assert storage.read_run_record(record_uri) is None  # no run deployed yet
    storage.write_json(record_uri, RECORD)
    assert storage.read_run_record(record_uri) == RECORD
    storage.write_json(layout.under(base, layout.GATE), {"deploy": False, "reasons": ["r"]})
    assert json.loads(storage.read_bytes(layout.under(base, layout.GATE))) == {
        "deploy": False,
        "reasons": ["r"],
    }


def test_a_json_document_with_nan_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    target = tmp_path / "gate.json"
    with pytest.raises(ValueError, match="not JSON compliant"):
        storage.write_json(target.as_uri(), {"fm_test_rmse": float("nan")})
    assert not target.exists()


def test_a_malformed_run_record_names_the_record(tmp_path: Path) -> None:
    record = tmp_path / "current.json"
    record.write_text(json.dumps({**RECORD, "run_id": 7}))
    with pytest.raises(RecordFormatError, match=r"current\.json"):
        storage.read_run_record(record.as_uri())


def test_an_s3_object_has_the_content_type_it_was_written_with(s3: Any) -> None:
    storage.write_json(f"s3://{BUCKET}/runs/r1/gate.json", {"deploy": True})
    head = s3.head_object(Bucket=BUCKET, Key="runs/r1/gate.json")
    assert head["ContentType"] == "application/json"
    assert s3.get_object(Bucket=BUCKET, Key="runs/r1/gate.json")["Body"].read() == b'{\n "deploy": true\n}'


def test_a_local_file_is_replaced_atomically_and_readable(tmp_path: Path) -> None:
    target = tmp_path / "serving" / "current.json"
    storage.write_bytes(target.as_uri(), b"{}")
    assert target.read_bytes() == b"{}"
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in target.parent.iterdir()] == ["current.json"]  # no temporary file left


@pytest.mark.parametrize("uri", ["https://example.com/x", "s3:///key", "file://host/x", "/tmp/x"])
def test_other_uris_are_refused(uri: str) -> None:
    with pytest.raises(ValueError, match="is not an s3://bucket/key or file:///path URI"):
        storage.read_bytes(uri)


def test_a_folder_lists_the_files_directly_in_it_by_name(base: str) -> None:
    for path in ("prep/train/part-00001.rio", "prep/train/part-00000.rio", "prep/train/deeper/x", "prep/t"):
        storage.write_bytes(layout.under(base, path), b"x")
    expected = [layout.under(base, f"prep/train/part-0000{n}.rio") for n in (0, 1)]
    assert storage.list_files(layout.under(base, layout.TRAIN)) == expected
    assert storage.list_files(layout.under(base, "prep/train")) == expected  # with or without its "/"
    assert storage.list_files(layout.under(base, "prep/nothing/")) == []


def test_a_listing_reads_every_page(s3: Any) -> None:
    keys = [f"runs/r1/prep/train/part-{n:05d}.rio" for n in range(1001)]  # a page holds at most 1,000
    for key in keys:
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"")
    s3.put_object(Bucket=BUCKET, Key="runs/r1/prep/train/", Body=b"")  # a console-made "folder" object
    assert storage.list_files(f"s3://{BUCKET}/runs/r1/prep/train/") == [f"s3://{BUCKET}/{k}" for k in keys]


def test_a_listing_of_a_missing_bucket_is_storage_not_found(s3: Any) -> None:
    with pytest.raises(StorageNotFoundError, match="nothing at s3://no-such-bucket/runs/"):
        storage.list_files("s3://no-such-bucket/runs/")


def test_a_local_path_that_is_a_file_lists_nothing(tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"")
    assert storage.list_files((tmp_path / "x").as_uri()) == []


def test_a_large_object_is_read_in_byte_ranges_whole_and_in_order(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage, "PART_BYTES", 1000)
    data = bytes(range(256)) * 41 + b"tail"  # 10,500 bytes: 11 ranges, the last of 500
    s3.put_object(Bucket=BUCKET, Key="big", Body=data)
    s3.put_object(Bucket=BUCKET, Key="small", Body=b"abc")
    s3.put_object(Bucket=BUCKET, Key="empty", Body=b"")
    ranges: list[str] = []
    versions: set[str | None] = set()
    get_object = clients.client("s3").get_object

    def recording(**params: Any) -> Any:
        ranges.append(params["Range"])
        if params["Range"] != "bytes=0-999":
            versions.add(params.get("IfMatch"))
        return get_object(**params)

    monkeypatch.setattr(clients.client("s3"), "get_object", recording)

    assert storage.read_large(f"s3://{BUCKET}/big", connections=3) == data
    assert sorted(ranges, key=lambda r: int(r.split("=")[1].split("-")[0])) == [
        f"bytes={start}-{min(start + 1000, len(data)) - 1}" for start in range(0, len(data), 1000)
    ]
    # Every later range of the version the first one read: a newer upload cannot be mixed in.
    assert versions == {s3.head_object(Bucket=BUCKET, Key="big")["ETag"]}
    assert storage.read_large(f"s3://{BUCKET}/small") == b"abc"
    assert storage.read_large(f"s3://{BUCKET}/empty") == b""
    with pytest.raises(StorageNotFoundError, match="nothing at s3://"):
        storage.read_large(f"s3://{BUCKET}/missing")


def test_a_large_local_file_is_read_whole(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x" * 5000)
    assert storage.read_large((tmp_path / "f").as_uri()) == b"x" * 5000
    with pytest.raises(StorageNotFoundError):
        storage.read_large((tmp_path / "missing").as_uri())
