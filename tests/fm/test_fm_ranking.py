"""Ranking metrics on hand-made held-out reviews, with the answers written out."""

from __future__ import annotations

import io
import json
import math
import re

import numpy as np
import pytest

from contract.features import FeatureLayout
from fm.artifact import FmParameters
from fm.factors import build_factors, reviewed_products
from fm.ranking import (
    HeldOut,
    Ranking,
    RankingFormatError,
    Ranks,
    bootstrap_means,
    choose_popularity_weight,
    expected_metrics,
    fm_ranks,
    held_out,
    popularity_ranks,
    random_ranks,
    validation_split,
)
from fm.recordio import SparseRecords, read_sparse_records, write_sparse_records
from tests.fm.topn_support import FEATURES, factors, flat_base, shard


def _held(*rows: tuple[int, int, float]) -> HeldOut:
    return held_out(read_sparse_records(io.BytesIO(shard(list(rows)))), FEATURES)


def test_held_out_rows_come_one_per_customer_in_customer_order() -> None:
    held = _held((1, 3, 0.5), (0, 2, 0.25))
    assert (held.customers.tolist(), held.products.tolist(), held.times.tolist()) == (
        [0, 1],
        [2, 3],
        [0.25, 0.5],
    )
    with pytest.raises(ValueError, match="a customer has more than one held-out row"):
        _held((0, 2, 0.0), (0, 1, 0.0))


def test_fm_ranks_count_the_candidates_above_the_held_out_product() -> None:
    # t = 0. C1 (reviewed P0, P3) holds out P2: 4.05 among P1 3.7, P2 -> first of 2.
    # C2 (reviewed P0, P1) holds out P3: 1.75 below P2 3.3 -> second of 2.
    ranks = fm_ranks(factors(), _held((0, 2, 0.0), (1, 3, 0.0)))
    assert (ranks.greater.tolist(), ranks.ties.tolist(), ranks.candidates.tolist()) == (
        [0, 1],
        [0, 0],
        [2, 2],
    )


def test_a_held_out_product_among_the_reviewed_ones_is_still_a_candidate() -> None:
    # C1 holds out P0 (which it reviewed): P0 4.1, P1 3.7, P2 4.05 -> first of 3.
    ranks = fm_ranks(factors(), _held((0, 0, 0.0)))
    assert (ranks.greater.tolist(), ranks.candidates.tolist()) == ([0], [3])


def test_the_popularity_blend_moves_the_held_out_product() -> None:
    # C2 holds out P3 at t = 0 with w = 2: P2 3.3 + 0, P3 1.75 + 2 log 2 = 3.14 -> still second; w = 3: 3.83.
    held = _held((1, 3, 0.0))
    assert fm_ranks(factors(), held, popularity_weight=2.0).greater.tolist() == [1]
    assert fm_ranks(factors(), held, popularity_weight=3.0).greater.tolist() == [0]


def test_popularity_ranks_keep_ties() -> None:
    # Popularity P0 3, P1 1, P2 0, P3 1. C1 holds out P3 (reviewed): P1 1, P2 0, P3 1 -> none above, 1 tie.
    # C2 holds out P2: P2 0, P3 1 -> one above.
    ranks = popularity_ranks(factors(), _held((0, 3, 0.0), (1, 2, 0.0)))
    assert (ranks.greater.tolist(), ranks.ties.tolist(), ranks.candidates.tolist()) == (
        [0, 1],
        [1, 0],
        [3, 2],
    )
    uniform = random_ranks(ranks)
    assert (uniform.greater.tolist(), uniform.ties.tolist(), uniform.candidates.tolist()) == (
        [0, 0],
        [2, 1],
        [3, 2],
    )


