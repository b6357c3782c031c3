"""Run files by URI: s3://bucket/key in the cloud, file:///path locally; one reader for both schemes.

The S3 client is created on first use (a local run never imports boto3's S3 machinery).
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlparse

_NOT_FOUND = {"NoSuchKey", "404", "NotFound", "NoSuchBucket"}


class StorageNotFoundError(FileNotFoundError):
    """Nothing at the URI."""


@functools.cache
def _s3() -> Any:
    import boto3  # noqa: PLC0415 (boto3 is loaded when S3 is first needed, not by local runs)

    return boto3.client("s3")


def _split(uri: str) -> tuple[str, str, str]:
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
    scheme, bucket, key = _split(uri)
    if scheme == "file":
        try:
            return Path(key).read_bytes()
        except FileNotFoundError:
            raise StorageNotFoundError(f"nothing at {uri}") from None
    try:
        body = _s3().get_object(Bucket=bucket, Key=key)["Body"]
        try:
            return bytes(body.read())
        finally:
            body.close()
    except Exception as exc:
        _raise_not_found(uri, exc)
        raise


def open_stream(uri: str) -> IO[bytes]:
    """A binary stream to read from (close it when done); S3 objects are streamed, not buffered."""
    scheme, bucket, key = _split(uri)
    if scheme == "file":
        try:
            return open(key, "rb")
        except FileNotFoundError:
            raise StorageNotFoundError(f"nothing at {uri}") from None
    try:
        stream: IO[bytes] = _s3().get_object(Bucket=bucket, Key=key)["Body"]
    except Exception as exc:
        _raise_not_found(uri, exc)
        raise
    return stream


def write_bytes(uri: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
    """Write a whole file; a local file is replaced atomically (readers never see half of it)."""
    scheme, bucket, key = _split(uri)
    if scheme == "s3":
        _s3().put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
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
