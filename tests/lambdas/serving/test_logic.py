"""The calls' logic on hand-made data, with the endpoints answered by plain functions (no AWS, no server)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from typing import Any

import numpy as np
import pytest

from contract.features import FeatureLayout
from contract.index import parse_index
from fm.artifact import FmParameters
from fm.biases import CustomerBase
from fm.coldstart import Shrinkage
from fm.factors import ReviewedProducts, ServingFactors, build_factors
from lambdas.kit.errors import ModelRejectedError
from lambdas.serving.deployed import DeployedRun
from lambdas.serving.parsing import PredictItem, RecommendationsRequest, SimilarRequest
from lambdas.serving.predict import predict
from lambdas.serving.recommendations import recommendations
from lambdas.serving.similar import similar_titles
from lambdas.serving.title_table import build_title_table
from lambdas.serving.vectors import parse_title_table

INDEX = {
    "schema_version": 1,
    "num_customers": 2,
    "num_products": 3,
    "feature_dim": 6,
    "time_transform": {"kind": "log1p_ratio", "scale_days": 10},
    "rating_range": [1, 5],
    "global_mean": 3.9,
}
CUSTOMERS = b"alice\t100\nbob\t200\n"
PRODUCTS = b"pa\tTitle A\npb\tTitle B\npc\tTitle C\n"
# Unit vectors in 2-d: A east, B north, C west.
VECTORS = b"4 2\ntitle-a 2.0 0.0\ntitle-b 0.0 0.5\ntitle-c -3.0 0.0\nnot-a-title 1.0 1.0\n"


# A hand-chosen FM of 1 factor (keys: alice 0, bob 1, pa 2, pb 3, pc 4, time 5):
#   w0 3; alice w 0.5, v 1; pa w 1, v 0.5; pb w -0.5, v 0; pc w 0.25, v -1; time w 0.2, v 0.1.
W = [0.5, 0.0, 1.0, -0.5, 0.25, 0.2]
V = [1.0, 0.0, 0.5, 0.0, -1.0, 0.1]
SHRINKAGE = Shrinkage(alpha=0.5, min_similarity=0.5)
# The user-bias predictions (mu + b_u): alice 4.25, bob 3.5; mu 3.75, an unknown customer's.
BASE = CustomerBase(mean=3.75, values=np.array([4.25, 3.5], np.float32))


class Endpoints:
    """Stands in for the two endpoints: fixed word vectors, FM scores by feature keys."""

    def __init__(self, words: dict[str, list[float]], scores: dict[tuple[int, ...], float]) -> None:
        self.words = words
        self.scores = scores
        self.calls: list[tuple[str, Any]] = []

    def __call__(self, model: str, payload: Any) -> Any:
        self.calls.append((model, payload))
        if model == "blazingtext":
            return [{"word": w, "vector": self.words[w]} for w in payload["instances"]]
        keys = [tuple(i["data"]["features"]["keys"]) for i in payload["instances"]]
        return {"predictions": [{"score": self.scores[k]} for k in keys]}


def _factors() -> ServingFactors:
    params = FmParameters(3.0, np.array(W, np.float32), np.array(V, np.float32)[:, None])
    features = FeatureLayout(2, 3)
    reviewed = ReviewedProducts(  # alice reviewed pa; pa once, the others never
        indptr=np.array([0, 1, 1]), indices=np.array([0], np.int32), popularity=np.array([1, 0, 0]), rows=1
    )
    return build_factors(params, features, reviewed, BASE)


def _run() -> DeployedRun:
    index = parse_index(json.dumps(INDEX).encode(), CUSTOMERS, PRODUCTS)
    table = build_title_table(VECTORS.splitlines(), {"title-a", "title-b", "title-c"})
    titles = parse_title_table(table.titles_txt, table.titles_f32, table.titles_json)
    return DeployedRun(
        run_id="r1",
        endpoints={"fm": "fm", "blazingtext": "bt"},
        index=index,
        titles=titles,
        factors=_factors(),
        shrinkage=SHRINKAGE,
        popularity_weight=0.5,
    )


def _item(customer: str, product: str, title: str | None = None) -> PredictItem:
    return PredictItem(
        customer_id=customer, product_id=product, date=dt.date(1970, 4, 20), product_title=title
    )


def test_cold_start_scores_the_neighbours_average_item_in_fms_space_shrunk_by_their_mass() -> None:
    s = 1 / math.sqrt(2)
    endpoints = Endpoints(
        words={"new-northeast": [1.0, 1.0], "new-southwest": [-1.0, -1.0], "new-nowhere": [0.0, 0.0]},
        scores={},
    )
    items = [
        _item("alice", "new1", "New Northeast"),  # A and B at cosine 0.707 each, C at -0.707: left out
        _item("carol", "new2", "New Southwest"),  # unknown customer: C only (0.707), item side at day 0
        _item("alice", "new3", "New Nowhere"),  # a zero vector: no direction, no neighbour
        _item("alice", "new4", "..."),  # no letter or digit: not sent to BlazingText
    ]

    outcome = predict(_run(), items, endpoints, neighbours=3)

    first, second, third, fourth = outcome.body["predictions"]
    # alice on 1970-04-20 is 9 days after her first review (day 100): t = log1p(9) / log1p(10).
    t = math.log1p(9) / math.log1p(10)
    # The typical product is pa (the only one reviewed): w 1, v 0.5, <v, v_t> 0.05: alice's item side of it
    # w_pa + <v_alice, v_pa> + t <v_pa, v_t>. Her base is her user-bias prediction, 4.25.
    typical = 1.0 + 1.0 * 0.5 + t * 0.05
    alice = 4.25
    assert first["status"] == "cold_start"
    assert first["answered_from"] == "title_neighbours"
    assert [(n["title"], n["product_id"]) for n in first["neighbours"]] == [
        ("title-a", "pa"),
        ("title-b", "pb"),
    ]
    assert [n["similarity"] for n in first["neighbours"]] == pytest.approx([s, s], abs=1e-6)
    assert [n["weight"] for n in first["neighbours"]] == pytest.approx([0.5, 0.5])
    # The average item of pa and pb (weights 1/2): w_pa + <v_alice, v_pa> + t <v_pa, v_t>, and w_pb,
    # against the typical product's.
    item = 0.5 * (1.0 + 1.0 * 0.5 + t * 0.5 * 0.1) + 0.5 * (-0.5) - typical
    mass = 2 * s
    shrinkage = mass / (mass + 0.5)
    assert (first["similarity_mass"], first["shrinkage"]) == pytest.approx((mass, shrinkage), abs=1e-6)
    assert (first["alpha"], first["min_similarity"]) == (0.5, 0.5)
    assert (first["customer_side"], first["neighbour_item"]) == pytest.approx((alice, item), abs=1e-6)
    assert first["rating"] == pytest.approx(min(5.0, alice + shrinkage * item), abs=1e-6)  # clipped
    assert second["customer_known"] is False
    assert second["neighbours"] == [
        {"title": "title-c", "product_id": "pc", "similarity": pytest.approx(s), "weight": 1.0}
    ]
    # An unknown customer's base is mu; no customer terms and day 0: lambda (w_pc - w_pa).
    assert second["customer_side"] == 3.75
    assert second["rating"] == pytest.approx(3.75 + s / (s + 0.5) * (0.25 - 1.0), abs=1e-6)
    for answer, code in ((third, "title_has_no_vector"), (fourth, "title_has_no_letter_or_digit")):
        assert answer["status"] == "cold_start"
        assert answer["answered_from"] == "customer_only"
        assert answer["reason"]["code"] == code
        assert answer["rating"] == pytest.approx(min(5.0, alice), abs=1e-6)  # clipped to the rating range
        assert (answer["similarity_mass"], answer["shrinkage"], answer["neighbours"]) == (0.0, 0.0, [])
    # One BlazingText call for the three titles with a letter; no FM call: the factors are the model's.
    assert endpoints.calls == [
        ("blazingtext", {"instances": ["new-northeast", "new-southwest", "new-nowhere"]})
    ]
    assert outcome.counts == {
        "known": 0,
        "unknown_customer": 0,
        "cold_start": 4,
        "error": 0,
        "items": 4,
        "fm_rows": 0,
        "blazingtext_words": 3,
        "cold_start_customer_only": 2,
    }


def test_neighbours_below_min_similarity_are_listed_with_no_weight() -> None:
    endpoints = Endpoints(words={"new-east-ish": [2.0, 1.0]}, scores={})  # A 0.894, B 0.447 < 0.5
    outcome = predict(_run(), [_item("bob", "new", "New East-ish")], endpoints, neighbours=3)
    (answer,) = outcome.body["predictions"]
    assert [(n["title"], n["weight"]) for n in answer["neighbours"]] == [("title-a", 1.0), ("title-b", 0.0)]
    assert answer["similarity_mass"] == pytest.approx(2 / math.sqrt(5), abs=1e-6)
    # bob (no factors, w 0) before his first review (day 200): t = 0. His one neighbour, pa, is the
    # typical product itself: no item difference, his user bias 3.5 whatever the shrinkage.
    assert answer["shrinkage"] == pytest.approx(answer["similarity_mass"] / (answer["similarity_mass"] + 0.5))
    assert (answer["rating"], answer["neighbour_item"]) == pytest.approx((3.5, 0.0), abs=1e-6)


def test_a_shrinkage_that_trusts_no_neighbour_answers_the_user_bias_flagged_with_the_neighbours_listed() -> (
    None
):
    endpoints = Endpoints(words={"new-northeast": [1.0, 1.0]}, scores={})  # A and B at 0.707
    run = dataclasses.replace(_run(), shrinkage=Shrinkage(alpha=1e9, min_similarity=0.5))
    (answer,) = predict(run, [_item("alice", "new", "New Northeast")], endpoints, neighbours=3).body[
        "predictions"
    ]
    assert (answer["answered_from"], answer["reason"]["code"]) == (
        "customer_only",
        "shrinkage_trusts_no_neighbour",
    )
    assert "did not beat the user-bias prediction" in answer["reason"]["message"]
    assert (answer["rating"], answer["customer_side"], answer["shrinkage"]) == (4.25, 4.25, 0.0)
    assert answer["similarity_mass"] == pytest.approx(2 / math.sqrt(2), abs=1e-6)
    assert [n["product_id"] for n in answer["neighbours"]] == ["pa", "pb"]


def test_no_endpoint_is_called_when_nothing_is_answerable() -> None:
    endpoints = Endpoints(words={}, scores={})
    outcome = predict(_run(), [_item("alice", "unknown")], endpoints, neighbours=3)
    assert outcome.body["predictions"][0]["error"]["code"] == "title_required"
    assert endpoints.calls == []


def test_a_model_answer_of_the_wrong_shape_is_a_rejection_naming_the_model() -> None:
    def short_fm(model: str, payload: Any) -> Any:
        return {"predictions": []}

    with pytest.raises(ModelRejectedError, match="the fm model answered 0 predictions for 1 instances"):
        predict(_run(), [_item("alice", "pa")], short_fm, neighbours=3)

    def wrong_dim(model: str, payload: Any) -> Any:
        return [{"word": w, "vector": [1.0, 2.0, 3.0]} for w in payload["instances"]]

    with pytest.raises(ModelRejectedError, match="no 2-dimensional vector for 'zzz'"):
        similar_titles(_run(), SimilarRequest(titles=["ZZZ"], k=2), wrong_dim)


def test_similar_titles_exclude_the_title_itself_and_keep_negative_similarities() -> None:
    outcome = similar_titles(_run(), SimilarRequest(titles=["Title A"], k=5), Endpoints({}, {}))
    [result] = outcome.body["results"]
    assert result["known"] is True
    assert [(s["title"], round(s["similarity"], 6)) for s in result["similar"]] == [
        ("title-b", 0.0),
        ("title-c", -1.0),
    ]


def _recommend(customer: str, *, k: int = 3, exclude_reviewed: bool = True) -> dict[str, Any]:
    request = RecommendationsRequest(
        customer_id=customer, k=k, exclude_reviewed=exclude_reviewed, date=dt.date(1970, 4, 20)
    )
    return recommendations(_run(), request).body


def test_recommendations_rank_by_fms_score_plus_the_popularity_term_and_leave_out_the_reviewed() -> None:
    t = math.log1p(9) / math.log1p(10)
    # alice at t: pa 3 + 0.5 + 1 + 0.5 + t (0.2 + 0.1 + 0.05) = 5 + 0.35 t; pb 3 + 0.3 t; pc 2.75 + 0.2 t.
    body = _recommend("alice")
    assert (body["customer_known"], body["fallback"], body["popularity_weight"]) == (True, False, 0.5)
    assert body["date"] == "1970-04-20"
    assert [r["product_id"] for r in body["recommendations"]] == ["pb", "pc"]  # pa reviewed
    assert [r["rating"] for r in body["recommendations"]] == pytest.approx([3 + 0.3 * t, 2.75 + 0.2 * t])
    assert [r["score"] for r in body["recommendations"]] == pytest.approx([3 + 0.3 * t, 2.75 + 0.2 * t])
    assert [r["title"] for r in body["recommendations"]] == ["Title B", "Title C"]

    body = _recommend("alice", k=1, exclude_reviewed=False)
    (best,) = body["recommendations"]
    assert best == {
        "product_id": "pa",
        "title": "Title A",
        "rating": 5.0,  # clipped as /predictions clips
        "score": pytest.approx(5 + 0.35 * t + 0.5 * math.log(2)),
        "reviews": 1,
    }


def test_an_unknown_customer_gets_the_most_reviewed_products_scored_from_the_item_side() -> None:
    body = _recommend("carol")
    assert (body["customer_known"], body["fallback"]) == (False, True)
    # Review counts pa 1, pb 0, pc 0 (ties by row); scores w0 + w_i at day 0.
    assert [(r["product_id"], r["rating"]) for r in body["recommendations"]] == [
        ("pa", 4.0),
        ("pb", 2.5),
        ("pc", 3.25),
    ]
    assert body["recommendations"][0]["score"] == pytest.approx(4.0 + 0.5 * math.log(2))
