"""The logic module on hand-made data, with the endpoints answered by plain functions (no AWS, no server)."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import pytest

from contract.index import parse_index
from lambdas.kit.errors import ModelRejectedError
from lambdas.serving.logic import DeployedRun, PredictItem, SimilarRequest, predict, similar_titles
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


def _run() -> DeployedRun:
    index = parse_index(json.dumps(INDEX).encode(), CUSTOMERS, PRODUCTS)
    table = build_title_table(VECTORS.splitlines(), {"title-a", "title-b", "title-c"})
    titles = parse_title_table(table.titles_txt, table.titles_f32, table.titles_json)
    return DeployedRun(run_id="r1", endpoints={"fm": "fm", "blazingtext": "bt"}, index=index, titles=titles)


def _item(customer: str, product: str, title: str | None = None) -> PredictItem:
    return PredictItem(
        customer_id=customer, product_id=product, date=dt.date(1970, 4, 20), product_title=title
    )


def test_cold_start_blends_only_neighbours_of_positive_similarity() -> None:
    s = 1 / math.sqrt(2)
    endpoints = Endpoints(
        words={"new-northeast": [1.0, 1.0], "new-southwest": [-1.0, -1.0], "new-nowhere": [0.0, 0.0]},
        scores={(0, 2, 5): 4.0, (0, 3, 5): 6.0, (2, 5): 2.0, (3, 5): 0.5, (4, 5): 3.0},
    )
    items = [
        _item("alice", "new1", "New Northeast"),  # A and B at cosine 0.707 each, C at -0.707: left out
        _item("carol", "new2", "New Southwest"),  # unknown customer: C only (0.707), item side
        _item("alice", "new3", "New Nowhere"),  # a zero vector: no direction, no neighbour
    ]

    outcome = predict(_run(), items, endpoints, neighbours=3)

    first, second, third = outcome.body["predictions"]
    assert first["status"] == "cold_start"
    assert [(n["title"], n["product_id"]) for n in first["neighbours"]] == [
        ("title-a", "pa"),
        ("title-b", "pb"),
    ]
    assert [n["similarity"] for n in first["neighbours"]] == pytest.approx([s, s], abs=1e-6)
    assert [n["weight"] for n in first["neighbours"]] == pytest.approx([0.5, 0.5])
    assert [n["rating"] for n in first["neighbours"]] == [4.0, 5.0]  # 6.0 clipped to the rating range
    assert first["rating"] == pytest.approx(4.5)
    assert second["customer_known"] is False
    assert second["neighbours"] == [
        {"title": "title-c", "product_id": "pc", "similarity": pytest.approx(s), "weight": 1.0, "rating": 3.0}
    ]
    assert third["status"] == "error"
    assert third["error"]["code"] == "no_similar_titles"
    assert "'New Nowhere'" in third["error"]["message"]
    # One call per model; alice on 1970-04-20 is 9 days after her first review (day 100).
    assert [model for model, _ in endpoints.calls] == ["blazingtext", "fm"]
    fm_rows = endpoints.calls[1][1]["instances"]
    assert [r["data"]["features"]["values"] for r in fm_rows][:2] == [
        [1.0, 1.0, pytest.approx(math.log1p(9) / math.log1p(10))]
    ] * 2
    assert outcome.counts == {
        "known": 0,
        "unknown_customer": 0,
        "cold_start": 2,
        "error": 1,
        "items": 3,
        "fm_rows": 3,
        "blazingtext_words": 3,
    }


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
