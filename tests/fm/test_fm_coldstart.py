"""The cold start in FM's space on the hand-made run of topn_support (every figure written out there)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest

from fm.biases import CustomerBase
from fm.coldstart import (
    NEVER,
    ColdStartFormatError,
    PairedComparison,
    Shrinkage,
    ShrinkageChoice,
    choose_shrinkage,
    neighbourhood,
    parts,
)
from fm.factors import ServingFactors
from lambdas.pipeline.paired import paired_difference
from tests.fm.topn_support import SCORES_AT_0, factors

# C1 with neighbours P0 (similarity 0.6) and P2 (0.2); C2 with no usable neighbour (negative, padding).
ROWS = [[0, 2], [1, -1]]
SIMS = [[0.6, 0.2], [-0.3, 0.9]]
# The customers' user-bias predictions (mu + b_u) and mu, an unknown customer's.
BASE = CustomerBase(mean=3.5, values=np.array([4.25, 3.0], np.float32))
# FM's scores of the typical product (reviews 3, 1, 0, 1 for P0..P3: v (0.5, -0.1), w 0.1, <v, v_t> 0.1) at
# t = 0: C1 3 + 0.5 + 0.1 + <(1, 0), (0.5, -0.1)> = 4.1; C2 3 - 0.25 + 0.1 - 0.1 = 2.75.


def fs() -> ServingFactors:
    return factors(base=BASE)


def test_one_neighbour_of_weight_one_adds_its_score_over_the_typical_products_to_the_base() -> None:
    terms = parts(fs(), [0], [0.0], neighbourhood([[3]], [[0.7]], 0.0))
    # FM rates P3 4.5 for C1 at t = 0, the typical product 4.1: the base 4.25 plus 0.4.
    assert terms.base[0] == pytest.approx(4.25)
    assert terms.item[0] == pytest.approx(SCORES_AT_0[0][3] - 4.1)
    assert terms.ratings(Shrinkage(alpha=0.0, min_similarity=0.0))[0] == pytest.approx(4.65)


def test_the_neighbours_average_item_is_scored_once_and_shrunk_by_the_mass() -> None:
    around = neighbourhood(ROWS, SIMS, 0.0)
    assert around.mass.tolist() == pytest.approx([0.8, 0.0])
    assert around.weights[0].tolist() == pytest.approx([0.75, 0.25])
    terms = parts(fs(), [0, 1], [0.0, 0.0], around)
    # The neighbours' average item: w 0.15, v (0.4375, 0.0625): C1 rates it 3.5 + 0.15 + 0.4375 = 4.0875,
    # 0.0125 below the typical product.
    assert terms.base.tolist() == pytest.approx([4.25, 3.0])
    assert terms.item.tolist() == pytest.approx([-0.0125, 0.0])
    assert terms.ratings(Shrinkage(alpha=0.0, min_similarity=0.0)).tolist() == pytest.approx([4.2375, 3.0])
    # lambda = 0.8 / (0.8 + 0.8) = 0.5.
    assert terms.ratings(Shrinkage(alpha=0.8, min_similarity=0.0)).tolist() == pytest.approx([4.24375, 3.0])


def test_lambda_zero_is_the_user_bias_prediction_exactly() -> None:
    terms = parts(
        fs(), [0, 1, -1], [0.0, 1.0, 0.0], neighbourhood([[3], [3], [3]], [[0.9], [0.9], [0.9]], 0.0)
    )
    never = Shrinkage(alpha=NEVER, min_similarity=0.0)
    assert never.weight(terms.mass).tolist() == [0.0, 0.0, 0.0]
    np.testing.assert_array_equal(terms.ratings(never), np.array([4.25, 3.0, 3.5]))


def test_rows_gathered_in_chunks_give_the_same_parts() -> None:
    around = neighbourhood(ROWS + ROWS, SIMS + SIMS, 0.0)
    whole = parts(fs(), [0, 1, 1, 0], [0.0, 0.5, 1.0, 0.25], around)
    chunked = parts(fs(), [0, 1, 1, 0], [0.0, 0.5, 1.0, 0.25], around, chunk_rows=3)
    for name in ("base", "item", "mass"):
        np.testing.assert_array_equal(getattr(chunked, name), getattr(whole, name), err_msg=name)


def test_the_time_term_of_the_average_item_counts_at_t() -> None:
    # At t = 1 FM rates the typical product 3.5 + w_t 0.5 + <v_C1, v_t> 0.2 + 0.1 + 0.5 + t 0.1 = 4.9 and the
    # neighbours' average 4.2 + 0.15 + 0.4375 + t 0.0875 = 4.875; the base has no time term.
    terms = parts(fs(), [0], [1.0], neighbourhood([[0, 2]], [[0.6, 0.2]], 0.0))
    assert terms.base[0] == pytest.approx(4.25)
    assert terms.item[0] == pytest.approx(4.875 - 4.9)


def test_min_similarity_keeps_the_strong_neighbours_only() -> None:
    terms = parts(fs(), [0], [0.0], neighbourhood([[3, 2]], [[0.6, 0.2]], 0.4))
    assert terms.mass[0] == pytest.approx(0.6)
    assert terms.ratings(Shrinkage(0.0, 0.4))[0] == pytest.approx(4.25 + 0.4)


def test_an_unknown_customer_gets_mu_and_the_item_side_only() -> None:
    terms = parts(fs(), [-1], [0.0], neighbourhood([[2]], [[0.5]], 0.0))
    assert terms.base[0] == pytest.approx(3.5)  # mu
    assert terms.item[0] == pytest.approx(0.3 - 0.1)  # P2's weight over the typical product's


@dataclass(frozen=True)
class Fixed:
    relative: float
    low: float
    high: float


def fixed(high: float) -> PairedComparison:
    """A paired comparison whose interval's upper end is `high`, whatever the rows."""
    return lambda actual, candidate, other: Fixed(relative=high - 0.1, low=high - 0.2, high=high)


