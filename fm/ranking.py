"""Ranking quality of top-N: Recall@K and NDCG@K of held-out reviews, against most-popular and random.

Each customer's held-out review (prep's test row: the latest review; or a validation row, below) is ranked
among the products the customer had not reviewed in the rows the factors were built from (the held-out
product among them). With one held-out product per customer, Recall@K is 1 when it is in the top K and
NDCG@K is 1 / log2(2 + its position) there (position 0 first), 0 otherwise. Products with equal keys are
taken in random order and the metrics are their expected values (exact, no sampling): popularity has
many ties, and the random ranking is the case where every product ties; FM's float scores have none in
practice. Means come with paired bootstrap intervals: the same resampled customers for every ranking.

A rating-trained FM ranks products by the rating a customer would give, not by the chance the customer
chooses them; the standard correction blends the score with log-popularity (fm.topn's popularity_weight),
its weight chosen on a validation split: each customer's latest train row held out of train
(validation_split), never the test rows. The chosen weight is the run's serving/ranking.json
(contract.layout.RANKING), written by `PopularityWeight.to_json` and read by `PopularityWeight.from_json`,
the shims' /recommendations ranking key.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from contract import layout
from contract.features import NONZEROS_PER_ROW, FeatureLayout
from fm.factors import ServingFactors
from fm.recordio import SparseRecords
from fm.topn import DEFAULT_CHUNK_CUSTOMERS, rank_keys, reviewed_cells

__all__ = [
    "DEFAULT_CUTOFF",
    "RANKING_FILE",
    "Interval",
    "PopularityWeight",
    "RankingFormatError",
    "Ranks",
    "bootstrap_means",
    "choose_popularity_weight",
    "expected_metrics",
    "fm_ranks",
    "held_out",
    "popularity_ranks",
    "random_ranks",
    "validation_split",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

DEFAULT_CUTOFF = 10
BOOTSTRAP_SAMPLES = 1000
POPULARITY_WEIGHTS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
"""The blend weights validation tries: log-popularity spans about 0..7 and FM's scores a few stars."""
RANKING_FILE = layout.RANKING.removeprefix(layout.SERVING)
RANKING_SCHEMA_VERSION = 1


class RankingFormatError(ValueError):
    """ranking.json is not as `PopularityWeight.to_json` writes it; the message names the field."""


@dataclass(frozen=True)
class PopularityWeight:
    """The run's top-N ranking key: FM's score + popularity_weight log(1 + reviews) (fm.topn)."""

    popularity_weight: float

    def to_json(self, **evidence: Any) -> dict[str, Any]:
        """ranking.json's document; `evidence` (how the weight was chosen) is kept beside it, unread."""
        return {
            "schema_version": RANKING_SCHEMA_VERSION,
            "popularity_weight": self.popularity_weight,
            **evidence,
        }

    @classmethod
    def from_json(cls, raw: bytes | str) -> PopularityWeight:
        try:
            document = json.loads(raw)
        except ValueError as exc:
            raise RankingFormatError(f"{RANKING_FILE}: not JSON ({exc})") from None
        if not isinstance(document, dict) or document.get("schema_version") != RANKING_SCHEMA_VERSION:
            raise RankingFormatError(f"{RANKING_FILE}: schema_version is not {RANKING_SCHEMA_VERSION}")
        value = document.get("popularity_weight")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise RankingFormatError(f"{RANKING_FILE}: popularity_weight is {value!r}, not a number")
        if value < 0:
            raise RankingFormatError(f"{RANKING_FILE}: popularity_weight is {value!r}, below 0")
        return cls(popularity_weight=float(value))


@dataclass(frozen=True)
class HeldOut:
    """One held-out review per customer."""

    customers: I64
    products: I64
    times: F64


@dataclass(frozen=True)
class Ranks:
    """Where each held-out product lands: `greater` candidates rank above it, `ties` others share its key,
    among `candidates` products (itself included)."""

    greater: I64
    ties: I64
    candidates: I64


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float


def _rows(records: SparseRecords, features: FeatureLayout) -> tuple[I64, I64, F64]:
    """(customer, product row, time value) of each prep row."""
    counts = np.diff(records.indptr)
    if bool((counts != NONZEROS_PER_ROW).any()):
        raise ValueError("a row does not hold exactly (user, item, time): not a prep row")
    keys = records.indices.reshape(-1, NONZEROS_PER_ROW)
    values = records.values.reshape(-1, NONZEROS_PER_ROW)
    return keys[:, 0].copy(), keys[:, 1] - features.num_customers, values[:, 2].astype(np.float64)


