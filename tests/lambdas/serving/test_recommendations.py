"""POST /recommendations through the real handler, from the deployed run's FM factors; the scores checked
against what the FM endpoint (the local runtime server, serving the run's model.tar.gz) answers."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from contract.index import load_index
from fm.topn import epoch_day, time_value
from lambdas.serving.endpoints import fm_instance
from tests.lambdas.serving.support import (
    CUSTOMERS,
    POPULARITY_WEIGHT,
    PRODUCTS,
    REVIEW_COUNTS,
    REVIEWS,
    TIME_KEY,
    World,
    answer,
    api_event,
    deployed_world,
    fm_dense_score,
    fm_parameters,
    product_key,
)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with deployed_world(tmp_path, monkeypatch) as world:
        yield world


def _endpoint_scores(world: World, customer_id: str, product_ids: list[str], date: dt.date) -> list[float]:
    """What the FM endpoint answers for each (customer, product, date), asked as /predictions asks it."""
    index = load_index(world.run / "prep" / "index")
    key = index.customer_keys.get(customer_id)
    feature = time_value(index, key, epoch_day(date))
    instances = [fm_instance(index, key, index.product_rows[p], feature) for p in product_ids]
    client = boto3.client(
        "sagemaker-runtime",
        endpoint_url=world.server.url,
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )
    raw = client.invoke_endpoint(
        EndpointName=world.fm, Body=json.dumps({"instances": instances}), ContentType="application/json"
    )["Body"].read()
    return [float(p["score"]) for p in json.loads(raw)["predictions"]]


def _reviewed(customer_id: str) -> set[str]:
    return {p for c, p in REVIEWS if c == customer_id}


@pytest.mark.parametrize("exclude_reviewed", [True, False])
@pytest.mark.parametrize("date", ["2013-10-22", "2013-11-01", "2016-05-05", "2000-01-01"])
def test_scores_are_the_fm_endpoints_plus_the_popularity_term(
    world: World, date: str, exclude_reviewed: bool
) -> None:
    for customer_id in [*(c for c, _ in CUSTOMERS), "stranger"]:
        body = {"customer_id": customer_id, "k": 100, "date": date, "exclude_reviewed": exclude_reviewed}
        status, top = world.recommend(body)
        assert status == 200, top
        listed = top["recommendations"]
        products = [r["product_id"] for r in listed]
        endpoint = _endpoint_scores(world, customer_id, products, dt.date.fromisoformat(date))
        for entry, fm_score in zip(listed, endpoint, strict=True):
            popularity = POPULARITY_WEIGHT * math.log1p(entry["reviews"])
            assert entry["score"] - popularity == pytest.approx(fm_score, abs=1e-4)
            assert entry["rating"] == pytest.approx(min(5.0, max(1.0, fm_score)), abs=1e-4)
            assert entry["reviews"] == REVIEW_COUNTS.get(entry["product_id"], 0)
        if customer_id == "stranger":
            assert (top["fallback"], top["customer_known"]) == (True, False)
            continue
        assert (top["fallback"], top["customer_known"]) == (False, True)
        scores = [r["score"] for r in listed]
        assert scores == sorted(scores, reverse=True)  # best first
        left_out = _reviewed(customer_id) if exclude_reviewed else set()
        assert set(products) == {p for p, _ in PRODUCTS} - left_out


def test_the_answer_by_hand_for_a_customer_with_factors(world: World) -> None:
    status, top = world.recommend({"customer_id": "C1", "k": 3, "date": "2013-11-01"})

    assert status == 200
    assert {k: v for k, v in top.items() if k != "recommendations"} == {
        "run_id": "run-a",
        "customer_id": "C1",
        "customer_known": True,
        "fallback": False,
        "date": "2013-11-01",
        "exclude_reviewed": True,
        "popularity_weight": 0.5,
    }
    # C1 reviewed P-SH1 and P-IMG. The others have no factors: above C1's own terms (w0 + w_C1 + t (w_t +
    # <v_C1, v_t>)) the key is w_i + 0.5 log(1 + reviews): P-SH2 0.5 + 0.5 log 2, P-DA1 0.5 log 2, then
    # the products of w 0 without a review, the lowest row first (P-KK2); P-SH3 -0.5, P-KK1 -1 + 0.5 log 2.
    t = math.log1p(10) / math.log1p(1000)
    constant = 3.0 + 0.5 + t * (0.1 + 0.5 * 0.1 + 0.1 * 0.2)
    assert [r["product_id"] for r in top["recommendations"]] == ["P-SH2", "P-DA1", "P-KK2"]
    assert [r["title"] for r in top["recommendations"]] == [
        "Sherlock Season 2",
        "Downton Abbey Season 1",
        "Keeping Up with the Kardashians Season 2",
    ]
    assert [r["rating"] for r in top["recommendations"]] == pytest.approx(
        [constant + 0.5, constant, constant], abs=1e-6
    )
    assert [r["score"] for r in top["recommendations"]] == pytest.approx(
        [constant + 0.5 + 0.5 * math.log(2), constant + 0.5 * math.log(2), constant], abs=1e-6
    )
    w0, w, v = fm_parameters()
    dense = fm_dense_score(w0, w, v, {0: 1.0, product_key("P-SH2"): 1.0, TIME_KEY: t})
    assert top["recommendations"][0]["rating"] == pytest.approx(dense, abs=1e-5)
    assert world.server.received(world.fm) == []  # the factors are the model's: no endpoint call
    assert world.server.received(world.blazingtext) == []


def test_a_generous_raters_ratings_are_clipped_and_the_order_kept(world: World) -> None:
    _, top = world.recommend({"customer_id": "C2", "k": 2, "date": "2014-06-01", "exclude_reviewed": False})
    # C2's w 3 puts every score above 5: ratings clip to 5, scores keep their order. The keys above C2's
    # own terms: P-IMG 0.75 + 0.5 log 2 (1.10), P-SH1 0.25 + 0.5 log 4 (0.94; <v_SH1, v_t> is 0).
    assert [r["rating"] for r in top["recommendations"]] == [5.0, 5.0]
    assert [r["product_id"] for r in top["recommendations"]] == ["P-IMG", "P-SH1"]
    assert top["recommendations"][0]["score"] > top["recommendations"][1]["score"] > 6.25


def test_an_unknown_customer_gets_the_most_reviewed_products_flagged_as_a_fallback(world: World) -> None:
    status, top = world.recommend({"customer_id": "  someone new ", "k": 6})

    assert status == 200
    assert top["customer_id"] == "someone new"
    assert (top["fallback"], top["customer_known"]) == (True, False)
    assert top["date"] == dt.datetime.now(dt.UTC).date().isoformat()
    # By review count (P-SH1 3, then one review each in row order), then the unreviewed in row order.
    assert [r["product_id"] for r in top["recommendations"]] == [
        "P-SH1",
        "P-SH2",
        "P-IMG",
        "P-KK1",
        "P-DA1",
        "P-SH3",
    ]
    # The item side, as the endpoint scores an unknown customer: w0 + w_i (day 0).
    assert [r["rating"] for r in top["recommendations"]] == pytest.approx(
        [3.25, 3.5, 3.75, 2.0, 3.0, 2.5], abs=1e-6
    )


def test_defaults_and_a_customer_who_reviewed_most_products(world: World) -> None:
    status, top = world.recommend({"customer_id": "C3"})
    assert status == 200
    assert top["exclude_reviewed"] is True
    assert len(top["recommendations"]) == 8  # k 10 by default; C3 reviewed 2 of the 10 products
    assert {r["product_id"] for r in top["recommendations"]} & _reviewed("C3") == set()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "body: not valid JSON"),
        ("[]", "body: must be a JSON object, got an array"),
        ("{}", "customer_id: required"),
        ('{"customer_id": 7}', "customer_id: must be a string, got a number"),
        ('{"customer_id": " "}', "customer_id: must not be empty"),
        (json.dumps({"customer_id": "C" * 65}), "customer_id: too long: 65 characters, at most 64"),
        ('{"customer_id": "C\\ud800"}', "customer_id: not valid Unicode: a lone surrogate U+D800"),
        ('{"customer_id": "C1", "k": 0}', "k: must be an integer from 1 to 100, got 0"),
        ('{"customer_id": "C1", "k": 101}', "k: must be an integer from 1 to 100, got 101"),
        ('{"customer_id": "C1", "k": "3"}', "k: must be an integer from 1 to 100, got a string"),
        ('{"customer_id": "C1", "k": 2.0}', "k: must be an integer from 1 to 100, got a number"),
        (
            '{"customer_id": "C1", "exclude_reviewed": "yes"}',
            "exclude_reviewed: must be true or false, got a",
        ),
        (
            '{"customer_id": "C1", "exclude_reviewed": 1}',
            "exclude_reviewed: must be true or false, got a num",
        ),
        ('{"customer_id": "C1", "date": "2020-13-01"}', "date: not a valid date YYYY-MM-DD: '2020-13-01'"),
        ('{"customer_id": "C1", "date": 20200101}', "date: must be a string YYYY-MM-DD, got a number"),
        (
            '{"customer_id": "C1", "n": 3}',
            "n: unknown field (allowed: customer_id, k, exclude_reviewed, date)",
        ),
    ],
)
def test_bad_requests_get_a_400_naming_the_field(world: World, raw: str, message: str) -> None:
    event = api_event(None, path="/recommendations", raw=raw)
    status, body = answer(world.handlers.recommendations_handler(event, None))

    assert (status, body["error"]["code"]) == (400, "bad_request")
    assert body["error"]["message"].startswith(message), body
    assert body["request_id"] == "req-1234"


def test_only_post_is_allowed(world: World) -> None:
    event: dict[str, Any] = api_event({"customer_id": "C1"}, path="/recommendations") | {"httpMethod": "GET"}
    status, body = answer(world.handlers.recommendations_handler(event, None))
    assert (status, body["error"]["code"]) == (405, "method_not_allowed")
    assert body["error"]["message"] == "method GET not allowed: POST /recommendations only"
