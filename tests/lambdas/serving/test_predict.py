"""POST /predictions through the real handler, against the local SageMaker runtime serving real models."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.lambdas.serving.support import (
    REVIEW_COUNTS,
    SHRINKAGE,
    TIME_KEY,
    World,
    cosine,
    days,
    deployed_world,
    fm_parameters,
    product_key,
    time_feature,
    word_vector,
)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with deployed_world(tmp_path, monkeypatch) as world:
        yield world


def test_known_pair_is_the_fm_score_of_user_item_and_time(world: World) -> None:
    status, body = world.predict([{"customer_id": "C1", "product_id": "P-SH1", "date": "2013-11-01"}])

    assert status == 200
    assert body["run_id"] == "run-a"
    # C1's first review is day 16000 (2013-10-22): 10 days later, time feature log1p(10) / log1p(1000).
    # w0 + w_C1 + w_SH1 + <v_C1, v_SH1> + t (w_time + <v_C1, v_time> + <v_SH1, v_time>)
    t = math.log1p(10) / math.log1p(1000)
    expected = 3.0 + 0.5 + 0.25 + (0.5 * 0.4 - 0.1 * 0.2) + t * (0.1 + 0.07 + 0.0)
    [prediction] = body["predictions"]
    assert prediction == {
        "customer_id": "C1",
        "product_id": "P-SH1",
        "date": "2013-11-01",
        "status": "known",
        "customer_known": True,
        "rating": pytest.approx(expected, abs=1e-5),
    }
    # The exact request the FM endpoint received: keys ascending [user, item, feature_dim - 1].
    [request] = world.server.received(world.fm)
    assert request == {
        "instances": [
            {
                "data": {
                    "features": {
                        "keys": [0, product_key("P-SH1"), TIME_KEY],
                        "shape": [TIME_KEY + 1],
                        "values": [1.0, 1.0, pytest.approx(t)],
                    }
                }
            }
        ]
    }


def test_batch_is_one_fm_call_clipped_to_the_rating_range_with_dates_clamped_and_defaulted(
    world: World,
) -> None:
    items = [
        {"customer_id": "C2", "product_id": "P-SH2", "date": "2014-01-01"},  # 3 + 3 + 0.5 + ... > 5
        {"customer_id": "C3", "product_id": "P-KK1", "date": "2000-01-01"},  # before C3's first review
        {"customer_id": "C1", "product_id": "P-SH1"},  # no date: today (UTC)
    ]
    status, body = world.predict(items)

    assert status == 200
    ratings = [p["rating"] for p in body["predictions"]]
    assert ratings[0] == 5.0
    assert ratings[1] == pytest.approx(3.0 - 1.0, abs=1e-6)  # day 0: time feature 0, C3 and KK1 have no V
    today = dt.datetime.now(dt.UTC).date()
    t = time_feature(days(today) - 16000)  # over 1000 days: 1
    assert ratings[2] == pytest.approx(min(5.0, 3.93 + 0.17 * t), abs=1e-5)
    assert body["predictions"][2]["date"] == today.isoformat()
    assert len(world.server.received(world.fm)) == 1
    assert len(world.server.received(world.fm)[0]["instances"]) == 3
    assert world.server.received(world.blazingtext) == []


def test_unknown_customer_is_answered_from_the_item_side(world: World) -> None:
    status, body = world.predict([{"customer_id": "NEW", "product_id": "P-IMG", "date": "2020-05-05"}])

    assert status == 200
    [prediction] = body["predictions"]
    assert prediction["status"] == "unknown_customer"
    assert prediction["customer_known"] is False
    assert prediction["rating"] == pytest.approx(3.0 + 0.75, abs=1e-6)  # no user key, time feature of day 0
    [request] = world.server.received(world.fm)
    features = request["instances"][0]["data"]["features"]
    assert features["keys"] == [product_key("P-IMG"), TIME_KEY]
    assert features["values"] == [1.0, 0.0]


def _expected_cold_start(title_word: str) -> list[tuple[str, float]]:
    """(neighbour product, similarity) from the FastText model itself: the 3 nearest known titles."""
    known = {
        "sherlock-season-1": "P-SH1",
        "sherlock-season-2": "P-SH2",
        "sherlock-season-3": "P-SH3",
        "the-imitation-game": "P-IMG",
        "keeping-up-with-the-kardashians-season-1": "P-KK1",
        "keeping-up-with-the-kardashians-season-2": "P-KK2",
        "downton-abbey-season-1": "P-DA1",
        "the-crown-season-1": "P-CR1",
    }
    query = word_vector(title_word)
    ranked = sorted(((cosine(query, word_vector(t)), p) for t, p in known.items()), reverse=True)[:3]
    return [(p, s) for s, p in ranked if s > 0]


def _item_side(customer: int | None, key: int, t: float) -> float:
    """w_j + <v_u, v_j> + t <v_j, v_t> for product key j (an unknown customer has no factors)."""
    _, w, v = (np.asarray(a, np.float64) for a in fm_parameters())
    v_u = v[customer] if customer is not None else np.zeros(v.shape[1])
    return float(w[key] + v_u @ v[key] + t * v[key] @ v[TIME_KEY])


def _typical(customer: int | None, t: float) -> float:
    """The customer's item side of the typical product: the review-weighted average of every product."""
    total = sum(REVIEW_COUNTS.values())
    return sum(n / total * _item_side(customer, product_key(p), t) for p, n in REVIEW_COUNTS.items())


