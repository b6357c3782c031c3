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
its weight chosen on validation rows, never the test rows (choose_popularity_weight): prep's validation
shard, whose rows FM was trained without, ranked with factors whose reviewed products and popularity are
the train rows'. validation_split makes such rows out of train for a model trained on the rest. The
choice goes into the run's serving/ranking.json (Ranking.to_json, read back with Ranking.from_json).
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
    "RANKING_CUSTOMERS",
    "HeldOut",
    "Interval",
    "PopularityWeightChoice",
    "Ranking",
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
RANKING_CUSTOMERS = 10_000
"""Validation customers the weight is chosen on (a seeded sample when there are more): each costs one
(products,) row of keys per weight. The 95 % half-width of a mean over 10,000 customers is 0.02 standard
deviations of the per-customer NDCG, and the paired differences between weights are tighter still."""
RANKING_CHUNK_CUSTOMERS = 256
"""Customers ranked at once while choosing: 256 x 58,000 products of float32 keys is 60 MB a matrix."""
RANKING_FILE = layout.RANKING.removeprefix(layout.SERVING)
RANKING_SCHEMA_VERSION = 1


class RankingFormatError(ValueError):
    """ranking.json is not as `Ranking.to_json` writes it; the message names the field."""


@dataclass(frozen=True)
class Ranking:
    """How top-N ranks: FM's score + popularity_weight log(1 + reviews) (fm.topn)."""

    popularity_weight: float

    def to_json(self, **evidence: Any) -> dict[str, Any]:
        return {
            "schema_version": RANKING_SCHEMA_VERSION,
            "popularity_weight": self.popularity_weight,
            **evidence,
        }

    @classmethod
    def from_json(cls, raw: bytes | str) -> Ranking:
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
    ratings: F64

    @property
    def size(self) -> int:
        return int(self.customers.shape[0])

    def take(self, rows: I64) -> HeldOut:
        return HeldOut(self.customers[rows], self.products[rows], self.times[rows], self.ratings[rows])

    def sample(self, size: int | None, seed: int) -> HeldOut:
        """At most `size` of the rows, drawn without replacement (seeded), in customer order."""
        if size is None or self.size <= size:
            return self
        rng = np.random.default_rng(seed)
        return self.take(np.sort(rng.choice(self.size, size=size, replace=False)))


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
    ratings = records.labels.astype(np.float64)
    return HeldOut(customers[order], products[order], times[order], ratings[order])


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


def _ranks_of(
    keys: npt.NDArray[np.floating[Any]], products: I64, candidates: I64 | None = None
) -> tuple[I64, I64, I64]:
    own = keys[np.arange(keys.shape[0]), products][:, None]
    greater = np.count_nonzero(keys > own, axis=1)
    ties = np.count_nonzero(keys == own, axis=1) - 1
    if candidates is None:
        candidates = np.count_nonzero(keys > -np.inf, axis=1).astype(np.int64)
    return greater.astype(np.int64), ties.astype(np.int64), candidates


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
    return weighted_fm_ranks(factors, held, (popularity_weight,), chunk_customers=chunk_customers)[0]


def weighted_fm_ranks(
    factors: ServingFactors,
    held: HeldOut,
    weights: Sequence[float],
    *,
    chunk_customers: int = DEFAULT_CHUNK_CUSTOMERS,
) -> list[Ranks]:
    """fm_ranks for each popularity weight, FM's keys computed once per chunk of customers: the keys of
    weight w are those keys + w log(1 + reviews) in float32, as fm.topn.rank_keys adds them."""
    parts: list[list[tuple[I64, I64, I64]]] = [[] for _ in weights]
    for lo in range(0, held.size, chunk_customers):
        hi = min(lo + chunk_customers, held.size)
        scores = rank_keys(factors, held.customers[lo:hi], held.times[lo:hi], exclude_reviewed=False)
        _candidate_keys(factors, held, lo, hi, scores)
        candidates = np.count_nonzero(scores > -np.inf, axis=1).astype(np.int64)
        products = held.products[lo:hi]
        for part, weight in zip(parts, weights, strict=True):
            keys = scores + np.float32(weight) * factors.log_popularity if weight else scores
            part.append(_ranks_of(keys, products, candidates))
    return [_concat(part) for part in parts]


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


