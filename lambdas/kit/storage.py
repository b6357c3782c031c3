"""Files by URI: s3://bucket/key in the cloud, file:///path locally; one reader, one writer and one lister
for both.

Paths under a folder URI are joined with contract.layout.under. JSON documents and the deployed-run record
are read and written on top of the bytes.
"""

from __future__ import annotations

import contextvars
import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlparse

from contract.documents import RunRecord, parse_run_record

from .clients import client
from .errors import StorageNotFoundError

# What S3 answers for a missing key or bucket (GetObject: NoSuchKey; HEAD-style and moto: 404/NotFound).
_NOT_FOUND = {"NoSuchKey", "404", "NotFound", "NoSuchBucket"}
PART_BYTES = 8 * 1024 * 1024
"""The byte range of one GET of read_large: 8 or 16 MB is typical (Amazon S3's "Use byte-range fetches",
https://docs.aws.amazon.com/whitepapers/latest/s3-optimizing-performance-best-practices/use-byte-range-fetches.html)."""


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


def _get_range(bucket: str, key: str, start: int, end: int, etag: str | None) -> tuple[bytes, dict[str, Any]]:
    """Bytes start..end (inclusive) of an object, and the response; with etag, of that version only (a
    newer object fails with PreconditionFailed rather than mixing two versions)."""
    extra = {"IfMatch": etag} if etag else {}
    response = client("s3").get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end}", **extra)
    body = response["Body"]
    try:
        return bytes(body.read()), response
    finally:
        body.close()


def read_large(uri: str, *, connections: int = 8) -> bytearray:
    """The whole file into one buffer, as read_bytes reads it but faster for a large S3 object: byte ranges
    of PART_BYTES over up to `connections` connections at once, their aggregate throughput above one
    GET's. StorageNotFoundError when there is none. (botocore keeps 10 connections per client by default:
    `connections` stays below.)"""
    scheme, bucket, key = split_uri(uri)
    if scheme == "file":
        return bytearray(read_bytes(uri))
    try:
        first, response = _get_range(bucket, key, 0, PART_BYTES - 1, None)
    except Exception as exc:
        if getattr(exc, "response", {}).get("Error", {}).get("Code") == "InvalidRange":
            return bytearray()  # an empty object has no byte 0
        _raise_not_found(uri, exc)
        raise
    total = int(str(response.get("ContentRange", "")).rpartition("/")[2] or len(first))
    buffer = bytearray(total)
    buffer[: len(first)] = first
    starts = range(len(first), total, PART_BYTES)
    if not starts:
        return buffer
    etag = response.get("ETag")
    with ThreadPoolExecutor(max_workers=min(connections, len(starts)), thread_name_prefix="s3-range") as pool:
        # Each thread in a copy of the caller's context: its log keys, and who the caller is.
        parts = [
            (start, pool.submit(contextvars.copy_context().run, _get_range, bucket, key, start,
                                min(start + PART_BYTES, total) - 1, etag))
            for start in starts
        ]  # fmt: skip
        for start, part in parts:
            data = part.result()[0]
            buffer[start : start + len(data)] = data
    return buffer


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
