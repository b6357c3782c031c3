"""The report's pieces that decide what a reader sees: the warnings, the RMSE axis, the top-N verdict."""

from __future__ import annotations

from typing import Any

import pytest

from local.pipeline.evaluation import percent, percent_difference
from local.pipeline.report import (
    cold_start_verdict,
    rmse_axis,
    title_space_verdict,
    topn_verdict,
    warning_lines,
)


def test_every_manifest_warning_is_a_bold_block_quote() -> None:
    lines = warning_lines({"warnings": ["small training set: 9 train rows", "no validation rows"]})
    assert lines == [
        "> **WARNING: small training set: 9 train rows**",
        "",
        "> **WARNING: no validation rows**",
        "",
    ]
    assert warning_lines({"warnings": []}) == []


def test_the_rmse_axis_starts_where_the_intervals_do_not_at_zero() -> None:
    low, high = rmse_axis([0.85, 0.90], [0.95, 1.05])
    assert low == pytest.approx(0.83)  # a tenth of 0.85..1.05 each side
    assert high == pytest.approx(1.07)


def table(fm: tuple[float, float, float], blended: tuple[float, float, float]) -> dict[str, Any]:
    def figure(mean: float, low: float, high: float) -> dict[str, Any]:
        return {"ndcg@10": {"mean": mean, "interval": [low, high]}}

    return {
        "cutoff": 10,
        "differences": {"fm - most_popular": figure(*fm), "fm_popularity - most_popular": figure(*blended)},
    }


def test_the_top_n_verdict_follows_the_paired_intervals() -> None:
    said = topn_verdict(table((-0.03, -0.05, -0.01), (0.01, 0.002, 0.02)))
    assert "FM's top-N alone loses to most-popular" in said
    assert "FM + popularity (the served ranking) beats most-popular" in said
    said = topn_verdict(table((0.0, -0.01, 0.01), (0.0, -0.01, 0.01)))
    assert said.count("does not differ measurably from most-popular") == 2


def test_the_title_space_verdict_goes_by_the_excess_share_not_the_ratio() -> None:
    # MovieLens 100k's figures: the year 56.7 % vs 10.3 % (5.5 times), a word 1.1 % vs 0.2 % (5.5 times).
    space = {
        "nearest_neighbours": {"same_year": 0.567, "shared_word": 0.011},
        "random_pairs": {"same_year": 0.103, "shared_word": 0.0019},
    }
    said = title_space_verdict(space)
    assert said is not None and said.endswith("encodes the release year most of all.")
    assert "the release year in 56.7 % (random pairs 10.3 %)" in said
    assert title_space_verdict({"titles": 2}) is None


def test_the_cold_start_verdict_says_when_every_answer_is_the_user_bias_prediction() -> None:
    same = {"relative": -1e-17, "interval": [-1e-17, 0.0]}
    assert cold_start_verdict(same, {"customer_only": 57}) == "the same answers as"
    assert (
        cold_start_verdict(same, {"customer_only": 50, "title_neighbours": 7})
        == "not measurably different from"
    )
    assert cold_start_verdict({"relative": -0.03, "interval": [-0.05, -0.01]}, {"title_neighbours": 9}) == (
        "better than"
    )
    assert cold_start_verdict({"relative": 0.03, "interval": [0.01, 0.05]}, {"title_neighbours": 9}) == (
        "worse than"
    )


def test_percentages_keep_the_sign_of_a_difference_and_not_of_float_noise() -> None:
    assert percent(-1e-17) == percent(-3e-7) == percent(-0.0) == percent(0.0) == percent(0.0004) == "+0.0 %"
    assert percent(-0.0004) == "-0.0 %"  # below 0, however little: an interval wholly below 0 shows it
    assert percent(-0.034) == "-3.4 %" and percent(0.0149) == "+1.5 %"
    assert (
        percent_difference({"relative": -0.034, "interval": [-0.065, -0.0001]}) == "-3.4 % [-6.5 %, -0.0 %]"
    )