def choose(actual: list[float], compare: PairedComparison) -> ShrinkageChoice:
    return choose_shrinkage(
        fs(),
        customers=[0],
        times=[0.0],
        neighbour_rows=[[0, 2]],
        similarities=[[0.6, 0.2]],
        actual=actual,
        rating_range=(1.0, 5.0),
        compare=compare,
    )


def test_a_shrinkage_is_chosen_only_when_its_paired_interval_is_wholly_below_zero() -> None:
    # The full blend of P0 and P2 is exact (4.2375); min_similarity 0 and 0.2 keep both: the larger wins.
    choice = choose([4.2375], fixed(-0.01))
    assert choice.chosen == Shrinkage(alpha=0.0, min_similarity=0.2)
    assert choice.rmse == pytest.approx(0.0, abs=1e-6) and choice.base_rmse == pytest.approx(0.0125)
    assert choice.versus_base == {"relative": pytest.approx(-0.11), "interval": pytest.approx([-0.21, -0.01])}
    # The same rows, an interval that reaches 0: the user-bias answer, whatever the point estimate.
    choice = choose([4.2375], fixed(0.0))
    assert choice.chosen == Shrinkage(alpha=NEVER, min_similarity=0.0)
    assert choice.rmse == choice.base_rmse == pytest.approx(0.0125)
    assert choice.versus_base is None
    assert len(choice.table) == 9 * 5
    # The grid keeps every RMSE; those below the base's carry their interval.
    below = [row for row in choice.table if row["rmse"] < choice.base_rmse]
    assert below and all(row["interval"] == [-0.2, 0.0] for row in below)
    assert all("interval" not in row for row in choice.table if row["rmse"] >= choice.base_rmse)


def test_ratings_at_the_base_are_never_handed_to_the_neighbours() -> None:
    choice = choose([4.25], fixed(-1.0))  # no shrinkage has an RMSE below the base's: none is compared
    assert choice.chosen.alpha == NEVER and choice.rmse == 0.0
    document = choice.to_json()
    assert document["chosen_on"] == "validation" and document["rows"] == 1
    assert document["versus_base"] is None and "paired 95 % interval" in document["rule"]
    assert Shrinkage.from_json(json.dumps(document)) == choice.chosen


def test_the_choice_with_the_pipelines_paired_bootstrap() -> None:
    # Two rows the blend gets exactly and the base does not, on every resample: interval [-1, -1].
    choice = choose_shrinkage(
        fs(),
        customers=[0, 0],
        times=[0.0, 0.0],
        neighbour_rows=[[0, 2], [0, 2]],
        similarities=[[0.6, 0.2], [0.6, 0.2]],
        actual=[4.2375, 4.2375],
        rating_range=(1.0, 5.0),
        compare=paired_difference,
    )
    assert choice.chosen == Shrinkage(alpha=0.0, min_similarity=0.2)
    versus = choice.versus_base
    assert versus is not None and versus["relative"] == pytest.approx(-1.0, abs=1e-4)
    assert versus["interval"][0] == versus["interval"][1] == versus["relative"]  # float32 factors: ~1e-5


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{", "not JSON"),
        ('{"schema_version": 1}', "schema_version is not 2"),
        ('{"schema_version": 2, "alpha": -1, "min_similarity": 0}', "alpha is -1, below 0.0"),
        ('{"schema_version": 2, "alpha": 1, "min_similarity": "x"}', "min_similarity is 'x', not a number"),
    ],
)
def test_a_malformed_cold_start_file_names_the_field(document: str, message: str) -> None:
    with pytest.raises(ColdStartFormatError, match=message):
        Shrinkage.from_json(document)


def test_neighbour_arrays_must_align() -> None:
    with pytest.raises(ValueError, match="must be"):
        neighbourhood([[0, 1]], [[0.5]], 0.0)
    assert np.all(neighbourhood([[0]], [[0.1]], 0.5).rows == -1)