def _fm_space(
    customer: int | None, neighbours: list[tuple[str, float]], t: float
) -> tuple[float, float, float]:
    """(base, item, mass): base = the user-bias prediction (USER_BIAS for every customer, mu for an unknown
    one); item = the kept neighbours' average item side in FM's space (each weighted by similarity / mass,
    those at or above SHRINKAGE.min_similarity) minus the typical product's."""
    typical = _typical(customer, t)
    kept = [(product_key(p), s) for p, s in neighbours if s >= SHRINKAGE.min_similarity]
    mass = sum(s for _, s in kept)
    item = sum(s / mass * _item_side(customer, j, t) for j, s in kept) - typical if kept else 0.0
    return USER_BIAS, float(item), mass


USER_BIAS = 4.0
"""mu + b_u of the bias model on the world's train shard: every rating there is 4, so mu 4 and every b_u 0."""


def _shrunk(side: float, item: float, mass: float) -> float:
    return min(5.0, max(1.0, side + mass / (mass + SHRINKAGE.alpha) * item))


def test_cold_start_title_scores_its_neighbours_average_item_in_fms_space(world: World) -> None:
    item = {
        "customer_id": "C1",
        "product_id": "NEW-SH5",
        "date": "2013-11-01",
        "product_title": "Sherlock Season 5",
    }
    status, body = world.predict([item])

    assert status == 200
    [prediction] = body["predictions"]
    assert prediction["status"] == "cold_start"
    assert prediction["customer_known"] is True
    assert prediction["title_token"] == "sherlock-season-5"
    assert prediction["answered_from"] == "title_neighbours"
    expected = _expected_cold_start("sherlock-season-5")
    neighbours = prediction["neighbours"]
    assert [n["product_id"] for n in neighbours] == [p for p, _ in expected]
    assert {n["title"] for n in neighbours} == {"sherlock-season-1", "sherlock-season-2", "sherlock-season-3"}
    for neighbour, (_, similarity) in zip(neighbours, expected, strict=True):
        assert neighbour["similarity"] == pytest.approx(similarity, abs=1e-5)
    mass = sum(s for _, s in expected)  # every one at or above min_similarity 0.65 (all near 1)
    assert [n["weight"] for n in neighbours] == pytest.approx([s / mass for _, s in expected], abs=1e-6)
    by_product = dict(expected)
    # By hand, t = log1p(10) / log1p(1000) (10 days after C1's first review):
    #   the neighbours' terms with C1: SH1 0.25 + <(0.5, 0.1), (0.4, -0.2)> 0.18 + t <v_SH1, v_t> 0 = 0.43;
    #   SH2 0.5; SH3 -0.5 (no factors)
    t = math.log1p(10) / math.log1p(1000)
    #   the typical product's (reviews SH1 3, SH2, IMG, KK1, DA1 1 each): _typical. The base: C1's user bias.
    side = USER_BIAS
    item_terms = 0.43 * by_product["P-SH1"] + 0.5 * by_product["P-SH2"] - 0.5 * by_product["P-SH3"]
    neighbour_item = item_terms / mass - _typical(0, t)
    shrinkage = mass / (mass + 1.0)  # alpha 1
    assert prediction["similarity_mass"] == pytest.approx(mass, abs=1e-5)
    assert prediction["shrinkage"] == pytest.approx(shrinkage, abs=1e-6)
    assert (prediction["alpha"], prediction["min_similarity"]) == (1.0, 0.65)
    assert prediction["customer_side"] == pytest.approx(side, abs=1e-6)
    assert prediction["neighbour_item"] == pytest.approx(neighbour_item, abs=1e-6)
    assert prediction["rating"] == pytest.approx(min(5.0, side + shrinkage * neighbour_item), abs=1e-5)
    assert prediction["rating"] == pytest.approx(_shrunk(*_fm_space(0, expected, time_feature(10))), abs=1e-5)
    # One BlazingText call for the unseen title; no FM row: the neighbours are scored from the factors.
    assert world.server.received(world.blazingtext) == [{"instances": ["sherlock-season-5"]}]
    assert world.server.received(world.fm) == []


