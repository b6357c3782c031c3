"""fm/pairs.py: prep rows back in ids, and another run's FM scoring them through its own index."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from contract.features import FeatureLayout
from contract.index import load_index, write_index
from fm.artifact import FmParameters
from fm.factors import build_factors, reviewed_products
from fm.pairs import PairsFormatError, read_rows, score_rows
from fm.recordio import write_sparse_records
from tests.fm.topn_support import (
    FEATURES,
    FIRST_REVIEW_DAYS,
    SCORES_AT_0,
    SCORES_AT_1,
    TIME_TRANSFORM,
    factors,
    flat_base,
    parameters,
    shard,
    write_run,
)

# (C1, P1, t 0), (C2, P3, t 0), (C1, P2, t 1): days 16000, 16100 and 16000 + 100 (the scale day).
ROWS = [(0, 1, 0.0), (1, 3, 0.0), (0, 2, 1.0)]
RATINGS = [4.0, 3.0, 5.0]


def test_rows_come_back_in_ids_days_and_ratings(tmp_path: Path) -> None:
    index = write_run(tmp_path)
    half = TIME_TRANSFORM(37)  # 37 days after C2's first review
    rows = read_rows([io.BytesIO(shard([*ROWS, (1, 0, half)], ratings=[*RATINGS, 1.0]))], index)
    assert rows.customer_ids == ["C1", "C2", "C1", "C2"]
    assert rows.product_ids == ["P1", "P3", "P2", "P0"]
    assert rows.days.tolist() == [16000, 16100, 16100, 16137]
    assert rows.ratings.tolist() == [4.0, 3.0, 5.0, 1.0]
    assert len(read_rows([], index)) == 0


def test_the_same_run_scores_its_rows_as_its_endpoint_would(tmp_path: Path) -> None:
    index = write_run(tmp_path)
    rows = read_rows([io.BytesIO(shard(ROWS, ratings=RATINGS))], index)
    scored = score_rows(factors(), index, rows)
    assert scored.known.tolist() == [True, True, True]
    np.testing.assert_allclose(scored.scores, [SCORES_AT_0[0][1], SCORES_AT_0[1][3], SCORES_AT_1[0][2]])


def _deployed(tmp_path: Path) -> tuple[FmParameters, FeatureLayout]:
    """The hand-made model under another index: customers C2, C1, C7; products P3, P2, P0 (no P1)."""
    layout = FeatureLayout(num_customers=3, num_products=3)
    original = parameters()
    w = np.zeros(layout.feature_dim, np.float32)
    v = np.zeros((layout.feature_dim, 2), np.float32)
    for new, old in ((0, 1), (1, 0)):
        w[layout.user_key(new)], v[layout.user_key(new)] = original.w[old], original.v[old]
    for new, old in ((0, 3), (1, 2), (2, 0)):
        key, was = layout.item_key(new), FEATURES.item_key(old)
        w[key], v[key] = original.w[was], original.v[was]
    w[layout.time_key], v[layout.time_key] = original.w[FEATURES.time_key], original.v[FEATURES.time_key]
    write_index(
        tmp_path / "deployed",
        customer_ids=["C2", "C1", "C7"],
        first_review_days=[FIRST_REVIEW_DAYS[1], FIRST_REVIEW_DAYS[0], 15000],
        product_ids=["P3", "P2", "P0"],
        titles=["Three", "Two", "Zero"],
        time_transform=TIME_TRANSFORM,
        global_mean=3.5,
    )
    return FmParameters(w0=original.w0, w=w, v=v), layout


def test_another_run_scores_through_its_own_index_and_leaves_out_what_it_does_not_know(
    tmp_path: Path,
) -> None:
    index = write_run(tmp_path / "candidate")
    rows = read_rows([io.BytesIO(shard(ROWS, ratings=RATINGS))], index)
    params, layout = _deployed(tmp_path)
    deployed_index = load_index(tmp_path / "deployed")
    empty = reviewed_products([], layout)
    scored = score_rows(build_factors(params, layout, empty, flat_base(layout)), deployed_index, rows)
    assert scored.known.tolist() == [False, True, True]  # P1 is not in the deployed index
    assert scored.count == 2
    assert np.isnan(scored.scores[0])
    np.testing.assert_allclose(scored.scores[1:], [SCORES_AT_0[1][3], SCORES_AT_1[0][2]])


def test_factors_of_another_layout_than_the_index_are_refused(tmp_path: Path) -> None:
    index = write_run(tmp_path / "candidate")
    rows = read_rows([io.BytesIO(shard(ROWS, ratings=RATINGS))], index)
    _deployed(tmp_path)
    with pytest.raises(ValueError, match="customers"):
        score_rows(factors(), load_index(tmp_path / "deployed"), rows)


def test_a_row_not_coded_by_the_index_names_the_row(tmp_path: Path) -> None:
    index = write_run(tmp_path)
    other = FeatureLayout(num_customers=5, num_products=4)
    with pytest.raises(PairsFormatError, match=r"test shard: row 0 has keys \[0, 5, 9\]"):
        read_rows([io.BytesIO(shard([(0, 0, 0.0)], features=other))], index, "test shard")
    out = io.BytesIO()
    write_sparse_records(
        out,
        np.array([0, 2]),
        np.array([0, 2], np.int64),
        np.ones(2, np.float32),
        np.ones(1, np.float32),
        FEATURES.feature_dim,
    )
    out.seek(0)
    with pytest.raises(PairsFormatError, match="row 0 has 2 keys, not 3"):
        read_rows([out], index)
