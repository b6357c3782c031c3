"""Files by URI: s3://bucket/key in the cloud, file:///path locally; one reader, one writer and one lister
for both.

Paths under a folder URI are joined with contract.layout.under. JSON documents and the deployed-run record
are read and written on top of the bytes.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlparse

from contract.documents import RunRecord, parse_run_record

from .clients import client
from .errors import StorageNotFoundError

# What S3 answers for a missing key or bucket (GetObject: NoSuchKey; HEAD-style and moto: 404/NotFound).
_NOT_FOUND = {"NoSuchKey", "404", "NotFound", "NoSuchBucket"}


def split_uri(uri: str) -> tuple[str, str, str]:
    """uri -> (scheme, bucket, key) for s3, (scheme, "", path) for file; ValueError on anything else."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3" and parsed.netloc:
        return "s3", parsed.netloc, parsed.path.lstrip("/")
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return "file", "", unquote(parsed.path)
    raise ValueError(f"{uri!r} is not an s3://bucket/key or file:///path URI")


def _raise_not_found(uri: str, exc: Exception) -> None:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
    if code in _NOT_FOUND:
        raise StorageNotFoundError(f"nothing at {uri}") from None


def read_bytes(uri: str) -> bytes:
    """The whole file; StorageNotFoundError when there is none."""
    scheme, bucket, key = split_uri(uri)
    if scheme == "file":
        try:
            return Path(key).read_bytes()
        except FileNotFoundError:
            raise StorageNotFoundError(f"nothing at {uri}") from None
    try:
        body = client("s3").get_object(Bucket=bucket, Key=key)["Body"]
        try:
            return bytes(body.read())
        finally:
            body.close()
    except Exception as exc:
        _raise_not_found(uri, exc)
        raise


def open_stream(uri: str) -> IO[bytes]:
    """A binary stream to read from (close it when done); S3 objects are streamed, not buffered."""
    scheme, bucket, key = split_uri(uri)
    if scheme == "file":
        try:
            return open(key, "rb")
        except FileNotFoundError:
            raise StorageNotFoundError(f"nothing at {uri}") from None
    try:
        stream: IO[bytes] = client("s3").get_object(Bucket=bucket, Key=key)["Body"]
    except Exception as exc:
        _raise_not_found(uri, exc)
        raise
    return stream


def list_files(folder_uri: str) -> list[str]:
    """The URIs of the files directly in a folder (not in its subfolders), sorted by name; [] when there
    are none, or no such folder. On S3 a folder is a key prefix ending in "/": ListObjectsV2 with that
    prefix and the delimiter "/", every page (at most 1,000 keys each); it needs s3:ListBucket on the
    bucket. https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html"""
    scheme, bucket, key = split_uri(folder_uri)
    if scheme == "file":
        folder = Path(key)
        if not folder.is_dir():
            return []
        return sorted(path.as_uri() for path in folder.iterdir() if path.is_file())
    prefix = key.rstrip("/") + "/" if key.strip("/") else ""
    keys: list[str] = []
    try:
        for page in (
            client("s3")
            .get_paginator("list_objects_v2")
            .paginate(Bucket=bucket, Prefix=prefix, Delimiter="/")
        ):
            keys.extend(entry["Key"] for entry in page.get("Contents", []) if not entry["Key"].endswith("/"))
    except Exception as exc:
        _raise_not_found(folder_uri, exc)
        raise
    return [f"s3://{bucket}/{name}" for name in sorted(keys)]


def write_bytes(uri: str, data: bytes | bytearray, *, content_type: str = "application/octet-stream") -> None:
    """Write a whole file; a local file is replaced atomically (readers never see half of it)."""
    scheme, bucket, key = split_uri(uri)
    if scheme == "s3":
        client("s3").put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
        return
    path = Path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        tmp.write(data)
    try:
        os.chmod(tmp.name, 0o644)
        os.replace(tmp.name, path)
    except BaseException:
        os.unlink(tmp.name)
        raise


def write_json(uri: str, document: Any) -> None:
    """A JSON document (no NaN: it is not JSON), as application/json."""
    body = json.dumps(document, indent=1, allow_nan=False).encode()
    write_bytes(uri, body, content_type="application/json")


def read_run_record(uri: str) -> RunRecord | None:
    """The deployed-run record, checked (contract.documents); None when no run is deployed yet."""
    try:
        raw = read_bytes(uri)
    except StorageNotFoundError:
        return None
    return parse_run_record(raw, uri)
