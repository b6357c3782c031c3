"""The field parsers of the typed configuration (stacks/config.py, stacks/fm_tuning.py): each takes the key
(for the message) and the raw value (a JSON value from cdk.json or a string from -c) and returns the typed
value or raises ConfigError with one line naming the key, the value and what is allowed."""

from __future__ import annotations

import json
import re

__all__ = ["ConfigError", "boolean", "fail", "integer", "number", "scalar"]


class ConfigError(ValueError):
    """A configuration value is missing or not allowed; the message is one line."""


def fail(key: str, value: object, allowed: str) -> ConfigError:
    return ConfigError(f"{key}={value!r} is not allowed: {allowed}")


def integer(key: str, value: object, *, minimum: int, maximum: int | None = None) -> int:
    allowed = f"an integer >= {minimum}" + ("" if maximum is None else f" and <= {maximum}")
    if isinstance(value, bool):
        raise fail(key, value, allowed)
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
        value = int(value)
    if not isinstance(value, int) or value < minimum or (maximum is not None and value > maximum):
        raise fail(key, value, allowed)
    return value


def number(key: str, value: object, *, minimum: float, maximum: float) -> float:
    allowed = f"a number from {minimum} to {maximum}"
    if isinstance(value, bool):
        raise fail(key, value, allowed)
    parsed: float
    if isinstance(value, int | float):
        parsed = float(value)
    elif isinstance(value, str):
        try:
            parsed = float(value)
        except ValueError:
            raise fail(key, value, allowed) from None
    else:
        raise fail(key, value, allowed)
    if not minimum <= parsed <= maximum:
        raise fail(key, value, allowed)
    return parsed


def boolean(key: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise fail(key, value, "true or false")


def scalar(value: object) -> object:
    """A -c value arrives as a string: read numbers and booleans the way JSON writes them."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value
