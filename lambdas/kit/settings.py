"""A function's settings: a frozen dataclass whose fields name their environment variables, parsed and
validated in one go.

    @dataclass(frozen=True)
    class GateSettings:
        run_record_uri: str = variable("RUN_RECORD_URI", storage_uri("the run record"))
        gate_min_improvement: float = variable("GATE_MIN_IMPROVEMENT", number(0, 1), default="0.01")

    load(GateSettings)  # ConfigError: GATE_MIN_IMPROVEMENT='x' is not allowed: a number from 0 to 1

A handler module loads its settings once per container: at import (the cold start fails, naming the
variable) or in a functools.cache'd function when one module holds several functions' handlers.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast
from urllib.parse import urlparse

from .errors import ConfigError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T")
S = TypeVar("S", bound="DataclassInstance")
_VARIABLE = "loftrec.environment_variable"


@dataclass(frozen=True)
class Parser(Generic[T]):
    """Turns a variable's text into its value; `convert` raises ValueError for text `allowed` excludes."""

    allowed: str
    """What the variable may hold, as the error line says it (e.g. "an integer from 1 to 100")."""
    convert: Callable[[str], T]


@dataclass(frozen=True)
class Variable(Generic[T]):
    name: str
    parser: Parser[T]
    default: str | None
    """The text used when the variable is unset (parsed like a set value); None: the variable is required."""


def variable(name: str, parser: Parser[T], *, default: str | None = None) -> T:
    """A settings field read from the environment variable `name`."""
    return cast(T, dataclasses.field(metadata={_VARIABLE: Variable(name, parser, default)}))


def load(settings: type[S], environ: Mapping[str, str] | None = None) -> S:
    """The settings from the environment (os.environ unless given); ConfigError names the first variable
    that is missing or not allowed, its value and what is allowed."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for field in dataclasses.fields(settings):
        spec = field.metadata.get(_VARIABLE)
        if not isinstance(spec, Variable):
            raise TypeError(f"{settings.__name__}.{field.name} names no environment variable: use variable()")
        raw = environ.get(spec.name)
        if raw is None:
            if spec.default is None:
                raise ConfigError(f"{spec.name} is not set: {spec.parser.allowed} is required")
            raw = spec.default
        try:
            values[field.name] = spec.parser.convert(raw.strip())
        except ValueError:
            raise ConfigError(f"{spec.name}={raw!r} is not allowed: {spec.parser.allowed}") from None
    return settings(**values)


# ---------------------------------------------------------------------------------------------- parsers


def integer(low: int, high: int) -> Parser[int]:
    def convert(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise ValueError(text)
        return value

    return Parser(f"an integer from {low} to {high}", convert)


def number(low: float, high: float, *, of: str = "") -> Parser[float]:
    """A finite number from low to high; `of` names the unit ("seconds")."""

    def convert(text: str) -> float:
        value = float(text)
        if not (math.isfinite(value) and low <= value <= high):
            raise ValueError(text)
        return value

    unit = f" of {of}" if of else ""
    return Parser(f"a number{unit} from {low:g} to {high:g}", convert)


def storage_uri(what: str) -> Parser[str]:
    """The URI of one file (not a folder): s3://bucket/key, or file:///absolute/path."""

    def convert(text: str) -> str:
        parsed = urlparse(text)
        if parsed.scheme == "s3" and parsed.netloc and parsed.path.strip("/") and not text.endswith("/"):
            return text
        local = parsed.netloc in ("", "localhost")  # as storage.split_uri reads it
        if (
            parsed.scheme == "file"
            and local
            and parsed.path.startswith("/")
            and not parsed.path.endswith("/")
        ):
            return text
        raise ValueError(text)

    return Parser(f"{what}'s s3://bucket/key or file:///absolute/path", convert)


def http_url_or_unset() -> Parser[str | None]:
    """An http:// or https:// URL; empty means unset (None)."""

    def convert(text: str) -> str | None:
        if not text:
            return None
        parsed = urlparse(text)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(text)
        return text

    return Parser("an http:// or https:// URL, or unset", convert)


def non_empty(what: str) -> Parser[str]:
    """Non-empty text (a bucket or endpoint name the stack passes)."""

    def convert(text: str) -> str:
        if not text:
            raise ValueError(text)
        return text

    return Parser(f"{what} (not empty)", convert)


def json_object(what: str) -> Parser[dict[str, Any]]:
    def convert(text: str) -> dict[str, Any]:
        value = json.loads(text)  # JSONDecodeError is a ValueError
        if not isinstance(value, dict):
            raise ValueError(text)
        return value

    return Parser(f"{what} as a JSON object", convert)
