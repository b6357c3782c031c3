"""RMSE with bootstrap intervals, predictions outside the rating range, the bias model on prep's rows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jobs.prep.baselines import BiasSettings, fit_biases
from local.pipeline.evaluation import (
    BOOTSTRAP_SAMPLES,
    bias_predictions,
    bootstrap,
    paired_table,
    range_violations,
)
from tests.local.pipeline.pipeline_support import FEATURES, rows


def test_bootstrap_gives_the_rmse_and_an_interval_around_it() -> None:
    actual = np.array([1.0, 2.0, 3.0, 4.0])
    scores = bootstrap(
        {
            "exact": actual.copy(),
            "one off": actual + 1.0,
            "mixed": np.array([1.0, 4.0, 3.0, 4.0]),  # errors 0, 2, 0, 0
        },
        actual,
        seed=3,
    )
    assert scores["exact"] == {"rmse": 0.0, "low": 0.0, "high": 0.0, "n": 4}
    assert scores["one off"] == {"rmse": 1.0, "low": 1.0, "high": 1.0, "n": 4}
    mixed = scores["mixed"]
    assert mixed["rmse"] == pytest.approx(1.0)  # sqrt(4 / 4)
    assert 0.0 <= mixed["low"] < mixed["rmse"] < mixed["high"] <= 2.0
    assert BOOTSTRAP_SAMPLES == 1000
    # The same seed resamples the same rows.
    assert bootstrap({"mixed": np.array([1.0, 4.0, 3.0, 4.0])}, actual, seed=3)["mixed"] == mixed


def test_bootstrap_of_no_rows_is_not_a_number() -> None:
    empty = np.zeros(0)
    with np.errstate(invalid="ignore"):
        scores = bootstrap({"none": empty}, empty, seed=0)
    assert scores["none"]["n"] == 0 and math.isnan(scores["none"]["low"])
    assert math.isnan(scores["none"]["rmse"])


def test_range_violations_count_below_and_above() -> None:
    assert range_violations(np.array([0.5, 3.0, 5.5, 6.0, 1.0, 5.0])) == {
        "below": 1,
        "above": 2,
        "min": 0.5,
        "max": 6.0,
        "rows": 6,
    }


def test_bias_predictions_use_the_rows_customers_and_products() -> None:
    features = FEATURES
    train = rows([[0, 2, 5], [0, 3, 5], [1, 3, 5], [1, 4, 5]], [0.0] * 4, [5.0, 4.0, 2.0, 1.0])
    test = rows([[0, 4, 5], [1, 2, 5]], [0.5, 0.5], [3.0, 3.0])
    mu, b_user, b_item = fit_biases(
        np.array([0, 0, 1, 1]),
        np.array([0, 1, 1, 2]),
        np.array([5.0, 4.0, 2.0, 1.0]),
        num_users=2,
        num_items=3,
        settings=BiasSettings(),
    )
    with_item = bias_predictions(train, test, features)
    np.testing.assert_allclose(with_item, [mu + b_user[0] + b_item[2], mu + b_user[1] + b_item[0]])
    without = bias_predictions(train, test, features, with_item=False)
    np.testing.assert_allclose(without, [mu + b_user[0], mu + b_user[1]])
    assert mu == 3.0 and b_user[0] > 0 > b_user[1]


def test_paired_table_gives_each_rmse_and_the_paired_difference() -> None:
    actual = np.array([1.0, 2.0, 3.0, 4.0])
    table = paired_table(
        actual, ("FM", actual + np.array([0.5, -0.5, 0.5, -0.5])), {"one off": actual + 1.0}, seed=1
    )
    assert table["rows"] == 4
    assert table["rmse"]["FM"]["rmse"] == pytest.approx(0.5)
    assert table["rmse"]["one off"]["rmse"] == pytest.approx(1.0)
    difference = table["differences"]["FM vs one off"]
    # Every row's error is 0.5 against 1: every resample gives 0.5 / 1 - 1, so the interval is a point.
    assert difference["relative"] == pytest.approx(-0.5)
    assert difference["interval"] == [pytest.approx(-0.5), pytest.approx(-0.5)]
    assert difference["rows"] == 4