def test_expected_recall_and_ndcg_written_out() -> None:
    ranks = Ranks(
        greater=np.array([0, 3, 10, 8, 0]),
        ties=np.array([0, 0, 0, 3, 99]),
        candidates=np.array([50, 50, 50, 50, 100]),
    )
    metrics = expected_metrics(ranks, cutoff=10)
    # Position 0; 3; 10 (outside); 8..11 uniform (two of four inside); 0..99 uniform (random).
    assert metrics["recall@10"].tolist() == pytest.approx([1.0, 1.0, 0.0, 0.5, 0.1])
    random_ndcg = sum(1 / math.log2(r + 2) for r in range(10)) / 100
    expected = [1.0, 1 / math.log2(5), 0.0, (1 / math.log2(10) + 1 / math.log2(11)) / 4, random_ndcg]
    assert metrics["ndcg@10"].tolist() == pytest.approx(expected)


def test_bootstrap_intervals_are_paired_and_hold_the_mean() -> None:
    rng = np.random.default_rng(0)
    a = rng.random(400)
    intervals = bootstrap_means({"a": a, "b": a + 0.25, "c": np.full(400, 0.5)}, differences=[("b", "a")])
    assert intervals["a"].mean == pytest.approx(a.mean())
    assert intervals["a"].low < intervals["a"].mean < intervals["a"].high
    assert (intervals["c"].low, intervals["c"].high) == (0.5, 0.5)
    difference = intervals["b - a"]  # the same customers in every draw: the difference does not vary
    assert (difference.mean, difference.low, difference.high) == pytest.approx((0.25, 0.25, 0.25))
    with pytest.raises(ValueError, match=re.escape("the series must share one non-zero length, got [3, 4]")):
        bootstrap_means({"a": np.zeros(3), "b": np.zeros(4)})


def test_choose_popularity_weight_takes_the_best_and_the_smallest_of_equals() -> None:
    features = FeatureLayout(2, 3)
    flat = FmParameters(3.0, np.zeros(6, np.float32), np.zeros((6, 1), np.float32))  # every product ties
    rows = [(0, 0, 0.0), (1, 0, 0.0), (1, 1, 0.0)]  # P0 reviewed twice, P1 once, P2 never
    f = build_factors(
        flat, features, reviewed_products([shard(rows, features)], features), flat_base(features)
    )
    # C1 (reviewed P0) holds out P1, the more popular of P1, P2: with any weight it comes first.
    validation = read_sparse_records(io.BytesIO(shard([(0, 1, 0.0)], features)))
    choice = choose_popularity_weight(f, validation, weights=(0.0, 0.5, 1.0), cutoff=1)
    assert choice.weight == 0.5
    assert choice.table == {
        0.0: {"recall@1": 0.5, "ndcg@1": 0.5},
        0.5: {"recall@1": 1.0, "ndcg@1": 1.0},
        1.0: {"recall@1": 1.0, "ndcg@1": 1.0},
    }
    # Most popular ranks P1 (1 review) above P2 (none) as well.
    assert choice.most_popular == {"recall@1": 1.0, "ndcg@1": 1.0}
    assert (choice.rows, choice.validation_rows) == (1, 1)
    assert (choice.versus["fm_alone"].mean, choice.versus["most_popular"].mean) == (0.5, 0.0)


def test_choose_popularity_weight_ranks_a_seeded_sample_of_the_validation_customers() -> None:
    features = FeatureLayout(6, 3)
    flat = FmParameters(3.0, np.zeros(10, np.float32), np.zeros((10, 1), np.float32))
    f = build_factors(
        flat, features, reviewed_products([shard([(0, 0, 0.0)], features)], features), flat_base(features)
    )
    validation = read_sparse_records(io.BytesIO(shard([(u, u % 3, 0.0) for u in range(6)], features)))
    first = choose_popularity_weight(f, validation, weights=(0.0,), customers=4, seed=7)
    again = choose_popularity_weight(f, validation, weights=(0.0,), customers=4, seed=7)
    assert (first.rows, first.validation_rows) == (4, 6)
    assert first.table == again.table
    everyone = choose_popularity_weight(f, validation, weights=(0.0,), customers=None)
    assert everyone.rows == 6
    with pytest.raises(ValueError, match="no popularity weight to choose from"):
        choose_popularity_weight(f, validation, weights=())


