"""fm/metrics.py: the one RMSE."""

from __future__ import annotations

import math

import numpy as np

from fm.metrics import rmse


def test_rmse_is_computed_in_float64_whatever_the_inputs() -> None:
    # In float32, 1e8 + 1 is 1e8: the error of 1 would vanish.
    assert rmse(np.array([1e8 + 1], np.float64), np.array([1e8], np.float32)) == 1.0
    assert rmse([3.0, 5.0], [4.0, 4.0]) == 1.0
    assert rmse([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 8.0]) == 2.0


def test_no_rows_have_no_rmse() -> None:
    assert math.isnan(rmse([], []))
