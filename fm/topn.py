"""Top-N products for a customer from FM's serving factors (fm/factors.py): one customer for a shim, many
in chunks for the batch job.

The scores are FM's: for customer u, product i and time value t, what the FM endpoint answers for the
instance (user key u, item key N + i, time key with value t), computed in float64 from the stored float32
parameters for the products returned. Products are chosen with one float32 matrix product over every
product (items @ [v_u, 1, t], see fm/factors.py) and a block-wise selection of the largest keys
(select_largest); ties between equal keys go to the lower product row (products are numbered by descending
review count), so the answer depends on the factors only, and the products returned are sorted by their
float64 keys.

The ranking key is the score, or with ``popularity_weight`` w the score + w log(1 + reviews of the
product): a rating-trained FM ranks products by the rating a customer would give them, not by how likely
the customer is to choose them, and the popularity term is the usual correction (fm/ranking.py measures
both and picks w on a validation split). Scores returned stay FM's own.

The time value is the one prep and the shims compute: the index's time transform of the days from the
customer's first review to the request date (contract.features); a customer the index does not know gets
the most popular products (flagged as a fallback), scored as the endpoint scores an unknown customer
(the item side only, at day 0).
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from contract.index import ServingIndex
from fm.factors import LINEAR, TIME, ServingFactors

__all__ = [
    "DEFAULT_CHUNK_CUSTOMERS",
    "BatchTopN",
    "TopN",
    "customer_top_n",
    "epoch_day",
    "iter_top_n",
    "popular_top_n",
    "rank_keys",
    "recommend",
    "reviewed_cells",
    "scores_of",
    "select_largest",
    "time_value",
    "time_values",
    "top_n_batch",
]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

DEFAULT_CHUNK_CUSTOMERS = 1024
"""Customers scored at once in a batch: the (customers, products) float32 key matrix is the working memory
(1,024 x 58,000 products: 240 MB)."""
SELECT_BLOCKS = 256
"""Blocks a row of keys is cut into to find its k largest (see select_largest)."""
_EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True)
class TopN:
    """One customer's products, best first."""

    rows: I64
    """Product rows (index products.tsv line, feature key N + row)."""
    scores: F64
    """FM's score of each."""
    fallback: bool
    """The customer is unknown: the most popular products, not personal ones."""


@dataclass(frozen=True)
class BatchTopN:
    """Many customers' products, best first; a customer with fewer than k products left after exclusion has
    its row padded with -1 and NaN."""

    customers: I64
    rows: I64
    """(customers, k)"""
    scores: F64
    """(customers, k)"""
    counts: I64
    """Products found per customer."""


# ---------------------------------------------------------------------------------------------- time


def epoch_day(date: dt.date) -> int:
    """Days since 1970-01-01, the index's day count."""
    return (date - _EPOCH).days


def time_value(index: ServingIndex, customer: int | None, day: int) -> float:
    """The time feature of a request on `day` (days since 1970-01-01): the transform of the days since the
    customer's first review (a day before it counts as day 0); an unknown customer (None) is at day 0."""
    if customer is None:
        return index.time_transform(0)
    return index.time_transform(index.days_since_first_review(customer, day))


def time_values(index: ServingIndex, customers: npt.ArrayLike, day: int) -> F64:
    """time_value for many customers, bit for bit (one transform call per distinct clipped day count)."""
    keys: I64 = np.asarray(customers, np.int64)
    transform = index.time_transform
    scale = transform.scale_days
    if keys.shape[0] == 0:
        return np.zeros(0, np.float64)
    first = np.frombuffer(index.first_review_day, dtype=np.int32)
    days = np.clip(day - first[keys].astype(np.int64), 0, scale)
    table = np.array([transform(d) for d in range(scale + 1)], np.float64)
    values: F64 = table[days]
    return values


# ---------------------------------------------------------------------------------------------- scores


def scores_of(
    factors: ServingFactors, customers: npt.ArrayLike, rows: npt.ArrayLike, times: npt.ArrayLike
) -> F64:
    """FM's scores, in float64, of customer customers[c] with products rows[c, j] at time times[c]
    (customers (c,), rows (c, j), times (c,)); a customer of -1 is unknown (the item side only)."""
    k = factors.num_factors
    keys: I64 = np.asarray(customers, np.int64)
    t = np.asarray(times, np.float64)[:, None]
    item = factors.items[np.asarray(rows, np.int64)].astype(np.float64)  # (c, j, K + 2)
    known = keys >= 0
    user = np.zeros((keys.shape[0], k + 2), np.float64)
    user[known] = factors.customers[keys[known]]
    constant = factors.w0 + user[:, k + LINEAR, None] + t * (factors.time_weight + user[:, k + TIME, None])
    pairwise = np.einsum("cjf,cf->cj", item[..., :k], user[:, :k])
    scores: F64 = constant + pairwise + item[..., k + LINEAR] + t * item[..., k + TIME]
    return scores