def test_a_mixed_batch_makes_one_call_per_model_and_says_how_each_item_was_answered(world: World) -> None:
    items = [
        {"customer_id": "C1", "product_id": "P-SH1", "date": "2013-11-01"},
        {"customer_id": "NOBODY", "product_id": "NEW-SH5", "product_title": "Sherlock Season 5"},
        {"customer_id": "C2", "product_id": "NEW-X"},
        {"customer_id": "C4", "product_id": "P-DA1", "product_title": "ignored for a known product"},
        {
            "customer_id": "C3",
            "product_id": "NEW-KK3",
            "product_title": "Keeping Up With The Kardashians Season 3",
        },
    ]
    status, body = world.predict(items)

    assert status == 200
    predictions = body["predictions"]
    assert [p["status"] for p in predictions] == ["known", "cold_start", "error", "known", "cold_start"]
    assert [p["product_id"] for p in predictions] == [i["product_id"] for i in items]
    # Unknown customer and unknown product: mu + lambda (the neighbours' item side in FM's space, no
    # customer terms, day 0, minus the typical product's).
    assert predictions[1]["customer_known"] is False
    sherlock = _expected_cold_start("sherlock-season-5")
    side, item, mass = _fm_space(None, sherlock, 0.0)
    assert side == USER_BIAS
    assert predictions[1]["rating"] == pytest.approx(_shrunk(side, item, mass), abs=1e-5)
    assert predictions[2]["error"]["code"] == "title_required"
    assert "send its product_title" in predictions[2]["error"]["message"]
    assert "rating" not in predictions[2]
    assert [n["product_id"] for n in predictions[4]["neighbours"]][:2] == ["P-KK1", "P-KK2"] or [
        n["product_id"] for n in predictions[4]["neighbours"]
    ][:2] == ["P-KK2", "P-KK1"]
    # C3 today (t = 1), no factors: only the two Kardashians seasons reach 0.65 (KK1's w -1).
    kardashians = _expected_cold_start("keeping-up-with-the-kardashians-season-3")
    assert [n["weight"] > 0 for n in predictions[4]["neighbours"]] == [True, True, False]
    side, item, mass = _fm_space(2, kardashians, 1.0)
    assert side == USER_BIAS
    assert predictions[4]["rating"] == pytest.approx(_shrunk(side, item, mass), abs=1e-5)
    [fm_request] = world.server.received(world.fm)
    assert len(fm_request["instances"]) == 2  # the two known products only
    assert world.server.received(world.blazingtext) == [
        {"instances": ["sherlock-season-5", "keeping-up-with-the-kardashians-season-3"]}
    ]