def test_the_ranking_document_round_trips_and_names_a_bad_field() -> None:
    document = Ranking(0.5).to_json(rows=3)
    assert document == {"schema_version": 1, "popularity_weight": 0.5, "rows": 3}
    assert Ranking.from_json(json.dumps(document)) == Ranking(0.5)
    for raw, problem in (
        ("[", "ranking.json: not JSON"),
        ('{"schema_version": 2, "popularity_weight": 1}', "ranking.json: schema_version is not 1"),
        (
            '{"schema_version": 1, "popularity_weight": true}',
            "ranking.json: popularity_weight is True, not a number",
        ),
        ('{"schema_version": 1}', "ranking.json: popularity_weight is None, not a number"),
        ('{"schema_version": 1, "popularity_weight": -1}', "ranking.json: popularity_weight is -1, below 0"),
    ):
        with pytest.raises(RankingFormatError, match=re.escape(problem)):
            Ranking.from_json(raw)


def test_validation_takes_each_customers_latest_train_review_as_prep_takes_the_test_review() -> None:
    features = FeatureLayout(3, 4)
    product_ids = ["b", "a", "d", "c"]  # id order differs from row order
    rows = [
        (0, 3, 0.0),
        (0, 0, 0.5),  # C1: P0 "b" and P1 "a" on the same day: the greater id, P0, goes to validation
        (0, 1, 0.5),
        (1, 1, 0.0),
        (1, 0, 0.3),
        (1, 0, 0.7),  # C2: P0 last; its other row of the pair leaves train too
        (2, 2, 0.1),
        (2, 2, 0.9),  # C3: one product only: nothing to hold out
    ]
    buffer = io.BytesIO()
    keys = [k for u, i, _ in rows for k in (u, features.item_key(i), features.time_key)]
    values = [x for _, _, t in rows for x in (1.0, 1.0, t)]
    n = len(rows)
    write_sparse_records(buffer, np.arange(0, 3 * n + 1, 3), keys, values, [4.0] * n, features.feature_dim)
    train = read_sparse_records(io.BytesIO(buffer.getvalue()))
    rest, validation = validation_split(train, features, product_ids)

    def triples(records: SparseRecords) -> list[tuple[int, int, float]]:
        k = records.indices.reshape(-1, 3)
        t = records.values.reshape(-1, 3)[:, 2]
        return [(int(a), int(b) - 3, round(float(x), 3)) for (a, b, _), x in zip(k, t, strict=True)]

    assert triples(validation) == [(0, 0, 0.5), (1, 0, 0.7)]
    assert triples(rest) == [(0, 3, 0.0), (0, 1, 0.5), (1, 1, 0.0), (2, 2, 0.1), (2, 2, 0.9)]
    with pytest.raises(ValueError, match=re.escape("3 product ids for 4 products")):
        validation_split(train, features, product_ids[:3])


def test_the_chosen_weight_round_trips_through_ranking_json_with_its_evidence() -> None:
    document = Ranking(0.5).to_json(chosen_on="validation", cutoff=10)
    assert document == {
        "schema_version": 1,
        "popularity_weight": 0.5,
        "chosen_on": "validation",
        "cutoff": 10,
    }
    assert Ranking.from_json(json.dumps(document)) == Ranking(0.5)
    assert Ranking.from_json(b'{"schema_version": 1, "popularity_weight": 2}') == Ranking(2.0)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("[", "ranking.json: not JSON"),
        (b"\xff", "ranking.json: not JSON"),
        ('{"popularity_weight": 1}', "ranking.json: schema_version is not 1"),
        ('{"schema_version": 1}', "ranking.json: popularity_weight is None, not a number"),
        ('{"schema_version": 1, "popularity_weight": true}', "popularity_weight is True, not a number"),
        ('{"schema_version": 1, "popularity_weight": NaN}', "popularity_weight is nan, not a number"),
        ('{"schema_version": 1, "popularity_weight": -0.5}', "popularity_weight is -0.5, below 0"),
    ],
)
def test_a_malformed_ranking_file_names_the_field(document: str | bytes, message: str) -> None:
    with pytest.raises(RankingFormatError, match=re.escape(message)):
        Ranking.from_json(document)
