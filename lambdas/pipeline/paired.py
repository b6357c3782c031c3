"""Paired comparison of two models' RMSE on the same rows: the statistic the quality gate decides on.

Both models are scored on the same test rows, so their errors are correlated: the interval of the DIFFERENCE
is much narrower than either RMSE's own interval, and it is the difference the gate cares about. The interval
is a percentile bootstrap over rows (each resample draws the rows with replacement and recomputes both RMSEs
on the drawn rows), seeded, so the same inputs always give the same interval.

The difference is relative, `RMSE(candidate) / RMSE(other) - 1`: -0.03 means the candidate's RMSE is 3 %
below the other model's. Predictions are compared as served: clipped to the rating range by the caller.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.floating]

BOOTSTRAP_SAMPLES = 1000
BOOTSTRAP_SEED = 20261201
CONFIDENCE = 0.95
# Resamples drawn at once: bounds the index matrix to CHUNK x rows (8 MB at 50k rows).
_CHUNK = 20


@dataclass(frozen=True)
class PairedDifference:
    rows: int
    candidate_rmse: float
    other_rmse: float
    relative: float
    """RMSE(candidate) / RMSE(other) - 1 on all rows."""
    low: float
    high: float
    """The CONFIDENCE percentile interval of `relative` over the bootstrap resamples."""
    samples: int
    seed: int


def paired_difference(
    actual: Floats,
    candidate: Floats,
    other: Floats,
    *,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> PairedDifference:
    """The candidate's RMSE relative to the other model's on the same rows, with its bootstrap interval.

    ValueError when the arrays differ in length, hold no row, or hold a non-finite value: a comparison on
    nothing, or on a diverged model, must not pass a gate by accident.
    """
    y = np.asarray(actual, dtype=np.float64)
    c = np.asarray(candidate, dtype=np.float64)
    o = np.asarray(other, dtype=np.float64)
    if not (y.shape == c.shape == o.shape) or y.ndim != 1:
        raise ValueError(f"paired rows must align: actual {y.shape}, candidate {c.shape}, other {o.shape}")
    n = y.shape[0]
    if n == 0:
        raise ValueError("no rows to compare")
    if not (np.isfinite(y).all() and np.isfinite(c).all() and np.isfinite(o).all()):
        raise ValueError("a prediction or rating is not finite")
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    squared_c = (c - y) ** 2
    squared_o = (o - y) ** 2
    candidate_rmse = math.sqrt(float(squared_c.mean()))
    other_rmse = math.sqrt(float(squared_o.mean()))
    rng = np.random.default_rng(seed)
    relative = np.empty(samples, dtype=np.float64)
    for start in range(0, samples, _CHUNK):
        count = min(_CHUNK, samples - start)
        rows = rng.integers(0, n, size=(count, n))
        resampled_c = np.sqrt(squared_c[rows].mean(axis=1))
        resampled_o = np.sqrt(squared_o[rows].mean(axis=1))
        # A resample on which the other model is exact (RMSE 0) says nothing relative: count it as a tie.
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(resampled_o > 0, resampled_c / resampled_o - 1.0, 0.0)
        relative[start : start + count] = ratio
    tail = (1.0 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(relative, [tail, 100 - tail])
    point = candidate_rmse / other_rmse - 1.0 if other_rmse > 0 else 0.0
    return PairedDifference(
        rows=n,
        candidate_rmse=candidate_rmse,
        other_rmse=other_rmse,
        relative=point,
        low=float(low),
        high=float(high),
        samples=samples,
        seed=seed,
    )