def test_unknown_product_with_a_known_title_uses_the_table_without_calling_blazingtext(world: World) -> None:
    item = {"customer_id": "C1", "product_id": "NEW-IMG-4K", "product_title": "The Imitation  Game"}
    status, body = world.predict([item])
    assert status == 200
    # Two spaces make another token than the known one: that one is sent to BlazingText.
    assert world.server.received(world.blazingtext) == [{"instances": ["the-imitation--game"]}]

    item = {"customer_id": "C1", "product_id": "NEW-IMG-4K", "product_title": "THE IMITATION GAME"}
    status, body = world.predict([item])
    assert status == 200
    [prediction] = body["predictions"]
    assert prediction["neighbours"][0] == {
        "title": "the-imitation-game",
        "product_id": "P-IMG",
        "similarity": pytest.approx(1.0, abs=1e-5),
        "weight": pytest.approx(prediction["neighbours"][0]["weight"]),
    }
    today = dt.datetime.now(dt.UTC).date()
    expected = _expected_cold_start("the-imitation-game")
    fm_space = _fm_space(0, expected, time_feature(days(today) - 16000))
    assert prediction["rating"] == pytest.approx(_shrunk(*fm_space), abs=1e-5)
    assert len(world.server.received(world.blazingtext)) == 1  # no second call


def test_a_title_without_a_neighbour_at_min_similarity_gets_the_customer_side_flagged(world: World) -> None:
    items = [  # nearest known titles at cosines 0.61, 0.60, 0.20: none reaches 0.65
        {"customer_id": "C1", "product_id": "NEW-1", "date": "2013-11-01", "product_title": "abcdefghijklmn"},
        {"customer_id": "C1", "product_id": "NEW-2", "date": "2013-11-01", "product_title": "!!! ..."},
    ]
    status, body = world.predict(items)

    assert status == 200
    noise, punctuation = body["predictions"]
    side = USER_BIAS  # C1's user-bias prediction
    for answer in (noise, punctuation):
        assert (answer["status"], answer["answered_from"]) == ("cold_start", "customer_only")
        assert answer["rating"] == pytest.approx(min(5.0, side), abs=1e-6)
        assert (answer["similarity_mass"], answer["shrinkage"]) == (0.0, 0.0)
    assert noise["reason"] == {
        "code": "no_neighbour_at_min_similarity",
        "message": "no known title has a similarity of at least min_similarity 0.65",
    }
    assert [n["weight"] for n in noise["neighbours"]] == [0.0, 0.0, 0.0]
    assert [n["similarity"] for n in noise["neighbours"]] == pytest.approx(
        [s for _, s in _expected_cold_start("abcdefghijklmn")], abs=1e-5
    )
    assert punctuation["reason"]["code"] == "title_has_no_letter_or_digit"
    assert punctuation["neighbours"] == []
    # "!!!-..." is not sent to BlazingText: its subwords are noise.
    assert world.server.received(world.blazingtext) == [{"instances": ["abcdefghijklmn"]}]
    assert world.server.received(world.fm) == []


def test_title_sharing_products_map_to_the_most_reviewed_one(world: World) -> None:
    item = {"customer_id": "C1", "product_id": "NEW", "product_title": "Sherlock Season 5"}
    _, body = world.predict([item])
    products = [n["product_id"] for n in body["predictions"][0]["neighbours"]]
    assert "P-SH1" in products
    assert "P-SH1-HD" not in products  # same title token, fewer reviews (a later row of products.tsv)
    assert np.isfinite(body["predictions"][0]["rating"])
