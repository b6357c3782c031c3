"""Record the boto3 calls code makes, through botocore's event hooks, tagged with who makes them.

A test harness wraps an invocation in `RECORDER.recording(handler)`: every call a botocore client makes in
that thread until the block ends is kept with the handler's name, its parameters and the error code it got
back. The hooks are botocore's `provide-client-params` (the API parameters, before validation) and
`after-call` (the answer, errors included), installed once for every session, boto3's default session
included, whenever it is created (moto replaces the default session when a mock starts).

`normalized` turns the recording into a deterministic inventory: run ids and the values a harness bound to
a symbol (`bind`) are replaced, and repeated calls collapse.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.handlers

# A run id as lambdas/pipeline/start_run.py derives it: YYYYMMDD-hhmmss-<readable>-<6 hex>.
# A whole token: a tuning job's training job, <tuning job>-NNN-<8 hex>, keeps its suffix.
RUN_ID = re.compile(r"\d{8}-\d{6}-(?:[a-z0-9]+-)*[0-9a-f]{6}(?![0-9a-z])")
RUN_ID_SYMBOL = "{run_id}"
# Request members that carry data, not names: never part of an inventory.
DATA_MEMBERS = frozenset({"Body", "Payload", "Message"})


@dataclass
class RecordedCall:
    handler: str
    service: str
    operation: str
    params: dict[str, Any]
    error: str | None = None


def _names_only(value: Any) -> Any:
    """The parts of a request that can name resources: strings, numbers, booleans and their containers."""
    if isinstance(value, Mapping):
        kept = {str(k): _names_only(v) for k, v in value.items() if k not in DATA_MEMBERS}
        return {k: v for k, v in kept.items() if v is not None}
    if isinstance(value, list | tuple):
        return [item for item in (_names_only(v) for v in value) if item is not None]
    if isinstance(value, str | int | float | bool):
        return value
    return None


@dataclass
class Recorder:
    calls: list[RecordedCall] = field(default_factory=list)
    bindings: dict[str, str] = field(default_factory=dict)  # concrete value -> symbol, e.g. "{data_bucket}"
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _current: contextvars.ContextVar[str | None] = field(
        default_factory=lambda: contextvars.ContextVar("iam_recording", default=None)
    )
    _installed: bool = False

    # ---- hooks

    def install(self) -> None:
        """Register the hooks for every botocore session created from now on, and on boto3's default."""
        if self._installed:
            return
        botocore.handlers.BUILTIN_HANDLERS.append(("provide-client-params", self._before))
        botocore.handlers.BUILTIN_HANDLERS.append(("after-call", self._after))
        session = boto3.DEFAULT_SESSION
        if session is not None:
            session.events.register("provide-client-params", self._before)
            session.events.register("after-call", self._after)
        self._installed = True

    def _before(self, params: Mapping[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        handler = self._current.get()
        if handler is None:
            return
        call = RecordedCall(
            handler=handler,
            service=str(model.service_model.service_name),
            operation=str(model.name),
            params=_names_only(params),
        )
        context["iam_recorded_call"] = call
        with self._lock:
            self.calls.append(call)

    def _after(
        self, http_response: Any, parsed: Mapping[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        call = context.get("iam_recorded_call")
        if isinstance(call, RecordedCall) and int(getattr(http_response, "status_code", 200)) >= 300:
            call.error = str(parsed.get("Error", {}).get("Code") or http_response.status_code)

    # ---- recording

    @contextlib.contextmanager
    def recording(self, handler: str, bindings: Mapping[str, str] | None = None) -> Iterator[None]:
        """Record this thread's calls as made by `handler` (e.g. "lambdas.pipeline.gate.handler")."""
        self.install()
        with self._lock:
            self.bindings.update(bindings or {})
        token = self._current.set(handler)
        try:
            yield
        finally:
            self._current.reset(token)

    def bind(self, value: str, symbol: str) -> None:
        with self._lock:
            self.bindings[value] = symbol

    # ---- the inventory

    def normalized(self) -> list[dict[str, Any]]:
        """The recorded calls with run ids and bound values symbolic, deduplicated and sorted."""
        with self._lock:
            calls = list(self.calls)
            bindings = dict(self.bindings)
        return normalize(
            [
                {
                    "handler": c.handler,
                    "service": c.service,
                    "operation": c.operation,
                    "params": c.params,
                    "error": c.error,
                }
                for c in calls
            ],
            bindings,
        )


def _symbolic(value: Any, bindings: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _symbolic(v, bindings) for k, v in value.items()}
    if isinstance(value, list):
        return [_symbolic(v, bindings) for v in value]
    if not isinstance(value, str):
        return value
    for concrete in sorted(bindings, key=len, reverse=True):  # longest first: no partial replacement
        value = value.replace(concrete, bindings[concrete])
    return RUN_ID.sub(RUN_ID_SYMBOL, value)


def normalize(entries: list[dict[str, Any]], bindings: Mapping[str, str]) -> list[dict[str, Any]]:
    unique = {
        json.dumps(_symbolic(entry, bindings), sort_keys=True): _symbolic(entry, bindings)
        for entry in entries
    }
    return [unique[key] for key in sorted(unique)]


def substitute(value: Any, symbols: Mapping[str, str]) -> Any:
    """The inverse for a check: every "{symbol}" replaced by the value the check gives it."""
    if isinstance(value, dict):
        return {k: substitute(v, symbols) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, symbols) for v in value]
    if not isinstance(value, str):
        return value
    for symbol, concrete in symbols.items():
        value = value.replace(symbol, concrete)
    if re.search(r"\{[a-z_]+(?::[a-z]+)?\}", value):
        raise ValueError(f"{value!r} holds a symbol the check gives no value: give it one")
    return value


RECORDER = Recorder()
