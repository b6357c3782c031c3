"""`--tune`: a random search over FM's hyperparameters with the local trainer, scored on the validation rows,
the best taken forward; the local counterpart of the cloud's SageMaker automatic model tuning step.

The search space is cdk.json's `fm_tuning.ranges`, the one the cloud's tuning job gets:
{"<hyperparameter>": {"type": "continuous" | "integer", "min": x, "max": y, "scaling": "Logarithmic" |
"Linear" | "Auto"}}. Without that key, DEFAULT_RANGES (below), inside the ranges SageMaker's "Tune a
Factorization Machines Model" page lists as tunable (the learning rates and weight decays 1e-8..512, epochs
1..1000, mini_batch_size 100..10000). The number of trials is fm_tuning.max_jobs unless the command line says.

Each trial trains on prep/train/ with the run's hyperparameters overridden by the trial's values, and is
scored by its last epoch's RMSE on prep/validation/: the objective of the cloud's tuning job, FM's test:rmse,
which the training job computes on the validation channel. The test rows are not read. Values are drawn from
one seeded generator, so the same seed draws the same trials. A trial whose training diverges is recorded
with no score and never chosen.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from contract import layout
from local.fm import read_shards, train_fm
from local.pipeline import PipelineError
from local.pipeline.training import channel_rows

__all__ = ["DEFAULT_RANGES", "DEFAULT_TRIALS", "TUNE_OPTION", "check_ranges", "draw", "tune", "tuning_space"]

TUNE_OPTION = "--tune"
DEFAULT_TRIALS = 8
DEFAULT_RANGES: dict[str, dict[str, Any]] = {
    "linear_lr": {"type": "continuous", "min": 1e-3, "max": 0.1, "scaling": "Logarithmic"},
    "factors_lr": {"type": "continuous", "min": 1e-4, "max": 0.01, "scaling": "Logarithmic"},
    "factors_wd": {"type": "continuous", "min": 1e-6, "max": 0.01, "scaling": "Logarithmic"},
    "epochs": {"type": "integer", "min": 3, "max": 15, "scaling": "Linear"},
}
"""The local default space: the learning rates around those that move FM at this scale, weight decay, and
epochs capped for a run on one machine."""
TYPES = ("continuous", "integer")
SCALINGS = ("Logarithmic", "Linear", "Auto")


def check_ranges(ranges: object, where: str) -> dict[str, dict[str, Any]]:
    """The ranges, checked: PipelineError naming the hyperparameter and what is wrong."""
    if not isinstance(ranges, dict) or not ranges:
        raise PipelineError(f"{where}: ranges must be a non-empty object of hyperparameter ranges")
    checked: dict[str, dict[str, Any]] = {}
    for name, spec in ranges.items():
        if not isinstance(spec, dict):
            raise PipelineError(f"{where}.{name}: must be an object with type, min, max and scaling")
        kind, low, high = spec.get("type"), spec.get("min"), spec.get("max")
        scaling = spec.get("scaling", "Auto")
        if kind not in TYPES:
            raise PipelineError(f"{where}.{name}.type is {kind!r}, not one of {', '.join(TYPES)}")
        if scaling not in SCALINGS:
            raise PipelineError(f"{where}.{name}.scaling is {scaling!r}, not one of {', '.join(SCALINGS)}")
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high))
        if not numbers or not low <= high:  # type: ignore[operator]
            raise PipelineError(f"{where}.{name}: min {low!r} and max {high!r} must be numbers, min <= max")
        if scaling == "Logarithmic" and low <= 0:  # type: ignore[operator]
            raise PipelineError(f"{where}.{name}: Logarithmic scaling needs min > 0, got {low!r}")
        checked[str(name)] = {"type": kind, "min": low, "max": high, "scaling": scaling}
    return checked


def tuning_space(context: Mapping[str, Any]) -> tuple[dict[str, dict[str, Any]], int, str]:
    """(ranges, trials, where they come from): cdk.json's fm_tuning when it has ranges, else the defaults."""
    tuning = context.get("fm_tuning")
    if isinstance(tuning, dict) and "ranges" in tuning:
        jobs = tuning.get("max_jobs", DEFAULT_TRIALS)
        trials = (
            jobs if isinstance(jobs, int) and not isinstance(jobs, bool) and jobs >= 1 else DEFAULT_TRIALS
        )
        return (
            check_ranges(tuning["ranges"], "cdk.json fm_tuning.ranges"),
            trials,
            "cdk.json fm_tuning.ranges",
        )
    return DEFAULT_RANGES, DEFAULT_TRIALS, "the built-in default space (cdk.json has no fm_tuning.ranges)"


def _logarithmic(spec: Mapping[str, Any]) -> bool:
    if spec["scaling"] == "Logarithmic":
        return True
    # Auto: logarithmic for a positive continuous range spanning two orders of magnitude or more.
    return bool(
        spec["scaling"] == "Auto"
        and spec["type"] == "continuous"
        and spec["min"] > 0
        and spec["max"] / spec["min"] >= 100
    )


def draw(ranges: Mapping[str, Mapping[str, Any]], rng: np.random.Generator) -> dict[str, float | int]:
    """One trial's values: uniform on each range, on the log scale where the range is logarithmic; integers
    rounded to the nearest (and kept inside the range)."""
    values: dict[str, float | int] = {}
    for name, spec in ranges.items():
        low, high = float(spec["min"]), float(spec["max"])
        if _logarithmic(spec):
            value = math.exp(rng.uniform(math.log(low), math.log(high)))
        else:
            value = rng.uniform(low, high)
        if spec["type"] == "integer":
            values[name] = int(min(max(round(value), math.ceil(low)), math.floor(high)))
        else:
            values[name] = float(value)
    return values


def tune(
    run_folder: Path,
    hyperparameters: Mapping[str, object],
    ranges: Mapping[str, Mapping[str, Any]],
    *,
    trials: int,
    seed: int,
    fm_seed: int,
) -> dict[str, Any]:
    """The random search (see the module docstring); returns the trials and the best one."""
    if trials < 1:
        raise PipelineError(f"{TUNE_OPTION}: trials must be at least 1, got {trials}")
    if not channel_rows(run_folder / layout.VALIDATION):
        raise PipelineError(f"{TUNE_OPTION}: the validation shard holds no row to score the trials on")
    train = read_shards(run_folder / layout.TRAIN)
    validation = read_shards(run_folder / layout.VALIDATION)
    rng = np.random.default_rng(seed)
    done: list[dict[str, Any]] = []
    for number in range(1, trials + 1):
        values = draw(ranges, rng)
        table = {**hyperparameters, **values}
        try:
            result = train_fm(train, validation, table, seed=fm_seed)
            score: float | None = float(result.epochs[-1]["test_rmse"] or math.nan)
        except FloatingPointError:  # the trial's learning rates diverge on this data
            score = None
        if score is not None and not math.isfinite(score):
            score = None
        done.append({"trial": number, "hyperparameters": values, "validation_rmse": score})
        shown = ", ".join(f"{k} {v:.4g}" for k, v in values.items())
        figure = "diverged" if score is None else f"validation RMSE {score:.4f}"
        print(f"  tune: trial {number}/{trials}: {shown}: {figure}", file=sys.stderr, flush=True)
    scored = [t for t in done if t["validation_rmse"] is not None]
    if not scored:
        raise PipelineError(f"{TUNE_OPTION}: every one of the {trials} trials diverged; narrow the ranges")
    best = min(scored, key=lambda t: (t["validation_rmse"], t["trial"]))
    return {"seed": seed, "ranges": dict(ranges), "trials": done, "best": best}
