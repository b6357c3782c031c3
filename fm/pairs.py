"""Prep rows as (customer, product, day, rating), and another run's FM scoring them through its own index.

The quality gate compares a candidate with the deployed model on the same test rows. The candidate's test
shard codes each row with the candidate's index (user key u, item key N + i, the time value of the days since
the customer's first review); the deployed model knows customers and products under its own keys and its own
time transform. `read_rows` turns a shard back into ids, days and ratings through the index that coded it
(the time value's inverse is exact for every day before the transform's scale; a value of 1 stands for the
scale day or later, and is read as the scale day). `score_rows` scores such rows with another run's serving
factors (fm/factors.py, the "Export FM factors" step's output) mapped through that run's index: the rows
whose customer and product it knows get FM's score as its endpoint would answer (float64 from the stored
float32 parameters, fm/topn.scores_of); the others are left out, marked unknown.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from contract.index import ServingIndex
from fm.factors import ServingFactors
from fm.recordio import iter_sparse_record_chunks
from fm.topn import scores_of

__all__ = ["PairsFormatError", "Rows", "ScoredRows", "read_rows", "score_rows"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


class PairsFormatError(ValueError):
    """A shard row that is not (user key, item key, time key) under the index that should have coded it."""


@dataclass(frozen=True)
class Rows:
    """Rows in ids: row r is customer_ids[r] rating product_ids[r] on day days[r] (days since 1970-01-01)."""

    customer_ids: list[str]
    product_ids: list[str]
    days: I64
    ratings: F64

    def __len__(self) -> int:
        return len(self.customer_ids)


@dataclass(frozen=True)
class ScoredRows:
    """Another model's scores of Rows: known[r] when its index knows row r's customer and product."""

    known: Bools
    scores: F64
    """FM's score where known, NaN elsewhere."""

    @property
    def count(self) -> int:
        return int(self.known.sum())


def read_rows(shards: Iterable[BinaryIO], index: ServingIndex, where: str = "shard") -> Rows:
    """Every row of the shards (RecordIO-protobuf from prep) in ids, through the index that coded them.

    PairsFormatError names the shard row that does not have exactly one user key, one item key and the time
    key of the index's layout."""
    layout = index.features
    customers: list[I64] = []
    products: list[I64] = []
    values: list[F64] = []
    ratings: list[F64] = []
    done = 0
    for shard in shards:
        for chunk in iter_sparse_record_chunks(shard):
            rows = chunk.indptr.shape[0] - 1
            counts = np.diff(chunk.indptr)
            bad = np.flatnonzero(counts != 3)
            if bad.shape[0]:
                raise PairsFormatError(f"{where}: row {done + int(bad[0])} has {counts[bad[0]]} keys, not 3")
            keys = chunk.indices.reshape(rows, 3)
            user, item, time = keys[:, 0], keys[:, 1], keys[:, 2]
            wrong = (
                (user < 0)
                | (user >= layout.num_customers)
                | (item < layout.num_customers)
                | (item >= layout.time_key)
                | (time != layout.time_key)
            )
            if wrong.any():
                at = int(np.flatnonzero(wrong)[0])
                raise PairsFormatError(
                    f"{where}: row {done + at} has keys {keys[at].tolist()}, not (user key < "
                    f"{layout.num_customers}, item key < {layout.time_key}, time key {layout.time_key})"
                )
            customers.append(user.astype(np.int64))
            products.append(item.astype(np.int64) - layout.num_customers)
            values.append(chunk.values.reshape(rows, 3)[:, 2].astype(np.float64))
            ratings.append(chunk.labels.astype(np.float64))
            done += rows
    if not customers:
        return Rows([], [], np.zeros(0, np.int64), np.zeros(0, np.float64))
    user_keys = np.concatenate(customers)
    product_rows = np.concatenate(products)
    inverse = {v: index.time_transform.days(v) for v in np.unique(np.concatenate(values)).tolist()}
    since_first = np.array([inverse[v] for v in np.concatenate(values).tolist()], np.int64)
    first = np.frombuffer(index.first_review_day, dtype=np.int32).astype(np.int64)
    return Rows(
        customer_ids=[index.customer_ids[u] for u in user_keys.tolist()],
        product_ids=[index.product_ids[i] for i in product_rows.tolist()],
        days=first[user_keys] + since_first,
        ratings=np.concatenate(ratings),
    )


def score_rows(factors: ServingFactors, index: ServingIndex, rows: Rows) -> ScoredRows:
    """The scores of the model whose serving factors and index these are, on the rows it knows."""
    factors.check_index(index.features)
    users = np.array([index.customer_keys.get(c, -1) for c in rows.customer_ids], np.int64)
    items = np.array([index.product_rows.get(p, -1) for p in rows.product_ids], np.int64)
    known: Bools = (users >= 0) & (items >= 0)
    scores: F64 = np.full(len(rows), np.nan, np.float64)
    at = np.flatnonzero(known)
    if at.shape[0]:
        day_counts = np.clip(
            rows.days[at] - np.frombuffer(index.first_review_day, dtype=np.int32)[users[at]].astype(np.int64),
            0,
            index.time_transform.scale_days,
        )
        table = np.array([index.time_transform(d) for d in range(index.time_transform.scale_days + 1)])
        scores[at] = scores_of(factors, users[at], items[at, None], table[day_counts])[:, 0]
    return ScoredRows(known=known, scores=scores)
