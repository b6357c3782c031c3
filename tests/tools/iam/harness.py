"""The hook the test harnesses call around a Lambda handler invocation, so that the IAM check knows every
boto3 call our functions make (tests/stacks/pipeline_cloud.py: the moto runs of the state machine;
tests/lambdas/serving/support.py: the serving shims).

What differs between test worlds is bound to symbols, so that the stored inventory says what the deployed
functions touch: the data bucket (from RUN_RECORD_URI or DATA_BUCKET) is `{data_bucket}`, the endpoints the
deployed-run record names are `{endpoint:fm}` and `{endpoint:blazingtext}`, run ids are `{run_id}`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import unquote, urlparse

import boto3
import pytest

from tools.iam.recorder import RECORDER

RECORDED_CALLS = Path(__file__).with_name("recorded_calls.json")
DATA_BUCKET = "{data_bucket}"


def _record(uri: str) -> Any:
    """The deployed-run record at RUN_RECORD_URI, or None; read outside any recording."""
    parsed = urlparse(uri)
    try:
        if parsed.scheme == "file":
            return json.loads(Path(unquote(parsed.path)).read_text())
        if parsed.scheme == "s3":
            body = boto3.client("s3").get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))["Body"]
            return json.loads(body.read())
    except Exception:  # no record yet, or one a test broke on purpose: nothing to bind
        return None
    return None


def bindings(environment: Mapping[str, str]) -> dict[str, str]:
    found: dict[str, str] = {}
    if environment.get("DATA_BUCKET"):
        found[environment["DATA_BUCKET"]] = DATA_BUCKET
    record_uri = environment.get("RUN_RECORD_URI", "")
    if record_uri.startswith("s3://"):
        found[urlparse(record_uri).netloc] = DATA_BUCKET
    record = _record(record_uri) if record_uri else None
    if isinstance(record, dict) and isinstance(record.get("endpoints"), dict):
        for model, name in record["endpoints"].items():
            if isinstance(name, str) and name:
                found[name] = f"{{endpoint:{model}}}"
    return found


@contextlib.contextmanager
def lambda_invocation(handler: str, environment: Mapping[str, str]) -> Iterator[None]:
    """Record the boto3 calls made in this block as made by the function running `handler`."""
    with RECORDER.recording(handler, bindings(environment)):
        yield


def record_handlers(monkeypatch: pytest.MonkeyPatch, module: ModuleType, handlers: Mapping[str, str]) -> None:
    """Wrap `module`'s handler functions (attribute -> Handler string) in `lambda_invocation`."""
    for attribute, handler in handlers.items():
        original: Callable[..., Any] = getattr(module, attribute)

        @functools.wraps(original)
        def wrapped(
            event: Any, context: Any, _original: Callable[..., Any] = original, _handler: str = handler
        ) -> Any:
            with lambda_invocation(_handler, dict(os.environ)):  # the environment at call time
                return _original(event, context)

        monkeypatch.setattr(module, attribute, wrapped)
