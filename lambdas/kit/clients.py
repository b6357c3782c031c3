"""boto3 clients, one per service per container, created on first use.

boto3 is imported when a client is first needed: a local run that reads file:// URIs never loads it.
`client.cache_clear()` gives a fresh container's clients (the tests' cold start).
"""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def client(service: str) -> Any:
    import boto3  # noqa: PLC0415 (loaded when AWS is first needed, not by local runs)

    return boto3.client(service)