@dataclass(frozen=True)
class PopularityWeightChoice:
    """The weight chosen on validation rows, with what it was chosen on and every weight's figures."""

    weight: float
    cutoff: int
    rows: int
    """Validation rows (customers) ranked: the sample."""
    validation_rows: int
    """Rows in the validation shard."""
    seed: int
    table: dict[float, dict[str, float]]
    """weight -> mean Recall@cutoff and NDCG@cutoff."""
    most_popular: dict[str, float]
    """The same means for the most-popular ranking of the same candidates."""
    versus: dict[str, Interval]
    """NDCG@cutoff of the chosen weight minus FM alone (weight 0) and minus most-popular, paired bootstrap."""

    @property
    def metric(self) -> str:
        return f"ndcg@{self.cutoff}"

    def to_json(self) -> dict[str, Any]:
        return Ranking(self.weight).to_json(
            chosen_on="validation",
            metric=self.metric,
            rows=self.rows,
            validation_rows=self.validation_rows,
            sample_seed=self.seed,
            candidates="products the customer did not review in train, the held-out one among them",
            grid=[{"weight": w, **values} for w, values in self.table.items()],
            most_popular=self.most_popular,
            versus={name: {"mean": i.mean, "interval": [i.low, i.high]} for name, i in self.versus.items()},
        )


def choose_popularity_weight(
    factors: ServingFactors,
    validation: SparseRecords,
    *,
    weights: Sequence[float] = POPULARITY_WEIGHTS,
    cutoff: int = DEFAULT_CUTOFF,
    customers: int | None = RANKING_CUSTOMERS,
    seed: int = 0,
    chunk_customers: int = RANKING_CHUNK_CUSTOMERS,
) -> PopularityWeightChoice:
    """The blend weight with the best mean NDCG@cutoff on the validation rows (ties: the smaller weight),
    with every weight's mean Recall and NDCG there.

    `validation` is prep's validation shard (one row per customer, rows FM was not trained on); `factors`
    must hold the train rows' reviewed products and popularity (build_factors on the train shards): each
    validation product is ranked among the products its customer did not review in train, and the
    popularity term counts train reviews only (counting the held-out review itself would favour the
    popularity term on the very products it is judged on). At most `customers` rows are ranked, a seeded
    sample. NDCG rather than Recall: with one held-out product Recall@K only asks whether it is in the top
    K, NDCG also rewards its place there (the answer is best first), and it separates close weights."""
    if not weights:
        raise ValueError("no popularity weight to choose from")
    every = held_out(validation, factors.features)
    held = every.sample(customers, seed)
    if held.size == 0:
        raise ValueError("no validation rows to choose the popularity weight on")
    ranks = weighted_fm_ranks(factors, held, weights, chunk_customers=chunk_customers)
    per_customer = [expected_metrics(r, cutoff) for r in ranks]
    ndcg = f"ndcg@{cutoff}"
    table = {
        float(w): {name: float(v.mean()) for name, v in m.items()}
        for w, m in zip(weights, per_customer, strict=True)
    }
    best = max(range(len(weights)), key=lambda n: (table[float(weights[n])][ndcg], -weights[n]))
    popular = expected_metrics(popularity_ranks(factors, held, chunk_customers=chunk_customers), cutoff)
    series = {"chosen": per_customer[best][ndcg], "most_popular": popular[ndcg]}
    alone = [n for n, w in enumerate(weights) if w == 0]
    if alone:
        series["fm_alone"] = per_customer[alone[0]][ndcg]
    pairs = [("chosen", name) for name in ("fm_alone", "most_popular") if name in series]
    intervals = bootstrap_means(series, differences=pairs, seed=seed)
    return PopularityWeightChoice(
        weight=float(weights[best]),
        cutoff=cutoff,
        rows=held.size,
        validation_rows=every.size,
        seed=seed,
        table=table,
        most_popular={name: float(v.mean()) for name, v in popular.items()},
        versus={name: intervals[f"chosen - {name}"] for _, name in pairs},
    )
