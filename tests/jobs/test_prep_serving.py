"""What serving reproduces: the title token, the time feature (pure = vectorized), the index format."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jobs.prep.prepare import time_features
from jobs.prep.serving import (
    load_index,
    parse_index,
    time_feature,
    time_transform_params,
    title_token,
    write_index,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("title", "token"),
    [
        ("Sherlock: Season 1", "sherlock:-season-1"),
        ("Beta  Film", "beta--film"),
        ("Tab\tand\nnewline", "tab-and-newline"),
        ("No\u00a0break\u2028line\u3000wide", "no-break-line-wide"),
        ("ÄRGER Über", "ärger-über"),
        (" edge ", "-edge-"),
        ('"Quoted" title', '"quoted"-title'),
        ("", ""),
    ],
)
def test_title_token(title: str, token: str) -> None:
    assert title_token(title) == token


def test_title_token_is_the_notebooks_on_titles_with_plain_spaces() -> None:
    for title in ("Sherlock Season 2", "The Imitation Game", "Keeping Up With The Kardashians Season 1"):
        assert title_token(title) == title.lower().replace(" ", "-")


@pytest.mark.parametrize("scale", [1, 2, 60, 365, 3286, 12000])
def test_time_feature_pure_equals_vectorized(scale: int) -> None:
    params = time_transform_params(scale)
    days = np.arange(-30, scale + 400)
    pure = np.array([time_feature(int(d), params) for d in days], dtype=np.float32)
    assert np.array_equal(time_features(days, params), pure)
    assert time_features(days, params).dtype == np.float32


def test_time_feature_is_bounded_and_monotone() -> None:
    params = time_transform_params(60)
    assert time_feature(-5, params) == 0.0
    assert time_feature(0, params) == 0.0
    assert time_feature(60, params) == 1.0
    assert time_feature(10_000, params) == 1.0  # a request later than any training row clips
    assert time_feature(2, params) == pytest.approx(np.log(3) / np.log(61))
    values = [time_feature(d, params) for d in range(100)]
    assert values == sorted(values)


def test_time_feature_refuses_an_unknown_transform() -> None:
    with pytest.raises(ValueError, match="unknown time transform kind 'linear'"):
        time_feature(3, {"kind": "linear", "scale_days": 10})
    with pytest.raises(ValueError, match="scale_days must be >= 1"):
        time_transform_params(0)


def test_index_round_trip(tmp_path: Path) -> None:
    params = time_transform_params(100)
    write_index(
        tmp_path,
        customer_ids=["42", "7"],
        first_review_days=[16000, 16436],
        product_ids=["B1", "B2", "B3"],
        titles=["Line\u2028Separated", "Tab-free title", "Ünïcode"],
        time_transform=params,
        global_mean=4.25,
    )
    index = load_index(tmp_path)
    assert index.meta == {
        "schema_version": 1,
        "num_customers": 2,
        "num_products": 3,
        "feature_dim": 6,
        "time_transform": params,
        "rating_range": [1, 5],
        "global_mean": 4.25,
    }
    assert index.customer_key == {"42": 0, "7": 1}
    assert index.product_key == {"B1": 2, "B2": 3, "B3": 4}
    assert index.title_of_key(2) == "Line\u2028Separated"
    assert index.feature_dim == 6
    assert index.time_feature("7", 16436 + 100) == 1.0
    assert index.time_feature("42", 16000 + 1) == pytest.approx(np.log(2) / np.log(101))


def test_index_refuses_inconsistent_files() -> None:
    meta = {"schema_version": 1, "num_customers": 2, "num_products": 1}
    with pytest.raises(ValueError, match=r"customers.tsv: expected 2 lines of 2 tab-separated fields"):
        parse_index(json.dumps(meta), "7\t1\n", "B1\tx\n")
    with pytest.raises(ValueError, match="repeats an id"):
        parse_index(json.dumps(meta), "7\t1\n7\t2\n", "B1\tx\n")
    with pytest.raises(ValueError, match="schema_version 2 is not 1"):
        parse_index(json.dumps({**meta, "schema_version": 2}), "", "")


def test_index_at_full_scale_loads_every_key(tmp_path: Path) -> None:
    n, m = 150_000, 40_000
    write_index(
        tmp_path,
        customer_ids=[str(10_000_000 + 7 * u) for u in range(n)],
        first_review_days=[13_000 + u % 3000 for u in range(n)],
        product_ids=[f"B{i:09d}" for i in range(m)],
        titles=[f"Title number {i}: Season {i % 9}" for i in range(m)],
        time_transform=time_transform_params(3286),
        global_mean=4.1,
    )
    index = load_index(tmp_path)
    assert len(index.customer_key) == n and len(index.product_key) == m
    assert index.customer_key[str(10_000_000 + 7 * 149_999)] == 149_999
    assert index.first_review_days[149_999] == 13_000 + 149_999 % 3000
    assert index.product_key["B000039999"] == n + 39_999
    assert index.title_of_key(n + 39_999) == "Title number 39999: Season 3"


def test_serving_module_needs_only_the_standard_library() -> None:
    code = (
        "import sys, jobs.prep.serving; "
        "bad = sorted({'numpy', 'pyarrow'} & set(sys.modules)); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
