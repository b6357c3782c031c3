"""What the pipeline's Lambdas share: settings from the environment, lazy clients, JSON in S3, logs."""

from __future__ import annotations

import functools
import json
import logging
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import boto3

from contract.documents import RunRecord, parse_run_record

LOGGER = logging.getLogger("loftrec.pipeline")
LOGGER.setLevel(logging.INFO)


@dataclass(frozen=True)
class Settings:
    run_record_uri: str
    gate_min_improvement: float
    gate_max_regression: float


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, str(default))
    try:
        return float(raw)
    except ValueError:
        raise RuntimeError(f"environment variable {name}={raw!r} is not a number") from None


@functools.cache
def settings() -> Settings:
    """Read once per container; a missing or malformed variable fails the first call with its name."""
    record = os.environ.get("RUN_RECORD_URI", "")
    if not record.startswith("s3://"):
        raise RuntimeError(f"environment variable RUN_RECORD_URI={record!r} must be an s3:// URI")
    return Settings(
        run_record_uri=record,
        gate_min_improvement=_env_float("GATE_MIN_IMPROVEMENT", 0.01),
        gate_max_regression=_env_float("GATE_MAX_REGRESSION", 0.02),
    )


@functools.cache
def client(service: str) -> Any:
    return boto3.client(service)


def split_s3_uri(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an s3:// URI: {uri!r}")
    return parsed.netloc, parsed.path.lstrip("/")


def read_run_record(uri: str) -> RunRecord | None:
    """The deployed-run record, checked (contract.documents); None when no run is deployed yet."""
    bucket, key = split_s3_uri(uri)
    try:
        body = client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    except client("s3").exceptions.NoSuchKey:
        return None
    return parse_run_record(body, uri)


def write_json(uri: str, document: Any) -> None:
    bucket, key = split_s3_uri(uri)
    body = json.dumps(document, indent=1, allow_nan=False).encode()
    client("s3").put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")


def log(message: str, **fields: Any) -> None:
    """One JSON object a line, so CloudWatch Logs Insights can query the fields."""
    LOGGER.info(json.dumps({"message": message, **fields}, default=str))