def rank_keys(
    factors: ServingFactors,
    customers: npt.ArrayLike,
    times: npt.ArrayLike,
    *,
    exclude_reviewed: bool,
    popularity_weight: float = 0.0,
) -> F32:
    """(customers, products) float32 ranking keys: FM's score without the customer's constant terms
    (w0 + w_u + t (w_t + <v_u, v_t>), which do not change the order), plus popularity_weight log(1 +
    reviews); -inf for the products a customer reviewed when exclude_reviewed."""
    k = factors.num_factors
    chosen: I64 = np.asarray(customers, np.int64)
    query = np.empty((chosen.shape[0], k + 2), np.float32)
    query[:, :k] = factors.customers[chosen, :k]
    query[:, k + LINEAR] = 1.0
    query[:, k + TIME] = np.asarray(times, np.float64)
    keys: F32 = query @ factors.items.T
    if popularity_weight:
        keys += np.float32(popularity_weight) * factors.log_popularity
    if exclude_reviewed:
        keys[reviewed_cells(factors, chosen)] = -np.inf
    return keys


def reviewed_cells(factors: ServingFactors, customers: npt.ArrayLike) -> tuple[I64, I64]:
    """(position in customers, product row) of every product each customer reviewed."""
    keys: I64 = np.asarray(customers, np.int64)
    starts = factors.reviewed_indptr[keys]
    counts = factors.reviewed_indptr[keys + 1] - starts
    total = int(counts.sum())
    offsets = np.cumsum(counts) - counts
    positions = np.arange(total, dtype=np.int64) + np.repeat(starts - offsets, counts)
    owner = np.repeat(np.arange(keys.shape[0], dtype=np.int64), counts)
    return owner, factors.reviewed_indices[positions].astype(np.int64)


def select_largest(keys: F32, k: int, blocks: int = SELECT_BLOCKS) -> I64:
    """Per row of keys, the columns of the k largest keys (ties: the lower column), best first by key; -1
    where a row has fewer than k keys above -inf. Changes nothing in keys.

    The columns are cut into `blocks` blocks: the k-th largest of the block maxima (and of the columns left
    over after the last whole block) is a key that at least k keys reach, so only the blocks whose maximum
    reaches it hold candidates, a few per row; they alone are sorted. Rows too narrow for blocks to pay are
    sorted whole."""
    c, m = keys.shape
    kk = min(k, m)
    width = m // blocks
    if width < 2 or 4 * kk > blocks:
        chosen: I64 = np.argsort(-keys, axis=1, kind="stable")[:, :kk].astype(np.int64)
    else:
        body = keys[:, : blocks * width].reshape(c, blocks, width)
        block_max = body.max(axis=2)
        rest = keys[:, blocks * width :]
        pool = np.concatenate([block_max, rest], axis=1)
        threshold = np.partition(pool, pool.shape[1] - kk, axis=1)[:, pool.shape[1] - kk, None]
        row, block = np.nonzero(block_max >= threshold)
        values = body[row, block]
        reach = values >= threshold[row]
        rest_row, rest_column = np.nonzero(rest >= threshold)
        rows = np.concatenate([np.broadcast_to(row[:, None], values.shape)[reach], rest_row])
        columns = np.concatenate(
            [(block[:, None] * width + np.arange(width))[reach], blocks * width + rest_column]
        )
        found = np.concatenate([values[reach], rest[rest_row, rest_column]])
        order = np.lexsort((columns, -found, rows))
        rows, columns = rows[order], columns[order]
        starts = np.searchsorted(rows, np.arange(c))
        place = np.arange(rows.shape[0]) - starts[rows]
        first = place < kk  # every row has at least kk candidates
        chosen = np.empty((c, kk), np.int64)
        chosen[rows[first], place[first]] = columns[first]
    chosen[np.take_along_axis(keys, chosen, axis=1) == -np.inf] = -1
    return chosen


def _order(
    factors: ServingFactors, customers: I64, times: F64, chosen: I64, popularity_weight: float
) -> tuple[I64, F64, I64]:
    """Score the chosen products in float64 and sort each customer's best first (by the float64 key, ties
    by row); padding (-1) last. Returns rows, scores and counts."""
    present = chosen >= 0
    rows = np.where(present, chosen, 0)
    scores = scores_of(factors, customers, rows, times)
    key = (
        scores + popularity_weight * np.log1p(factors.popularity[rows])
        if popularity_weight
        else scores.copy()
    )
    key[~present] = -np.inf
    order = np.lexsort((rows, ~present, -key), axis=1)
    rows = np.take_along_axis(rows, order, axis=1)
    scores = np.take_along_axis(scores, order, axis=1)
    present = np.take_along_axis(present, order, axis=1)
    rows[~present] = -1
    scores[~present] = np.nan
    return rows, scores, present.sum(axis=1).astype(np.int64)


# ------------------------------------------------------------------------------------------ one customer


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")


