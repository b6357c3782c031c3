"""One set of checks for the built-in algorithms' hyperparameters, and the strings SageMaker is sent.

The CDK configuration applies these at synth (cdk.json, `-c`), the "Start run" step applies the same at run
time to a run's overrides, so a value refused at synth is refused at run time with the same message. Values
are JSON values (a number may also come as its decimal string, as `-c` gives it); SageMaker takes every
hyperparameter as a string, and `sagemaker_strings` writes them as the SageMaker Python SDK does (str() of
the value: booleans as "True" / "False", as BlazingText documents them).

Ranges are the ones the algorithms' hyperparameter pages give (fact-machines-hyperparameters,
blazingtext_hyperparameters: Word2Vec).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from contract.algorithms import (
    BLAZINGTEXT_HYPERPARAMETERS,
    BLAZINGTEXT_MODES,
    FM_HYPERPARAMETERS,
    FM_RESERVED,
)

Value = str | int | float | bool

FM_TABLE = "fm_hyperparameters"
BLAZINGTEXT_TABLE = "blazingtext_hyperparameters"

_FM_COUNTS = ("num_factors", "epochs", "mini_batch_size")
_FM_NON_NEGATIVE = (
    "bias_lr",
    "linear_lr",
    "factors_lr",
    "bias_wd",
    "linear_wd",
    "factors_wd",
    *(f"{group}_init_{what}" for group in ("bias", "linear", "factors") for what in ("sigma", "scale")),
)
_FM_POSITIVE = ("eps", "clip_gradient", "rescale_grad")
_FM_INIT_METHODS = ("normal", "uniform", "constant")
_BT_COUNTS = ("epochs", "window_size", "vector_dim", "negative_samples", "min_char", "max_char", "buckets")
_BT_MAX_VECTOR_DIM = 1000
BLAZINGTEXT_INSTANCE_COUNT = "blazingtext_instance_count"
BLAZINGTEXT_DISTRIBUTED_MODE = "batch_skipgram"
BLAZINGTEXT_MAX_DISTRIBUTED_INSTANCES = 64


class HyperparameterError(ValueError):
    """A hyperparameter is unknown, reserved or out of range; one line:
    `table.name=value is not allowed: what is`."""


def _fail(table: str, name: str, value: object, allowed: str) -> HyperparameterError:
    return HyperparameterError(f"{table}.{name}={value!r} is not allowed: {allowed}")


def _number(table: str, name: str, value: object, allowed: str) -> float:
    if isinstance(value, bool):
        raise _fail(table, name, value, allowed)
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise _fail(table, name, value, allowed) from None
    else:
        raise _fail(table, name, value, allowed)
    if not math.isfinite(number):
        raise _fail(table, name, value, allowed)
    return number


def _integer(table: str, name: str, value: object, *, minimum: int, maximum: int | None = None) -> int:
    allowed = f"an integer >= {minimum}" + ("" if maximum is None else f" and <= {maximum}")
    number = _number(table, name, value, allowed)
    if not number.is_integer() or number < minimum or (maximum is not None and number > maximum):
        raise _fail(table, name, value, allowed)
    return int(number)


def _boolean(table: str, name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _fail(table, name, value, "true or false")


def _names(
    table: str, values: Mapping[str, object], known: frozenset[str], reserved: frozenset[str] = frozenset()
) -> None:
    for name, value in values.items():
        if name in reserved:
            raise _fail(table, name, value, "nothing: the pipeline sets it")
        if name not in known:
            raise _fail(table, name, value, "one of " + ", ".join(sorted(known)))
        if not isinstance(value, str | int | float | bool):
            raise _fail(table, name, value, "a string, number or boolean")


def check_fm(values: Mapping[str, object], *, table: str = FM_TABLE) -> dict[str, Value]:
    """The FM table checked: SageMaker's names only (feature_dim and predictor_type are the pipeline's)."""
    _names(table, values, FM_HYPERPARAMETERS, FM_RESERVED)
    for name in _FM_COUNTS:
        if name in values:
            _integer(table, name, values[name], minimum=1)
    for name in _FM_NON_NEGATIVE:
        if name in values and _number(table, name, values[name], "a number >= 0") < 0:
            raise _fail(table, name, values[name], "a number >= 0")
    for name in _FM_POSITIVE:
        if name in values and _number(table, name, values[name], "a number > 0") <= 0:
            raise _fail(table, name, values[name], "a number > 0")
    for group in ("bias", "linear", "factors"):
        name = f"{group}_init_method"
        if name in values and values[name] not in _FM_INIT_METHODS:
            raise _fail(table, name, values[name], "one of " + ", ".join(_FM_INIT_METHODS))
        if name in values and values[name] == "uniform" and f"{group}_init_scale" not in values:
            raise _fail(table, name, values[name], f"uniform only with {group}_init_scale")
        if name in values and values[name] == "constant" and f"{group}_init_value" not in values:
            raise _fail(table, name, values[name], f"constant only with {group}_init_value")
        value_name = f"{group}_init_value"
        if value_name in values:
            _number(table, value_name, values[value_name], "a number")
    return dict(values)  # type: ignore[arg-type]  # every value checked to be a Value above


def _ranges(table: str, values: Mapping[str, object], mode: object) -> None:
    for name in _BT_COUNTS:
        if name in values:
            maximum = _BT_MAX_VECTOR_DIM if name == "vector_dim" else None
            _integer(table, name, values[name], minimum=1, maximum=maximum)
    if "min_count" in values:
        _integer(table, "min_count", values["min_count"], minimum=0)
    if "learning_rate" in values:
        rate = values["learning_rate"]
        if _number(table, "learning_rate", rate, "a number > 0") <= 0:
            raise _fail(table, "learning_rate", rate, "a number > 0")
    if "sampling_threshold" in values:
        threshold = values["sampling_threshold"]
        if not 0 < _number(table, "sampling_threshold", threshold, "a fraction in (0, 1)") < 1:
            raise _fail(table, "sampling_threshold", threshold, "a fraction in (0, 1)")
    if "batch_size" in values:
        if mode != "batch_skipgram":
            raise _fail(table, "batch_size", values["batch_size"], "only with mode batch_skipgram")
        _integer(table, "batch_size", values["batch_size"], minimum=10, maximum=20)


def check_blazingtext(values: Mapping[str, object], *, table: str = BLAZINGTEXT_TABLE) -> dict[str, Value]:
    """The BlazingText table checked, booleans as booleans: Word2Vec's names and ranges; the supervised mode
    trains a classifier, which gives no word vectors to serve."""
    _names(table, values, BLAZINGTEXT_HYPERPARAMETERS)
    mode = values.get("mode", "skipgram")
    if mode not in BLAZINGTEXT_MODES:
        raise _fail(table, "mode", mode, "one of " + ", ".join(sorted(BLAZINGTEXT_MODES)))
    _ranges(table, values, mode)
    checked: dict[str, Value] = dict(values)  # type: ignore[arg-type]  # every value checked by _names
    for name in ("subwords", "evaluation"):
        if name in values:
            checked[name] = _boolean(table, name, values[name])
    min_char = _integer(table, "min_char", values.get("min_char", 3), minimum=1)
    if min_char > _integer(table, "max_char", values.get("max_char", 6), minimum=1):
        raise _fail(table, "min_char", values.get("min_char"), "at most max_char")
    if checked.get("subwords", False) is True and mode == "batch_skipgram":
        raise _fail(table, "subwords", True, "false with mode batch_skipgram (it has no subwords)")
    return checked


def check_blazingtext_instance_count(count: object, mode: object) -> int:
    """BlazingText's instance count for a table's mode: Word2Vec's skipgram and cbow modes train on one
    instance; only batch_skipgram distributes (blazingtext.html, "EC2 instance recommendations")."""
    maximum = BLAZINGTEXT_MAX_DISTRIBUTED_INSTANCES if mode == BLAZINGTEXT_DISTRIBUTED_MODE else 1
    allowed = f"an integer >= 1 and <= {maximum}"
    number = count
    if isinstance(count, str) and re.fullmatch(r"[+-]?\d+", count.strip()):
        number = int(count)
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= maximum:
        raise HyperparameterError(f"{BLAZINGTEXT_INSTANCE_COUNT}={count!r} is not allowed: {allowed}")
    return number


def sagemaker_string(value: Value) -> str:
    """A hyperparameter as SageMaker receives it from the SageMaker Python SDK: str() of the value."""
    return str(value)


def sagemaker_strings(values: Mapping[str, Value]) -> dict[str, str]:
    return {name: sagemaker_string(value) for name, value in values.items()}
