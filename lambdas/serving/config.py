"""The shims' configuration: environment variables parsed and validated once, at cold start."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlparse


class ConfigError(ValueError):
    """An environment variable is missing or invalid; the message names it, its value and what is allowed."""


@dataclass(frozen=True)
class ServingConfig:
    run_record_uri: str
    """Where the deployed-run record is: s3://bucket/key or file:///path."""
    max_batch_size: int
    """Most items in one predict request, and most titles in one similar-titles request."""
    neighbours: int
    """k: how many known titles a cold-start item's rating is blended from."""
    max_similar: int
    """Largest k a similar-titles request may ask for (also its default when the request names none)."""
    record_ttl_seconds: float
    """How long the run record is cached before it is read again (at most 60 s)."""
    sagemaker_runtime_endpoint_url: str | None
    """Another SageMaker runtime URL (the local runtime server); None = the AWS regional endpoint."""


MAX_FM_ROWS = 20_000
_DEFAULTS = {"MAX_BATCH_SIZE": "100", "NEIGHBOURS": "10", "MAX_SIMILAR": "50", "RECORD_TTL_SECONDS": "60"}


def _integer(environ: Mapping[str, str], name: str, low: int, high: int) -> int:
    raw = environ.get(name, _DEFAULTS[name])
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not allowed: an integer from {low} to {high}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={raw!r} is not allowed: an integer from {low} to {high}")
    return value


def load_config(environ: Mapping[str, str]) -> ServingConfig:
    """Parse the environment; raises ConfigError naming the first invalid variable."""
    record = environ.get("RUN_RECORD_URI", "").strip()
    parsed = urlparse(record)
    if parsed.scheme == "s3":
        if not parsed.netloc or not parsed.path.strip("/"):
            raise ConfigError(f"RUN_RECORD_URI={record!r} is not allowed: s3://bucket/key of the run record")
    elif parsed.scheme == "file":
        if not parsed.path.startswith("/") or parsed.path.endswith("/"):
            raise ConfigError(
                f"RUN_RECORD_URI={record!r} is not allowed: file:///absolute/path of the record"
            )
    else:
        raise ConfigError(
            f"RUN_RECORD_URI={record!r} is not allowed: the run record's s3://bucket/key or file:///path"
        )
    ttl_raw = environ.get("RECORD_TTL_SECONDS", _DEFAULTS["RECORD_TTL_SECONDS"])
    try:
        ttl = float(ttl_raw.strip())
    except ValueError:
        ttl = math.nan
    if not 0 <= ttl <= 60:
        raise ConfigError(f"RECORD_TTL_SECONDS={ttl_raw!r} is not allowed: a number of seconds from 0 to 60")
    url = environ.get("SAGEMAKER_RUNTIME_ENDPOINT_URL", "").strip() or None
    if url is not None:
        parsed_url = urlparse(url)
        if parsed_url.scheme not in ("http", "https") or not parsed_url.netloc:
            raise ConfigError(
                f"SAGEMAKER_RUNTIME_ENDPOINT_URL={url!r} is not allowed: an http:// or https:// URL, or unset"
            )
    max_batch_size = _integer(environ, "MAX_BATCH_SIZE", 1, 1000)
    neighbours = _integer(environ, "NEIGHBOURS", 1, 100)
    if max_batch_size * (1 + neighbours) > MAX_FM_ROWS:
        # Every item of a batch may be a cold start: its own row plus one per neighbour, in one FM request
        # that must stay well under the runtime's 6 MB payload limit (about 90 bytes a row).
        raise ConfigError(
            f"MAX_BATCH_SIZE={max_batch_size} with NEIGHBOURS={neighbours} is not allowed: "
            f"MAX_BATCH_SIZE * (1 + NEIGHBOURS) must be at most {MAX_FM_ROWS}"
        )
    return ServingConfig(
        run_record_uri=record,
        max_batch_size=max_batch_size,
        neighbours=neighbours,
        max_similar=_integer(environ, "MAX_SIMILAR", 1, 1000),
        record_ttl_seconds=ttl,
        sagemaker_runtime_endpoint_url=url,
    )