def customer_top_n(
    factors: ServingFactors,
    customer: int,
    *,
    k: int,
    time_value: float,
    exclude_reviewed: bool = True,
    popularity_weight: float = 0.0,
) -> TopN:
    """The k best products for customer key `customer` at `time_value`, best first (fewer when the customer
    reviewed all but fewer than k products and exclude_reviewed)."""
    _check_k(k)
    if not 0 <= customer < factors.num_customers:
        raise ValueError(f"customer key {customer} is outside 0..{factors.num_customers - 1}")
    nf = factors.num_factors
    query = np.empty(nf + 2, np.float32)
    query[:nf] = factors.customers[customer, :nf]
    query[nf + LINEAR] = 1.0
    query[nf + TIME] = time_value
    keys: F32 = factors.items @ query
    if popularity_weight:
        keys += np.float32(popularity_weight) * factors.log_popularity
    if exclude_reviewed:
        keys[factors.reviewed(customer)] = -np.inf
    customers = np.array([customer], np.int64)
    rows, scores, counts = _order(
        factors, customers, np.array([time_value]), select_largest(keys[None, :], k), popularity_weight
    )
    n = int(counts[0])
    return TopN(rows=rows[0, :n], scores=scores[0, :n], fallback=False)


def popular_top_n(factors: ServingFactors, *, k: int, time_value: float) -> TopN:
    """The fallback for an unknown customer: the k most reviewed products (ties: the lower row), each with
    the score the endpoint gives an unknown customer (the item side: w0 + w_i + t w_t + t <v_i, v_t>)."""
    _check_k(k)
    rows = factors.popular_rows[:k].astype(np.int64)
    scores = scores_of(factors, np.array([-1]), rows[None, :], [time_value])[0]
    return TopN(rows=rows, scores=scores, fallback=True)


def recommend(
    factors: ServingFactors,
    index: ServingIndex,
    customer_id: str,
    date: dt.date,
    *,
    k: int,
    exclude_reviewed: bool = True,
    popularity_weight: float = 0.0,
) -> TopN:
    """What a top-N request answers: the k best products for a customer id on a date (the shim's call);
    an id the index does not know gets the most popular products, flagged as a fallback."""
    customer = index.customer_keys.get(customer_id)
    value = time_value(index, customer, epoch_day(date))
    if customer is None:
        return popular_top_n(factors, k=k, time_value=value)
    return customer_top_n(
        factors,
        customer,
        k=k,
        time_value=value,
        exclude_reviewed=exclude_reviewed,
        popularity_weight=popularity_weight,
    )


# ---------------------------------------------------------------------------------------- many customers


def top_n_batch(
    factors: ServingFactors,
    customers: npt.ArrayLike,
    times: npt.ArrayLike,
    *,
    k: int,
    exclude_reviewed: bool = True,
    popularity_weight: float = 0.0,
) -> BatchTopN:
    """The k best products of each customer key at its time value, in one matrix product (memory:
    customers x products float32; iter_top_n splits a large set into chunks)."""
    _check_k(k)
    keys64: I64 = np.asarray(customers, np.int64)
    t = np.asarray(times, np.float64)
    if keys64.ndim != 1 or t.shape != keys64.shape:
        raise ValueError(f"customers {keys64.shape} and times {t.shape} must be 1-D and of equal length")
    if keys64.shape[0] and (int(keys64.min()) < 0 or int(keys64.max()) >= factors.num_customers):
        raise ValueError(f"a customer key is outside 0..{factors.num_customers - 1}")
    keys = rank_keys(
        factors, keys64, t, exclude_reviewed=exclude_reviewed, popularity_weight=popularity_weight
    )
    rows, scores, counts = _order(factors, keys64, t, select_largest(keys, k), popularity_weight)
    return BatchTopN(customers=keys64, rows=rows, scores=scores, counts=counts)


def iter_top_n(
    factors: ServingFactors,
    customers: npt.ArrayLike,
    times: npt.ArrayLike,
    *,
    k: int,
    exclude_reviewed: bool = True,
    popularity_weight: float = 0.0,
    chunk_customers: int = DEFAULT_CHUNK_CUSTOMERS,
    workers: int = 1,
) -> Iterator[BatchTopN]:
    """top_n_batch over chunk_customers customers at a time, in order: the memory follows the chunk (times
    the chunks in flight). With workers > 1, that many threads score chunks side by side (numpy releases
    the GIL in the matrix product and the selection; give each a single BLAS thread, e.g.
    OPENBLAS_NUM_THREADS=1, so that they do not compete for the cores) and at most 2 x workers chunks are
    in flight."""
    for name, value in (("chunk_customers", chunk_customers), ("workers", workers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    keys64: I64 = np.asarray(customers, np.int64)
    t = np.asarray(times, np.float64)
    if keys64.ndim != 1 or t.shape != keys64.shape:
        raise ValueError(f"customers {keys64.shape} and times {t.shape} must be 1-D and of equal length")

    def chunk(lo: int) -> BatchTopN:
        return top_n_batch(
            factors,
            keys64[lo : lo + chunk_customers],
            t[lo : lo + chunk_customers],
            k=k,
            exclude_reviewed=exclude_reviewed,
            popularity_weight=popularity_weight,
        )

    starts = range(0, keys64.shape[0], chunk_customers)
    if workers == 1:
        for lo in starts:
            yield chunk(lo)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="top-n") as pool:
        pending: deque[Future[BatchTopN]] = deque()
        for lo in starts:
            pending.append(pool.submit(chunk, lo))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