def held_out(records: SparseRecords, features: FeatureLayout) -> HeldOut:
    """The held-out reviews of a test (or validation) shard, one per customer, in customer order."""
    customers, products, times = _rows(records, features)
    if np.unique(customers).shape[0] != customers.shape[0]:
        raise ValueError("a customer has more than one held-out row: expected one per customer")
    order = np.argsort(customers, kind="stable")
    return HeldOut(customers[order], products[order], times[order])


def validation_split(
    train: SparseRecords, features: FeatureLayout, product_ids: Sequence[str]
) -> tuple[SparseRecords, SparseRecords]:
    """(train without validation, validation): each customer with train rows on two or more products gives
    its latest train row to validation, and every other train row of that (customer, product) pair is
    dropped, as prep drops the test pair's. Latest as prep picks the test row: the greatest time value
    (it grows with the days since the customer's first review), then the greatest product id (the index's
    product_ids), then the highest rating; so this is the customer's review before the test review. (The
    product row would not do as a tie-break: rows go by popularity, and reviews of one day are common.)"""
    customers, products, times = _rows(train, features)
    if len(product_ids) != features.num_products:
        raise ValueError(f"{len(product_ids)} product ids for {features.num_products} products")
    id_rank = np.empty(features.num_products, np.int64)
    id_rank[sorted(range(features.num_products), key=product_ids.__getitem__)] = np.arange(
        features.num_products
    )
    m = features.num_products
    order = np.lexsort((train.labels, id_rank[products], times, customers))
    last = np.r_[customers[order][1:] != customers[order][:-1], True]
    chosen = order[last]  # per customer, the latest row
    pair = customers * m + products
    pairs = np.sort(pair)  # distinct pairs: np.unique's hashing is slow on millions of them
    pairs = pairs[np.r_[True, pairs[1:] != pairs[:-1]]] if pairs.shape[0] else pairs
    distinct = np.bincount(pairs // m, minlength=features.num_customers)
    chosen = chosen[distinct[customers[chosen]] >= 2]
    keep = ~np.isin(pair, pair[chosen])
    return _take(train, np.flatnonzero(keep)), _take(train, np.sort(chosen))


def _take(records: SparseRecords, rows: I64) -> SparseRecords:
    starts = records.indptr[rows]
    counts = records.indptr[rows + 1] - starts
    indptr = np.zeros(rows.shape[0] + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    positions = np.arange(int(indptr[-1]), dtype=np.int64) + np.repeat(starts - indptr[:-1], counts)
    indices, values = records.indices[positions], records.values[positions]
    return SparseRecords(indptr, indices, values, records.labels[rows], records.feature_dim)


# ---------------------------------------------------------------------------------------------- ranks


def _ranks_of(keys: npt.NDArray[np.floating[Any]], products: I64) -> tuple[I64, I64, I64]:
    own = keys[np.arange(keys.shape[0]), products][:, None]
    greater = np.count_nonzero(keys > own, axis=1)
    ties = np.count_nonzero(keys == own, axis=1) - 1
    candidates = np.count_nonzero(keys > -np.inf, axis=1)
    return greater.astype(np.int64), ties.astype(np.int64), candidates.astype(np.int64)


def _candidate_keys(
    factors: ServingFactors, held: HeldOut, lo: int, hi: int, keys: npt.NDArray[np.floating[Any]]
) -> None:
    """Exclude (-inf) what each customer reviewed, except the held-out product itself."""
    rows = np.arange(hi - lo)
    own = keys[rows, held.products[lo:hi]].copy()
    keys[reviewed_cells(factors, held.customers[lo:hi])] = -np.inf
    keys[rows, held.products[lo:hi]] = own


def _concat(parts: Iterable[tuple[I64, I64, I64]]) -> Ranks:
    greater, ties, candidates = zip(*parts, strict=True)
    return Ranks(np.concatenate(greater), np.concatenate(ties), np.concatenate(candidates))


def fm_ranks(
    factors: ServingFactors,
    held: HeldOut,
    *,
    popularity_weight: float = 0.0,
    chunk_customers: int = DEFAULT_CHUNK_CUSTOMERS,
) -> Ranks:
    """Ranks of the held-out products under top-N's keys (fm.topn.rank_keys), at each review's own time."""
    parts = []
    for lo in range(0, held.customers.shape[0], chunk_customers):
        hi = min(lo + chunk_customers, held.customers.shape[0])
        keys = rank_keys(
            factors,
            held.customers[lo:hi],
            held.times[lo:hi],
            exclude_reviewed=False,
            popularity_weight=popularity_weight,
        )
        _candidate_keys(factors, held, lo, hi, keys)
        parts.append(_ranks_of(keys, held.products[lo:hi]))
    return _concat(parts)


def popularity_ranks(
    factors: ServingFactors, held: HeldOut, *, chunk_customers: int = DEFAULT_CHUNK_CUSTOMERS
) -> Ranks:
    """Ranks of the held-out products by review count (the unknown-customer fallback's order)."""
    parts = []
    popularity = factors.popularity.astype(np.float64)
    for lo in range(0, held.customers.shape[0], chunk_customers):
        hi = min(lo + chunk_customers, held.customers.shape[0])
        keys = np.broadcast_to(popularity, (hi - lo, popularity.shape[0])).copy()
        _candidate_keys(factors, held, lo, hi, keys)
        parts.append(_ranks_of(keys, held.products[lo:hi]))
    return _concat(parts)


def random_ranks(ranks: Ranks) -> Ranks:
    """The random ranking of the same candidates: every candidate ties."""
    return Ranks(np.zeros_like(ranks.greater), ranks.candidates - 1, ranks.candidates)


def expected_metrics(ranks: Ranks, cutoff: int = DEFAULT_CUTOFF) -> dict[str, F64]:
    """Per customer, Recall@cutoff and NDCG@cutoff expected when tied products come in random order: the
    held-out product's position is greater + U, U uniform on 0..ties."""
    g = ranks.greater.astype(np.float64)
    spread = ranks.ties.astype(np.float64) + 1.0
    recall = np.clip((cutoff - g) / spread, 0.0, 1.0)
    gains = np.zeros(cutoff + 1)
    np.cumsum(1.0 / np.log2(np.arange(cutoff) + 2.0), out=gains[1:])
    first = np.minimum(ranks.greater, cutoff)
    last = np.minimum(ranks.greater + ranks.ties, cutoff - 1)
    ndcg = np.where(first < cutoff, (gains[last + 1] - gains[first]) / spread, 0.0)
    return {f"recall@{cutoff}": recall, f"ndcg@{cutoff}": ndcg}


def bootstrap_means(
    values: Mapping[str, F64],
    *,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
    differences: Sequence[tuple[str, str]] = (),
) -> dict[str, Interval]:
    """Mean and 95 % percentile bootstrap interval of each per-customer series, resampling customers with
    replacement, the same draws for every series (paired); a pair (a, b) in `differences` adds "a - b"."""
    series = dict(values)
    for a, b in differences:
        series[f"{a} - {b}"] = values[a] - values[b]
    lengths = {v.shape[0] for v in series.values()}
    if len(lengths) != 1 or 0 in lengths:
        raise ValueError(f"the series must share one non-zero length, got {sorted(lengths)}")
    (n,) = lengths
    rng = np.random.default_rng(seed)
    out: dict[str, Interval] = {}
    sums = {name: np.zeros(samples) for name in series}
    # Draw in blocks: a (samples, n) index matrix would be large for many customers.
    block = max(1, 2_000_000 // n)
    for start in range(0, samples, block):
        draws = rng.integers(0, n, size=(min(block, samples - start), n))
        for name, v in series.items():
            sums[name][start : start + draws.shape[0]] = v[draws].mean(axis=1)
    for name, v in series.items():
        low, high = np.percentile(sums[name], [2.5, 97.5])
        out[name] = Interval(float(v.mean()), float(low), float(high))
    return out


def choose_popularity_weight(
    factors: ServingFactors,
    validation: HeldOut,
    *,
    weights: Sequence[float] = POPULARITY_WEIGHTS,
    cutoff: int = DEFAULT_CUTOFF,
) -> tuple[float, dict[float, dict[str, float]]]:
    """The blend weight with the best mean NDCG@cutoff on the validation rows (ties: the smaller weight),
    and every weight's mean Recall and NDCG there."""
    table: dict[float, dict[str, float]] = {}
    for weight in weights:
        metrics = expected_metrics(fm_ranks(factors, validation, popularity_weight=weight), cutoff)
        table[weight] = {name: float(v.mean()) for name, v in metrics.items()}
    best = max(weights, key=lambda w: (table[w][f"ndcg@{cutoff}"], -w))
    return best, table
