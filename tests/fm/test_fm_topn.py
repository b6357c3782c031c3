"""Top-N: the hand-made run's answers written out, FM's formula by brute force, and the local FM endpoint."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.config import Config

from contract.features import FeatureLayout, TimeTransform
from contract.index import ServingIndex, load_index, write_index
from fm.artifact import FmParameters, write_fm_artifact
from fm.factors import ReviewedProducts, ServingFactors, build_factors, reviewed_products
from fm.topn import (
    customer_top_n,
    epoch_day,
    iter_top_n,
    popular_top_n,
    recommend,
    scores_of,
    time_value,
    time_values,
    top_n_batch,
)
from lambdas.serving.endpoints import fm_instance
from local.runtime_server import RuntimeServer
from tests.fm.topn_support import (
    FEATURES,
    SCORES_AT_0,
    SCORES_AT_1,
    brute_force_score,
    factors,
    flat_base,
    random_parameters,
    shard,
    write_run,
)
from tests.lambdas.serving.support import aws_test_environment


def test_the_best_products_of_a_customer_best_first_without_the_reviewed_ones() -> None:
    f = factors()
    # C1 reviewed P0 and P3: P2 (4.05), P1 (3.7) are left.
    top = customer_top_n(f, 0, k=3, time_value=0.0)
    assert top.rows.tolist() == [2, 1]
    np.testing.assert_allclose(top.scores, [4.05, 3.7], atol=1e-6)
    assert top.fallback is False
    # C2 reviewed P0 and P1: P2 (3.3), P3 (1.75).
    assert customer_top_n(f, 1, k=1, time_value=0.0).rows.tolist() == [2]


def test_reviewed_products_stay_when_asked() -> None:
    top = customer_top_n(factors(), 0, k=4, time_value=1.0, exclude_reviewed=False)
    assert top.rows.tolist() == [3, 0, 2, 1]
    np.testing.assert_allclose(top.scores, [5.4, 4.9, 4.8, 4.4], atol=1e-6)


def test_the_popularity_blend_reorders_but_scores_stay_fms() -> None:
    # Keys at t = 0 with w = 1: P0 4.1 + log 4 = 5.49, P1 3.7 + log 2 = 4.39, P2 4.05, P3 4.5 + log 2 = 5.19.
    top = customer_top_n(factors(), 0, k=3, time_value=0.0, exclude_reviewed=False, popularity_weight=1.0)
    assert top.rows.tolist() == [0, 3, 1]
    np.testing.assert_allclose(top.scores, [4.1, 4.5, 3.7], atol=1e-6)


def test_an_unknown_customer_gets_the_most_popular_products_with_the_item_side_score() -> None:
    top = popular_top_n(factors(), k=3, time_value=0.0)
    assert top.fallback is True
    assert top.rows.tolist() == [0, 1, 3]  # 3 reviews, then P1 and P3 with 1 each: the lower row first
    np.testing.assert_allclose(top.scores, [3.1, 3.2, 3.0], atol=1e-6)  # w0 + w_i at day 0


def test_equal_scores_go_to_the_lower_product_row() -> None:
    features = FeatureLayout(1, 5)
    w = np.zeros(features.feature_dim, np.float32)
    v = np.zeros((features.feature_dim, 1), np.float32)
    for row, weight in enumerate([0.5, 1.0, 1.0, 0.5, 1.0]):
        w[features.item_key(row)] = weight
    params = FmParameters(0.0, w, v)
    f = build_factors(params, features, reviewed_products([], features), flat_base(features))
    assert customer_top_n(f, 0, k=2, time_value=0.0).rows.tolist() == [1, 2]
    assert customer_top_n(f, 0, k=4, time_value=0.0).rows.tolist() == [1, 2, 4, 0]
    assert top_n_batch(f, [0], [0.0], k=4).rows.tolist() == [[1, 2, 4, 0]]


def test_fewer_products_than_k_are_all_there_is() -> None:
    f = factors()
    assert customer_top_n(f, 0, k=10, time_value=0.0).rows.tolist() == [2, 1]
    batch = top_n_batch(f, [0, 1], [0.0, 0.0], k=3)
    assert batch.rows.tolist() == [[2, 1, -1], [2, 3, -1]]
    assert batch.counts.tolist() == [2, 2]
    assert np.isnan(batch.scores[:, 2]).all()


@pytest.mark.parametrize("k", [0, -1, 1.5, True])
def test_k_must_be_a_positive_integer(k: Any) -> None:
    with pytest.raises(ValueError, match=re.escape(f"k must be an integer >= 1, got {k!r}")):
        customer_top_n(factors(), 0, k=k, time_value=0.0)


def test_an_unknown_customer_key_is_refused() -> None:
    with pytest.raises(ValueError, match=re.escape("customer key 2 is outside 0..1")):
        customer_top_n(factors(), 2, k=1, time_value=0.0)
    with pytest.raises(ValueError, match=re.escape("a customer key is outside 0..1")):
        top_n_batch(factors(), [0, -1], [0.0, 0.0], k=1)


# ------------------------------------------------------------------------------------------- time


def test_the_time_value_is_the_transform_of_days_since_the_first_review(tmp_path: Path) -> None:
    index = write_run(tmp_path)
    transform = TimeTransform(100)
    assert epoch_day(dt.date(2013, 10, 22)) == 16000
    assert time_value(index, 0, 16099) == transform(99)  # C1's first review: day 16000
    assert time_value(index, 1, 16099) == 0.0  # before C2's first review: day 0
    assert time_value(index, None, 17000) == 0.0  # an unknown customer: day 0
    assert time_value(index, 0, 20000) == 1.0
    days = [15000, 16000, 16050, 16100, 16150, 16500]
    for day in days:
        expected = [time_value(index, c, day) for c in (0, 1, 1, 0)]
        assert time_values(index, np.array([0, 1, 1, 0]), day).tolist() == expected


def test_recommend_finds_the_customer_and_the_time_value(tmp_path: Path) -> None:
    index = write_run(tmp_path)
    f = factors()
    # C1 on its first day (t = 0), and 100 days later (t = 1, the scale): the reviewed P0, P3 excluded.
    first = recommend(f, index, "C1", dt.date(2013, 10, 22), k=2, exclude_reviewed=False)
    assert first.rows.tolist() == [3, 0]
    np.testing.assert_allclose(first.scores, [SCORES_AT_0[0][3], SCORES_AT_0[0][0]], atol=1e-6)
    later = recommend(f, index, "C1", dt.date(2014, 1, 30), k=4, exclude_reviewed=False)
    np.testing.assert_allclose(later.scores, sorted(SCORES_AT_1[0], reverse=True), atol=1e-6)
    unknown = recommend(f, index, "nobody", dt.date(2014, 1, 30), k=2)
    assert (unknown.fallback, unknown.rows.tolist()) == (True, [0, 1])


# ------------------------------------------------------------------------------------------- many customers


def _random_run(seed: int, n: int = 6, m: int = 700, k: int = 8) -> tuple[FmParameters, ServingFactors]:
    """A random FM with random reviewed sets; m > 512 so that the block selection runs."""
    features = FeatureLayout(n, m)
    params = random_parameters(features, k, seed)
    rng = np.random.default_rng(seed)
    rows = [
        (u, int(i), float(rng.random()))
        for u in range(n)
        for i in rng.choice(m, size=min(u * 40, m // 2), replace=False)
    ]
    f = build_factors(
        params,
        features,
        reviewed_products([shard(rows, features)] if rows else [], features),
        flat_base(features),
    )
    return params, f


def _brute_top(
    params: FmParameters, f: ServingFactors, customer: int, t: float, k: int, *, exclude: bool
) -> Any:
    features = f.features
    scores = np.array(
        [
            brute_force_score(params, {customer: 1.0, features.item_key(i): 1.0, features.time_key: t})
            for i in range(features.num_products)
        ]
    )
    keys = scores.copy()
    if exclude:
        keys[f.reviewed(customer)] = -np.inf
    rows = np.lexsort((np.arange(keys.shape[0]), -keys))[:k]
    return rows, scores[rows]


@pytest.mark.parametrize("exclude", [True, False])
def test_top_n_equals_fms_formula_by_brute_force(exclude: bool) -> None:
    params, f = _random_run(1)
    times = np.array([0.0, 0.25, 0.5, 0.75, 1.0, 0.1])
    batch = top_n_batch(f, np.arange(6), times, k=10, exclude_reviewed=exclude)
    for customer, t in enumerate(times):
        rows, scores = _brute_top(params, f, customer, float(t), 10, exclude=exclude)
        single = customer_top_n(f, customer, k=10, time_value=float(t), exclude_reviewed=exclude)
        assert single.rows.tolist() == rows.tolist() == batch.rows[customer].tolist()
        # 1e-6: the products with v_t are stored as float32 (the parameters' precision); the endpoint's
        # answers must agree to 1e-4.
        np.testing.assert_allclose(single.scores, scores, rtol=0, atol=1e-6)
        np.testing.assert_allclose(batch.scores[customer], scores, rtol=0, atol=1e-6)
        assert not set(single.rows.tolist()) & set(f.reviewed(customer).tolist()) or not exclude


def test_many_tied_keys_go_to_the_lowest_rows_in_the_block_selection() -> None:
    features = FeatureLayout(3, 1200)
    rng = np.random.default_rng(5)
    w = np.zeros(features.feature_dim, np.float32)
    w[features.num_customers : features.time_key] = rng.integers(0, 4, 1200)  # four values: ties everywhere
    params = FmParameters(0.0, w, np.zeros((features.feature_dim, 1), np.float32))
    rows = [(u, int(i), 0.0) for u in range(3) for i in rng.choice(1200, size=300 * u, replace=False)]
    f = build_factors(
        params, features, reviewed_products([shard(rows, features)], features), flat_base(features)
    )
    batch = top_n_batch(f, [0, 1, 2], [0.0, 0.0, 0.0], k=25)
    for customer in range(3):
        keys = f.items[:, 1].astype(np.float64)
        keys[f.reviewed(customer)] = -np.inf
        expected = np.lexsort((np.arange(1200), -keys))[:25]
        assert batch.rows[customer].tolist() == expected.tolist()


@pytest.mark.parametrize(("chunk", "workers"), [(1, 1), (4, 1), (2, 3)])
def test_chunks_and_workers_give_the_whole_batch_in_order(chunk: int, workers: int) -> None:
    _, f = _random_run(2)
    times = np.linspace(0, 1, 6)
    whole = top_n_batch(f, np.arange(6), times, k=7, popularity_weight=0.5)
    parts = list(
        iter_top_n(f, np.arange(6), times, k=7, popularity_weight=0.5, chunk_customers=chunk, workers=workers)
    )
    assert len(parts) == -(-6 // chunk)
    np.testing.assert_array_equal(np.concatenate([p.customers for p in parts]), np.arange(6))
    np.testing.assert_array_equal(np.concatenate([p.rows for p in parts]), whole.rows)
    np.testing.assert_array_equal(np.concatenate([p.scores for p in parts]), whole.scores)


def test_scores_of_an_unknown_customer_are_the_item_side() -> None:
    params, f = _random_run(3, n=2, m=20)
    features = f.features
    got = scores_of(f, np.array([-1]), np.array([[4, 7]]), [0.3])[0]
    expected = [
        brute_force_score(params, {features.item_key(i): 1.0, features.time_key: 0.3}) for i in (4, 7)
    ]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)


# ------------------------------------------------------------------------------------------- the FM endpoint


@pytest.fixture
def served_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Any, ServingIndex, ServingFactors]]:
    """A random run, its parameters served by the local runtime server as the FM endpoint."""
    aws_test_environment(monkeypatch)
    features = FeatureLayout(5, 60)
    params = random_parameters(features, 16, seed=9)
    first_days = [16000, 16010, 16500, 17000, 15000]
    write_index(
        tmp_path / "index",
        customer_ids=[f"C{u}" for u in range(5)],
        first_review_days=first_days,
        product_ids=[f"P{i}" for i in range(60)],
        titles=[f"Title {i}" for i in range(60)],
        time_transform=TimeTransform(700),
        global_mean=3.5,
    )
    index = load_index(tmp_path / "index")
    rng = np.random.default_rng(9)
    rows = [(u, int(i), 0.0) for u in range(5) for i in rng.choice(60, size=10, replace=False)]
    f = build_factors(
        params, features, reviewed_products([shard(rows, features)], features), flat_base(features)
    )
    # The server's FM folder: model.npz (w0, w, V) as the local trainer writes it, and model.tar.gz as
    # SageMaker FM writes it, both of the same float32 parameters: whichever the server loads.
    model = tmp_path / "fm"
    model.mkdir()
    np.savez(model / "model.npz", w0=np.float32(params.w0), w=params.w, V=params.v)
    write_fm_artifact(model / "model.tar.gz", params, {"predictor_type": "regressor"})
    with RuntimeServer() as server:
        server.add_endpoint("fm", model)
        config = Config(retries={"mode": "standard", "total_max_attempts": 1})
        client = boto3.client("sagemaker-runtime", endpoint_url=server.url, config=config)
        yield client, index, f


def _endpoint_scores(client: Any, instances: list[dict[str, Any]]) -> list[float]:
    body = json.dumps({"instances": instances})
    answer = json.loads(
        client.invoke_endpoint(EndpointName="fm", Body=body, ContentType="application/json")["Body"].read()
    )
    return [p["score"] for p in answer["predictions"]]


@pytest.mark.parametrize("date", [dt.date(2013, 10, 22), dt.date(2014, 6, 1), dt.date(2020, 1, 1)])
def test_top_n_scores_are_what_the_fm_endpoint_answers(
    served_run: tuple[Any, ServingIndex, ServingFactors], date: dt.date
) -> None:
    client, index, f = served_run
    for customer_id in [*index.customer_ids, "stranger"]:
        top = recommend(f, index, customer_id, date, k=8)
        key = index.customer_keys.get(customer_id)
        # The request the predictions shim builds for each (customer, product, date).
        feature = time_value(index, key, epoch_day(date))
        instances = [fm_instance(index, key, int(row), feature) for row in top.rows]
        np.testing.assert_allclose(top.scores, _endpoint_scores(client, instances), rtol=0, atol=1e-4)
        assert top.fallback is (key is None)


def test_the_best_products_are_the_endpoints_best(
    served_run: tuple[Any, ServingIndex, ServingFactors],
) -> None:
    client, index, f = served_run
    date = dt.date(2014, 3, 1)
    for key, customer_id in enumerate(index.customer_ids):
        feature = time_value(index, key, epoch_day(date))
        candidates = sorted(set(range(index.num_products)) - set(f.reviewed(key).tolist()))
        scores = _endpoint_scores(client, [fm_instance(index, key, row, feature) for row in candidates])
        best = [candidates[i] for i in np.argsort(-np.array(scores), kind="stable")[:5]]
        assert recommend(f, index, customer_id, date, k=5).rows.tolist() == best


def test_reviewed_products_built_by_hand_match_the_shards() -> None:
    built = reviewed_products([shard()], FEATURES)
    expected = ReviewedProducts(
        np.array([0, 2, 4]), np.array([0, 3, 0, 1], np.int32), np.array([3, 1, 0, 1]), 5
    )
    for name in ("indptr", "indices", "popularity"):
        np.testing.assert_array_equal(getattr(built, name), getattr(expected, name))
