"""The paired gate on per-row predictions: the decision rests on the intervals of the RMSE differences."""

from __future__ import annotations

import numpy as np
import pytest

from fm.metrics import rmse
from lambdas.pipeline.gate import MIN_SHARED_ROWS, decide_paired
from lambdas.pipeline.paired import paired_difference

RNG = np.random.default_rng(7)
N = 2000
ACTUAL = RNG.integers(1, 6, size=N).astype(float)
GOOD = np.clip(ACTUAL + RNG.normal(0, 0.7, size=N), 1, 5)  # about RMSE 0.6
BIAS = np.clip(ACTUAL + RNG.normal(0, 0.9, size=N), 1, 5)  # about RMSE 0.8
MEAN = np.full(N, ACTUAL.mean())


def decide(candidate: np.ndarray, deployed: tuple[str, np.ndarray, np.ndarray, np.ndarray] | None = None):  # type: ignore[no-untyped-def]
    return decide_paired(
        actual=ACTUAL,
        candidate=candidate,
        global_mean=MEAN,
        bias=BIAS,
        deployed=deployed,
        min_improvement=0.01,
        max_regression=0.02,
        samples=400,
    )


def test_the_interval_of_a_difference_is_narrower_than_either_rmse_would_suggest() -> None:
    slightly = np.clip(GOOD + RNG.normal(0, 0.05, size=N), 1, 5)
    difference = paired_difference(ACTUAL, slightly, GOOD, samples=400)
    assert difference.rows == N
    assert difference.candidate_rmse == pytest.approx(rmse(slightly, ACTUAL))
    assert difference.low < difference.relative < difference.high
    assert difference.high - difference.low < 0.02  # the models' own RMSE intervals are ~0.04 wide here
    again = paired_difference(ACTUAL, slightly, GOOD, samples=400)
    assert (again.low, again.high) == (difference.low, difference.high)  # seeded


def test_a_clearly_better_model_is_deployed_with_its_intervals_recorded() -> None:
    decision = decide(GOOD)
    assert decision["deploy"] is True
    versus = decision["versus"]
    assert [c["against"] for c in versus] == ["global mean", "user + item bias"]
    assert all(c["passed"] and c["interval"][1] < 0 for c in versus)
    assert decision["reasons"][-1] == "no model is deployed yet"
    assert decision["test_rows"] == N
    assert decision["bootstrap"] == {"samples": 400, "seed": 20261201, "confidence": 0.95}


def test_a_point_win_within_noise_is_rejected() -> None:
    noisy_twin = np.clip(BIAS + RNG.normal(0, 0.02, size=N), 1, 5)
    decision = decide(noisy_twin)
    assert decision["deploy"] is False
    bias = decision["versus"][1]
    assert bias["passed"] is False
    assert "not 1.0% better" in bias["reason"] or "includes no improvement" in bias["reason"]


def test_the_deployed_run_is_compared_on_the_shared_rows_only() -> None:
    shared = slice(0, 800)
    worse = np.clip(GOOD + RNG.normal(0, 0.6, size=N), 1, 5)
    deployed = ("r0", ACTUAL[shared], worse[shared], GOOD[shared])
    decision = decide(worse, deployed)
    assert decision["deploy"] is False
    last = decision["versus"][-1]
    assert (last["against"], last["rows"], last["passed"]) == ("deployed run r0", 800, False)
    assert "may be more than 2.0% worse" in last["reason"]
    assert decision["deployed_test_rmse"] == pytest.approx(rmse(GOOD[shared], ACTUAL[shared]))

    same = decide(GOOD, ("r0", ACTUAL[shared], GOOD[shared], GOOD[shared]))
    assert same["deploy"] is True  # an identical model is not worse


def test_too_few_shared_rows_are_not_compared() -> None:
    few = slice(0, MIN_SHARED_ROWS - 1)
    decision = decide(GOOD, ("r0", ACTUAL[few], GOOD[few], GOOD[few]))
    assert decision["deploy"] is True
    assert "fewer than 30: not compared" in decision["reasons"][-1]
    assert decision["deployed_test_rmse"] is None


def test_a_diverged_candidate_is_rejected() -> None:
    broken = GOOD.copy()
    broken[3] = np.nan
    decision = decide(broken)
    assert decision["deploy"] is False
    assert decision["fm_test_rmse"] is None
    assert "not finite" in decision["reasons"][0]


def test_misaligned_rows_are_refused() -> None:
    with pytest.raises(ValueError, match="paired rows must align"):
        paired_difference(ACTUAL, GOOD[:-1], BIAS)
    with pytest.raises(ValueError, match="no rows to compare"):
        paired_difference(ACTUAL[:0], GOOD[:0], BIAS[:0])
