"""What the "Export FM factors" step chooses on the validation rows (the cold start's shrinkage, the top-N
popularity weight) and the ranking table it measures on the test rows; lambdas/pipeline/export_factors.py
has the step and its inputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from contract.index import ServingIndex, title_token
from fm.coldstart import NEVER, Shrinkage, ShrinkageChoice, choose_shrinkage
from fm.factors import (
    ReviewedProducts,
    ServingFactors,
)
from fm.ranking import (
    DEFAULT_CUTOFF,
    Interval,
    PopularityWeightChoice,
    Ranking,
    bootstrap_means,
    choose_popularity_weight,
    expected_metrics,
    held_out,
    popularity_ranks,
    random_ranks,
    weighted_fm_ranks,
)
from fm.recordio import SparseRecords
from fm.topn import select_largest
from lambdas.pipeline.paired import paired_difference
from lambdas.serving.vectors import TitleTable

__all__ = [
    "TEST_DIFFERENCES",
    "TEST_RANKINGS",
    "choose_cold_start",
    "choose_ranking",
    "ranking_on_test",
    "title_neighbours",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

NEIGHBOUR_QUERY_CHUNK = 256
"""Titles searched at once: a (256, titles) float32 similarity matrix, 58 MB for 58,000 titles."""


# ---------------------------------------------------------------------------------------------- cold start


def title_neighbours(
    index: ServingIndex, titles: TitleTable, products: I64, k: int, *, vectors: TitleTable | None = None
) -> tuple[I64, F64, npt.NDArray[np.bool_]]:
    """For each product row, its title's k nearest known titles as the shim finds them: the k most similar
    by the cosine of the title table's vectors (ties by table row), then those of positive similarity that
    are titles of the index's products; its own title left out. The query is the title's vector in
    `vectors` (the held-out titles' table), or in `titles` itself. Returns (rows (P, k), -1 where none;
    similarities (P, k), 0 where none; whether the product's title has a vector to query with).

    TitleTable.nearest's answer, for many titles at once: NEIGHBOUR_QUERY_CHUNK titles per matrix product
    and fm.topn.select_largest's block selection instead of a sort per title."""
    source = titles if vectors is None else vectors
    count = products.shape[0]
    rows = np.full((count, k), -1, np.int64)
    sims = np.zeros((count, k), np.float64)
    tokens = [title_token(index.product_titles[int(p)]) for p in products]
    query_rows = np.array([source.rows.get(token, -1) for token in tokens], np.int64)
    own_rows = np.array([titles.rows.get(token, -1) for token in tokens], np.int64)
    # Table row -> the index's product row of that title (-1: not an index title, never a neighbour).
    product_of = np.array([index.title_rows.get(token, -1) for token in titles.tokens], np.int64)
    wanted = np.flatnonzero(query_rows >= 0)
    for lo in range(0, wanted.shape[0], NEIGHBOUR_QUERY_CHUNK):
        chunk = wanted[lo : lo + NEIGHBOUR_QUERY_CHUNK]
        scores = source.matrix[query_rows[chunk]] @ titles.matrix.T  # (chunk, titles)
        own = own_rows[chunk]
        scores[np.flatnonzero(own >= 0), own[own >= 0]] = -np.inf
        best = select_largest(scores, k)  # (chunk, k) table rows, -1 past the last one above -inf
        safe = np.where(best >= 0, best, 0)
        similarity = np.take_along_axis(scores, safe, axis=1).astype(np.float64)
        kept = (best >= 0) & (similarity > 0) & (product_of[safe] >= 0)
        rows[chunk] = np.where(kept, product_of[safe], -1)
        sims[chunk] = np.where(kept, similarity, 0.0)
    return rows, sims, query_rows >= 0


COLD_START_METHOD = (
    "the validation rows of the products whose titles the corpus left out (contract.index.held_out_title), "
    "each product treated as new: its title's vector built from its n-grams, as a new title's is "
    "(serving/held_out_titles.*), its nearest known titles' items in FM's space, the customer's user-bias "
    "base fitted on the train rows"
)


def choose_cold_start(
    factors: ServingFactors,
    index: ServingIndex,
    titles: TitleTable,
    validation: SparseRecords,
    *,
    held_out_titles: TitleTable | None,
    neighbours: int,
) -> dict[str, Any]:
    """The cold start's shrinkage (fm.coldstart.choose_shrinkage) on the validation rows whose product's title
    is in the held-out table; the user-bias answer when there is none."""
    held = held_out(validation, factors.features)
    products, position = np.unique(held.products, return_inverse=True)
    evidence: dict[str, Any] = {
        "neighbours": neighbours,
        "validation_rows": held.size,
        "method": COLD_START_METHOD,
        "base": "the user-bias prediction mu + b_u, fitted on the train rows (serving/fm/customer_base.npy)",
    }
    usable = np.zeros(held.size, dtype=bool)
    if held_out_titles is not None:
        rows, sims, has_vector = title_neighbours(
            index, titles, products, neighbours, vectors=held_out_titles
        )
        usable = has_vector[position]
    evidence["rows_not_held_out"] = int(np.count_nonzero(~usable))
    if not usable.any():
        fallback = Shrinkage(alpha=NEVER, min_similarity=0.0)
        reason = (
            "no validation row's product has a held-out title with a vector: the user-bias prediction alone"
            if held_out_titles is not None
            else "the run has no held-out titles' table: the user-bias prediction alone"
        )
        return fallback.to_json(chosen_on="default", reason=reason, rows=0, **evidence)
    take = np.flatnonzero(usable)
    choice: ShrinkageChoice = choose_shrinkage(
        factors,
        customers=held.customers[take],
        times=held.times[take],
        neighbour_rows=rows[position[take]],
        similarities=sims[position[take]],
        actual=held.ratings[take],
        rating_range=index.rating_range,
        compare=paired_difference,
    )
    return {
        **choice.to_json(),
        **evidence,
        "rows_without_neighbour": int(np.count_nonzero(~(sims[position[take]] > 0).any(axis=1))),
        "never_loses": choice.rmse <= choice.base_rmse,
    }


# ---------------------------------------------------------------------------------------------- ranking


def choose_ranking(
    factors: ServingFactors,
    train: ReviewedProducts,
    validation: SparseRecords,
    customers: int | None,
    seed: int,
) -> tuple[dict[str, Any], PopularityWeightChoice | None]:
    if validation.labels.shape[0] == 0:
        reason = "the validation shard has no rows: FM's score alone"
        return Ranking(0.0).to_json(chosen_on="default", reason=reason, rows=0), None
    # The same parameters; the reviewed products and popularity of the train rows alone.
    on_train = factors.with_reviewed(train)
    choice = choose_popularity_weight(on_train, validation, customers=customers, seed=seed)
    return {**choice.to_json(), "popularity": "train rows"}, choice


TEST_RANKINGS = ("fm", "fm_popularity", "most_popular", "random")
"""The rankings of the test table: FM's score alone, FM + the chosen popularity weight, review count, none."""
TEST_DIFFERENCES = (
    ("fm_popularity", "most_popular"),
    ("fm", "most_popular"),
    ("fm_popularity", "fm"),
    ("most_popular", "random"),
)


def ranking_on_test(
    factors: ServingFactors,
    seen: ReviewedProducts,
    test: SparseRecords,
    popularity_weight: float,
    *,
    customers: int | None,
    seed: int,
    cutoff: int = DEFAULT_CUTOFF,
) -> dict[str, Any]:
    """The ranking table on the test rows (serving/ranking.json's "test"): `seen` is what the customers
    reviewed in train + validation, whose products are excluded and whose review counts are the popularity.
    At most `customers` test rows are ranked, a seeded sample."""
    every = held_out(test, factors.features)
    held = every.sample(customers, seed)
    base = {
        "rows": held.size,
        "test_rows": every.size,
        "cutoff": cutoff,
        "popularity_weight": popularity_weight,
        "sample_seed": seed,
        "candidates": (
            "products the customer did not review in train or validation, the test product among them"
        ),
        "popularity": "train + validation rows",
    }
    if held.size == 0:
        return {**base, "rankings": {}, "differences": {}}
    known = factors.with_reviewed(seen)
    alone, blended = weighted_fm_ranks(known, held, (0.0, popularity_weight))
    popular = popularity_ranks(known, held)
    ranks = {"fm": alone, "fm_popularity": blended, "most_popular": popular, "random": random_ranks(popular)}
    per_customer = {name: expected_metrics(r, cutoff) for name, r in ranks.items()}
    rankings: dict[str, dict[str, Any]] = {name: {} for name in TEST_RANKINGS}
    differences: dict[str, dict[str, Any]] = {f"{a} - {b}": {} for a, b in TEST_DIFFERENCES}
    for metric in (f"recall@{cutoff}", f"ndcg@{cutoff}"):
        intervals = bootstrap_means(
            {name: per_customer[name][metric] for name in TEST_RANKINGS},
            seed=seed,
            differences=TEST_DIFFERENCES,
        )
        for name in TEST_RANKINGS:
            rankings[name][metric] = _interval(intervals[name])
        for a, b in TEST_DIFFERENCES:
            differences[f"{a} - {b}"][metric] = _interval(intervals[f"{a} - {b}"])
    return {**base, "rankings": rankings, "differences": differences}


def _interval(interval: Interval) -> dict[str, Any]:
    return {"mean": interval.mean, "interval": [interval.low, interval.high]}
