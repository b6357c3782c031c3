"""The error measure every model is held to: RMSE in float64, whatever the inputs' dtype."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = ["rmse"]


def rmse(predicted: npt.ArrayLike, actual: npt.ArrayLike) -> float:
    """Root mean squared error of predicted against actual (same length); NaN for no rows, which callers
    that report it check for (NaN is not JSON)."""
    error: npt.NDArray[np.float64] = np.asarray(predicted, np.float64) - np.asarray(actual, np.float64)
    if error.size == 0:
        return math.nan
    return float(np.sqrt(np.mean(error * error)))
