"""What the run measures on the validation and test rows: RMSE with bootstrap intervals, the paired interval
of each difference, FM's predictions outside the rating range, and the bias model's predictions to hold FM
against.

RMSE is fm.metrics.rmse, the one the prep job scores its baselines with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from contract.features import RATING_RANGE, FeatureLayout
from fm.metrics import rmse
from fm.recordio import SparseRecords
from jobs.prep.baselines import BiasSettings, fit_biases
from lambdas.pipeline.paired import paired_difference
from local.pipeline.records import row_keys

__all__ = ["BOOTSTRAP_SAMPLES", "bias_predictions", "bootstrap", "paired_table", "range_violations"]

F64 = npt.NDArray[np.float64]
BOOTSTRAP_SAMPLES = 1000


def bootstrap(
    predictions: dict[str, npt.NDArray[np.float64]], actual: npt.NDArray[np.float64], seed: int
) -> dict[str, dict[str, float]]:
    """RMSE and its 95 % percentile bootstrap interval per model, resampling test rows (paired: every model
    is scored on the same resamples)."""
    rng = np.random.default_rng(seed)
    n = len(actual)
    samples = rng.integers(0, n, size=(BOOTSTRAP_SAMPLES, n)) if n else np.zeros((0, 0), int)
    out = {}
    for name, predicted in predictions.items():
        squared = (predicted - actual) ** 2
        resampled = np.sqrt(squared[samples].mean(axis=1)) if n else np.array([np.nan])
        low, high = np.percentile(resampled, [2.5, 97.5])
        out[name] = {"rmse": rmse(predicted, actual), "low": float(low), "high": float(high), "n": n}
    return out


def paired_table(
    actual: F64, candidate: tuple[str, F64], others: dict[str, F64], seed: int
) -> dict[str, Any]:
    """The candidate and every other model on the same rows: each one's RMSE with its bootstrap interval
    (bootstrap), and the candidate's relative RMSE difference from each other model with its paired
    bootstrap interval (lambdas.pipeline.paired: RMSE(candidate) / RMSE(other) - 1, negative when the
    candidate is better); the interval of the difference is what says whether the candidate is better."""
    name, predicted = candidate
    rows = len(actual)
    table: dict[str, Any] = {"rows": rows, "rmse": bootstrap({name: predicted, **others}, actual, seed)}
    differences = {}
    for other, values in others.items():
        if rows == 0:
            continue
        difference = paired_difference(actual, predicted, values)
        differences[f"{name} vs {other}"] = {
            "relative": difference.relative,
            "interval": [difference.low, difference.high],
            "rows": difference.rows,
        }
    table["differences"] = differences
    return table


def range_violations(predicted: F64) -> dict[str, Any]:
    """How many predictions fall below or above the rating range, the extremes, and the row count."""
    return {
        "below": int((predicted < RATING_RANGE[0]).sum()),
        "above": int((predicted > RATING_RANGE[1]).sum()),
        "min": float(predicted.min()),
        "max": float(predicted.max()),
        "rows": len(predicted),
    }


def bias_predictions(
    train: SparseRecords, test: SparseRecords, features: FeatureLayout, *, with_item: bool = True
) -> F64:
    """The regularized user + item bias model fitted on train (prep's settings), clipped to the range; with
    with_item=False the item term is left out, as for a product the model never saw."""
    fitted, asked = row_keys(train, features), row_keys(test, features)
    mu, b_user, b_item = fit_biases(
        fitted.customer,
        fitted.product,
        train.labels,
        num_users=features.num_customers,
        num_items=features.num_products,
        settings=BiasSettings(),
    )
    predicted = mu + b_user[asked.customer] + (b_item[asked.product] if with_item else 0.0)
    return np.clip(predicted, *RATING_RANGE)


def percent(value: float) -> str:
    """A relative difference as the report and the terminal print it: signed, one decimal. A value below 0
    keeps its sign down to 1e-6 ("-0.0 %": an interval wholly below 0 says so); within 1e-6 of 0 it is float
    noise around a tie (float32 predictions of the same answer) and prints "+0.0 %"."""
    return f"{0.0 if abs(value) < 1e-6 else value * 100:+.1f} %"


def percent_interval(interval: list[float]) -> str:
    return f"[{percent(interval[0])}, {percent(interval[1])}]"


def percent_difference(difference: Mapping[str, Any]) -> str:
    """A paired difference ({relative, interval}) as "-3.4 % [-6.5 %, -0.0 %]"."""
    return f"{percent(difference['relative'])} {percent_interval(difference['interval'])}"
