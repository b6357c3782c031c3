"""The API calls a state machine's Task states make, with the values a sample execution gives them.

A Task's Resource names the integration (optimized `arn:aws:states:::sagemaker:createTrainingJob.sync`, or
`arn:aws:states:::aws-sdk:<service>:<action>`), its Parameters the request. A `"Key.$"` field is a JSONPath
into the state's input or the context object, or an intrinsic function: they are evaluated against a sample
input; what the sample does not hold stays a `Dynamic` value, which is fine for a message body and fails
loudly where a resource name is needed (tools/iam/required.py cannot fill an ARN with it).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import botocore.session

from .required import Call
from .template import iter_states

# Step Functions' names of optimized integrations that are not botocore's.
OPTIMIZED_SERVICES = {"states": "stepfunctions"}


class StatesError(ValueError):
    """A definition this module cannot turn into calls; the message names the state."""


@dataclass(frozen=True)
class Dynamic:
    """A value known only at run time (the expression it comes from)."""

    expression: str

    def __str__(self) -> str:
        return f"<{self.expression}>"


@functools.cache
def _sdk_services() -> dict[str, str]:
    """Step Functions' aws-sdk service names (botocore's without hyphens) -> botocore's."""
    names = botocore.session.get_session().get_available_services()
    return {name.replace("-", ""): name for name in names}


def task_call_shape(resource: str) -> tuple[str, str, str, str]:
    """(botocore service, operation, integration, pattern) of a Task state's Resource."""
    match = re.fullmatch(
        r"arn:aws[a-z-]*:states:::([a-z0-9-]+):([a-zA-Z0-9:]+?)(?:\.(sync|waitForTaskToken))?(?::2)?",
        resource,
    )
    if match is None:
        raise StatesError(f"{resource!r} is not a Step Functions service integration ARN")
    service, action, pattern = match[1], match[2], match[3] or ""
    integration = "optimized"
    if service == "aws-sdk":
        sdk_service, _, action = action.partition(":")
        if sdk_service not in _sdk_services():
            raise StatesError(f"{resource!r}: no SDK service {sdk_service!r}")
        service, integration = _sdk_services()[sdk_service], "sdk"
    service = OPTIMIZED_SERVICES.get(service, service)
    return service, action[:1].upper() + action[1:], integration, pattern


# ---------------------------------------------------------------------------------------------------------
# JSONPath and intrinsic functions


def _path(document: Any, path: str) -> Any:
    """A JSONPath of the form $.a.b.c (or $) into `document`; Dynamic where the document ends."""
    if path == "$":
        return document
    if not path.startswith("$."):
        raise StatesError(f"JSONPath {path!r} is not of the form $.a.b")
    current = document
    for part in path[2:].split("."):
        if not isinstance(current, dict) or part not in current:
            return Dynamic(path)
        current = current[part]
    return current


class _Parser:
    """A recursive-descent reader of intrinsic function calls: States.Format('x {}', $.a, 'y')."""

    def __init__(self, text: str, state: Any, context: Any) -> None:
        self.text, self.at, self.state, self.context = text, 0, state, context

    def error(self, message: str) -> StatesError:
        return StatesError(f"{message} at {self.at} in {self.text!r}")

    def skip(self) -> None:
        while self.at < len(self.text) and self.text[self.at] == " ":
            self.at += 1

    def value(self) -> Any:
        self.skip()
        text = self.text
        if text.startswith("'", self.at):
            out = []
            self.at += 1
            while self.at < len(text) and text[self.at] != "'":
                if text[self.at] == "\\":
                    self.at += 1
                out.append(text[self.at])
                self.at += 1
            if self.at >= len(text):
                raise self.error("unterminated string")
            self.at += 1
            return "".join(out)
        if text.startswith("$", self.at):
            match = re.compile(r"\$\$?(?:\.[A-Za-z0-9_]+)*").match(text, self.at)
            assert match is not None
            self.at = match.end()
            path = match[0]
            return _path(self.context, path[1:]) if path.startswith("$$") else _path(self.state, path)
        match = re.compile(r"States\.[A-Za-z]+").match(text, self.at)
        if match is not None:
            self.at = match.end()
            return self.call(match[0])
        match = re.compile(r"-?\d+(?:\.\d+)?|true|false|null").match(text, self.at)
        if match is not None:
            self.at = match.end()
            return json.loads(match[0])
        raise self.error("expected a string, a path, a number or an intrinsic function")

    def call(self, name: str) -> Any:
        self.skip()
        if not self.text.startswith("(", self.at):
            raise self.error(f"{name} without arguments")
        self.at += 1
        args: list[Any] = []
        self.skip()
        while not self.text.startswith(")", self.at):
            args.append(self.value())
            self.skip()
            if self.text.startswith(",", self.at):
                self.at += 1
            elif not self.text.startswith(")", self.at):
                raise self.error("expected , or )")
        self.at += 1
        return _intrinsic(name, args)


def _format(template: Any, *values: Any) -> str:
    pieces = str(template).split("{}")
    if len(pieces) != len(values) + 1:
        raise StatesError(f"States.Format({template!r}) takes {len(pieces) - 1} values, not {len(values)}")
    rendered = [pieces[0]]
    for value, piece in zip(values, pieces[1:], strict=True):
        rendered += [value if isinstance(value, str) else json.dumps(value), piece]
    return "".join(rendered)


# The intrinsic functions whose value a sample can give; any other is Dynamic.
INTRINSICS: dict[str, Any] = {
    "States.Format": _format,
    "States.Array": lambda *args: list(args),
    "States.JsonMerge": lambda left, right, _deep: {**left, **right},
    "States.JsonToString": lambda value: json.dumps(value, separators=(",", ":")),
    "States.StringToJson": json.loads,
}


def _intrinsic(name: str, args: list[Any]) -> Any:
    if name not in INTRINSICS or any(isinstance(arg, Dynamic) for arg in args):
        return Dynamic(f"{name}(...)")
    return INTRINSICS[name](*args)


def evaluate(expression: str, state: Any, context: Any) -> Any:
    parser = _Parser(expression, state, context)
    value = parser.value()
    parser.skip()
    if parser.at != len(expression):
        raise parser.error("unexpected text after the expression")
    return value


def parameters(template: Any, state: Any, context: Any) -> Any:
    """A Parameters object with every "Key.$" field evaluated (as "Key")."""
    if isinstance(template, list):
        return [parameters(item, state, context) for item in template]
    if not isinstance(template, dict):
        return template
    result: dict[str, Any] = {}
    for key, value in template.items():
        if key.endswith(".$"):
            result[key[:-2]] = evaluate(value, state, context)
        else:
            result[key] = parameters(value, state, context)
    return result


# ---------------------------------------------------------------------------------------------------------
# Task states -> calls


@dataclass(frozen=True)
class TaskCall:
    state: str
    call: Call


def task_calls(machine: Mapping[str, Any], state: Any, context: Any) -> Iterator[TaskCall]:
    """Every Task state's call, its parameters evaluated against the sample `state` input and `context`."""
    for name, body in iter_states(machine):
        if body.get("Type") != "Task":
            continue
        service, operation, integration, pattern = task_call_shape(body["Resource"])
        try:
            params = parameters(body.get("Parameters", {}), state, context)
        except StatesError as error:
            raise StatesError(f"state {name!r}: {error}") from None
        yield TaskCall(name, Call(service, operation, params, integration, pattern))
