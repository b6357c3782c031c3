"""Checked reading of a built-in algorithm's hyperparameters, as the local trainers receive them.

The local trainers take the same hyperparameter dictionaries as the SageMaker algorithms they stand in for
(the values in cdk.json), with JSON types: integers as int, real numbers as int or float, flags as bool,
choices as str. A wrong key, type or range fails with one line that names the algorithm and the key.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["HyperparameterError", "HyperparameterReader"]


class HyperparameterError(ValueError):
    """A hyperparameter is unknown, missing, of the wrong type or out of range; the message names it."""


class HyperparameterReader:
    """Reads typed values out of one algorithm's hyperparameter dictionary.

    Every key of ``values`` must be among ``known``; each accessor returns the given value checked, or the
    default when the key is absent (``default=None`` on a required accessor means the key is required).
    """

    def __init__(self, algorithm: str, values: Mapping[str, object], known: Iterable[str]) -> None:
        self.algorithm = algorithm
        known_set = set(known)
        if not isinstance(values, Mapping):
            raise HyperparameterError(
                f"{algorithm} hyperparameters must be a mapping of names to values, "
                f"got {type(values).__name__}"
            )
        for key in values:
            if not isinstance(key, str):
                raise HyperparameterError(f"{algorithm} hyperparameter names must be strings, got {key!r}")
            if key not in known_set:
                raise HyperparameterError(
                    f"unknown {algorithm} hyperparameter {key!r} (known: {', '.join(sorted(known_set))})"
                )
        self.values = dict(values)

    def _fail(self, key: str, problem: str) -> HyperparameterError:
        return HyperparameterError(f"{self.algorithm} hyperparameter {key!r} {problem}")

    def _describe(self, value: object) -> str:
        return f"{value!r} ({type(value).__name__})"

    def has(self, key: str) -> bool:
        return key in self.values

    def integer(self, key: str, default: int | None, *, minimum: int | None = None) -> int:
        """An int (bool is not an int here); required when default is None."""
        if key not in self.values:
            if default is None:
                raise self._fail(key, "is required")
            return default
        value = self.values[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(key, f"must be an integer, got {self._describe(value)}")
        if minimum is not None and value < minimum:
            raise self._fail(key, f"must be at least {minimum}, got {value}")
        return value

    def number(
        self,
        key: str,
        default: float | None,
        *,
        minimum: float | None = None,
        above: float | None = None,
        below: float | None = None,
    ) -> float:
        """A finite real number (int or float); minimum is inclusive, above and below are exclusive bounds."""
        if key not in self.values:
            if default is None:
                raise self._fail(key, "is required")
            return default
        return self._number(key, minimum=minimum, above=above, below=below)

    def optional_number(
        self, key: str, *, minimum: float | None = None, above: float | None = None
    ) -> float | None:
        """A finite real number, or None when the key is absent."""
        if key not in self.values:
            return None
        return self._number(key, minimum=minimum, above=above, below=None)

    def _number(self, key: str, *, minimum: float | None, above: float | None, below: float | None) -> float:
        value = self.values[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._fail(key, f"must be a number, got {self._describe(value)}")
        number = float(value)
        if not math.isfinite(number):
            raise self._fail(key, f"must be finite, got {value}")
        if minimum is not None and number < minimum:
            raise self._fail(key, f"must be at least {minimum}, got {value}")
        if above is not None and number <= above:
            raise self._fail(key, f"must be greater than {above}, got {value}")
        if below is not None and number >= below:
            raise self._fail(key, f"must be less than {below}, got {value}")
        return number

    def boolean(self, key: str, default: bool) -> bool:
        if key not in self.values:
            return default
        value = self.values[key]
        if not isinstance(value, bool):
            raise self._fail(key, f"must be true or false, got {self._describe(value)}")
        return value

    def choice(self, key: str, default: str | None, choices: Iterable[str]) -> str:
        """One of the given strings; required when default is None."""
        options = tuple(choices)
        if key not in self.values:
            if default is None:
                raise self._fail(key, f"is required (one of {', '.join(options)})")
            return default
        value = self.values[key]
        if not isinstance(value, str) or value not in options:
            raise self._fail(key, f"must be one of {', '.join(options)}, got {self._describe(value)}")
        return value


def hyperparameters_argument(text: str) -> Any:
    """A command line's hyperparameters: a JSON object, or @file.json holding one."""
    if text.startswith("@"):
        text = Path(text[1:]).read_text(encoding="utf-8")
    return json.loads(text)
