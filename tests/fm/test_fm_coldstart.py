"""The cold start in FM's space on the hand-made run of topn_support (every figure written out there)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fm.coldstart import (
    ColdStartFormatError,
    Shrinkage,
    choose_shrinkage,
    neighbourhood,
    parts,
)
from tests.fm.topn_support import SCORES_AT_0, factors

# C1 with neighbours P0 (similarity 0.6) and P2 (0.2); C2 with no usable neighbour (negative, padding).
ROWS = [[0, 2], [1, -1]]
SIMS = [[0.6, 0.2], [-0.3, 0.9]]


def test_one_neighbour_of_weight_one_is_that_products_fm_score() -> None:
    around = neighbourhood([[0]], [[0.7]], 0.0)
    terms = parts(factors(), [0], [0.0], around)
    assert terms.ratings(Shrinkage(alpha=0.0, min_similarity=0.0))[0] == pytest.approx(SCORES_AT_0[0][0])


def test_the_neighbours_average_item_is_scored_once_and_shrunk_by_the_mass() -> None:
    around = neighbourhood(ROWS, SIMS, 0.0)
    assert around.mass.tolist() == pytest.approx([0.8, 0.0])
    assert around.weights[0].tolist() == pytest.approx([0.75, 0.25])
    terms = parts(factors(), [0, 1], [0.0, 0.0], around)
    # The typical product, reviews 3, 1, 0, 1 for P0..P3: v (0.5, -0.1), w 0.1, <v, v_t> 0.1.
    # base(C1) = 3 + 0.5 + 0.1 + <(1, 0), (0.5, -0.1)> = 4.1; base(C2) = 3 - 0.25 + 0.1 - 0.1 = 2.75.
    # The neighbours' average item: w 0.15, v (0.4375, 0.0625): C1 rates it 3.5 + 0.15 + 0.4375 = 4.0875.
    assert terms.base.tolist() == pytest.approx([4.1, 2.75])
    assert terms.item.tolist() == pytest.approx([4.0875 - 4.1, 0.0])
    assert terms.ratings(Shrinkage(alpha=0.0, min_similarity=0.0)).tolist() == pytest.approx([4.0875, 2.75])
    assert terms.ratings(Shrinkage(alpha=0.8, min_similarity=0.0)).tolist() == pytest.approx([4.09375, 2.75])


def test_rows_gathered_in_chunks_give_the_same_parts() -> None:
    around = neighbourhood(ROWS + ROWS, SIMS + SIMS, 0.0)
    whole = parts(factors(), [0, 1, 1, 0], [0.0, 0.5, 1.0, 0.25], around)
    chunked = parts(factors(), [0, 1, 1, 0], [0.0, 0.5, 1.0, 0.25], around, chunk_rows=3)
    for name in ("base", "item", "mass"):
        np.testing.assert_array_equal(getattr(chunked, name), getattr(whole, name), err_msg=name)


def test_the_time_term_of_the_average_item_counts_at_t() -> None:
    # At t = 1 the customer's side is 3.5 + w_t 0.5 + <v_C1, v_t> 0.2 = 4.2; the typical product adds
    # 0.1 + 0.5 + t 0.1 (base 4.9), the neighbours' average 0.15 + 0.4375 + t 0.0875 (4.875).
    terms = parts(factors(), [0], [1.0], neighbourhood([[0, 2]], [[0.6, 0.2]], 0.0))
    assert terms.base[0] == pytest.approx(4.9)
    assert terms.item[0] == pytest.approx(4.875 - 4.9)


def test_min_similarity_keeps_the_strong_neighbours_only() -> None:
    terms = parts(factors(), [0], [0.0], neighbourhood([[0, 2]], [[0.6, 0.2]], 0.4))
    assert terms.mass[0] == pytest.approx(0.6)
    assert terms.ratings(Shrinkage(0.0, 0.4))[0] == pytest.approx(SCORES_AT_0[0][0])


def test_an_unknown_customer_gets_the_item_side_only() -> None:
    terms = parts(factors(), [-1], [0.0], neighbourhood([[0]], [[0.5]], 0.0))
    assert terms.base[0] == pytest.approx(3.1)  # w0 + the typical product's weight 0.1
    assert terms.item[0] == pytest.approx(0.0)  # P0's weight is 0.1 too; no customer factors to meet


def test_the_choice_is_made_on_the_given_rows_and_never_loses_to_base_there() -> None:
    # Ratings that the neighbours predict well: the full blend wins.
    fs = factors()
    exact = parts(fs, [0], [0.0], neighbourhood([[0, 2]], [[0.6, 0.2]], 0.0)).ratings(Shrinkage(0.0, 0.0))
    choice = choose_shrinkage(
        fs,
        customers=[0],
        times=[0.0],
        neighbour_rows=[[0, 2]],
        similarities=[[0.6, 0.2]],
        actual=exact,
        rating_range=(1.0, 5.0),
    )
    assert choice.chosen.alpha == 0.0 and choice.rmse == pytest.approx(0.0)
    # Ratings equal to base (4.1): the neighbours mislead, the largest alpha (never trust them) wins.
    choice = choose_shrinkage(
        fs,
        customers=[0],
        times=[0.0],
        neighbour_rows=[[0, 2]],
        similarities=[[0.6, 0.2]],
        actual=[4.1],
        rating_range=(1.0, 5.0),
    )
    assert choice.chosen.alpha == 1e9
    assert choice.rmse <= choice.base_rmse + 1e-12
    assert len(choice.table) == 9 * 5
    document = choice.to_json()
    assert document["chosen_on"] == "validation" and document["rows"] == 1
    assert Shrinkage.from_json(json.dumps(document)) == choice.chosen


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{", "not JSON"),
        ('{"schema_version": 2}', "schema_version is not 1"),
        ('{"schema_version": 1, "alpha": -1, "min_similarity": 0}', "alpha is -1, below 0.0"),
        ('{"schema_version": 1, "alpha": 1, "min_similarity": "x"}', "min_similarity is 'x', not a number"),
    ],
)
def test_a_malformed_cold_start_file_names_the_field(document: str, message: str) -> None:
    with pytest.raises(ColdStartFormatError, match=message):
        Shrinkage.from_json(document)


def test_neighbour_arrays_must_align() -> None:
    with pytest.raises(ValueError, match="must be"):
        neighbourhood([[0, 1]], [[0.5]], 0.0)
    assert np.all(neighbourhood([[0]], [[0.1]], 0.5).rows == -1)
