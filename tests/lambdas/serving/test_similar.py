"""POST /similar-titles through the real handler: the notebook's "sherlock" probe as an API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.lambdas.serving.support import World, cosine, deployed_world, word_vector

KNOWN = [  # the title table: known products' titles that are in the BlazingText vocabulary
    "sherlock-season-1",
    "sherlock-season-2",
    "sherlock-season-3",
    "the-imitation-game",
    "keeping-up-with-the-kardashians-season-1",
    "keeping-up-with-the-kardashians-season-2",
    "downton-abbey-season-1",
    "the-crown-season-1",
]


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with deployed_world(tmp_path, monkeypatch) as world:
        yield world


def _numpy_ranking(word: str, k: int) -> list[tuple[str, float]]:
    """The k known titles nearest to word by cosine, computed from the FastText model with numpy."""
    matrix = np.stack([word_vector(t) for t in KNOWN])
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    query = word_vector(word)
    scores = matrix @ (query / np.linalg.norm(query))
    ranked = [(KNOWN[i], float(scores[i])) for i in np.argsort(-scores, kind="stable") if KNOWN[i] != word]
    return ranked[:k]


def test_made_up_and_known_titles_get_their_nearest_known_titles_in_order(world: World) -> None:
    status, body = world.similar(
        {"titles": ["Sherlock Season 5", "Sherlock Season 1", "abcdefghijklmn"], "k": 4}
    )

    assert status == 200
    assert body["run_id"] == "run-a"
    made_up, known, noise = body["results"]
    assert (made_up["title"], made_up["title_token"], made_up["known"]) == (
        "Sherlock Season 5",
        "sherlock-season-5",
        False,
    )
    assert known["known"] is True
    for result, word in (
        (made_up, "sherlock-season-5"),
        (known, "sherlock-season-1"),
        (noise, "abcdefghijklmn"),
    ):
        expected = _numpy_ranking(word, 4)
        assert [s["title"] for s in result["similar"]] == [t for t, _ in expected]
        assert [s["similarity"] for s in result["similar"]] == pytest.approx(
            [c for _, c in expected], abs=1e-5
        )
    # The notebook's probe: season 5 sits next to the other seasons.
    assert {s["title"] for s in made_up["similar"][:3]} == {
        "sherlock-season-1",
        "sherlock-season-2",
        "sherlock-season-3",
    }
    assert made_up["similar"][0]["product_id"] in {"P-SH1", "P-SH2", "P-SH3"}
    # A known title is not its own neighbour, and its vector comes from the table.
    assert "sherlock-season-1" not in [s["title"] for s in known["similar"]]
    assert known["similar"][0]["similarity"] == pytest.approx(
        cosine(word_vector("sherlock-season-1"), word_vector(known["similar"][0]["title"])), abs=1e-5
    )
    assert world.server.received(world.blazingtext) == [
        {"instances": ["sherlock-season-5", "abcdefghijklmn"]}
    ]


def test_default_k_is_capped_by_max_similar_and_known_titles_need_no_endpoint(world: World) -> None:
    status, body = world.similar({"titles": ["The Imitation Game", "the imitation game"]})

    assert status == 200
    first, second = body["results"]
    assert len(first["similar"]) == 5  # MAX_SIMILAR 5 < the default 10
    assert first["similar"] == second["similar"]
    assert world.server.received(world.blazingtext) == []
    assert first["similar"][0]["title"].startswith("sherlock-season-")


def test_k_larger_than_the_table_lists_every_other_title(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with deployed_world(tmp_path, monkeypatch, MAX_SIMILAR="20") as world:
        world.server.remove_endpoint(world.blazingtext)  # known titles only: no endpoint needed
        status, body = world.similar({"titles": ["Downton Abbey Season 1"], "k": 20})
        assert status == 200
        assert [s["title"] for s in body["results"][0]["similar"]] == [
            t for t, _ in _numpy_ranking("downton-abbey-season-1", 20)
        ]
        assert len(body["results"][0]["similar"]) == len(KNOWN) - 1

        status, body = world.similar({"titles": ["Sherlock Season 9"], "k": 5})
        assert status == 503
        assert body["error"]["code"] == "not_deployed"
        assert "blazingtext model" in body["error"]["message"]
