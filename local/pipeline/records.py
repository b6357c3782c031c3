"""Prep's RecordIO rows read back as what they hold, and subsets of them.

Every row of a prep shard holds exactly three features in key order (contract.features): the customer's
user key, the product's item key and the time feature at the time key.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from contract.features import NONZEROS_PER_ROW, FeatureLayout
from fm.recordio import SparseRecords, write_sparse_records
from jobs.prep.outputs import shard_name
from local.pipeline import PipelineError

I64 = npt.NDArray[np.int64]


class RowKeys(NamedTuple):
    """Per row: the customer (row u of the index), the product (row i of the index) and the time value."""

    customer: I64
    product: I64
    time_value: npt.NDArray[np.float32]

    def first(self, count: int) -> RowKeys:
        """The first `count` rows."""
        return RowKeys(self.customer[:count], self.product[:count], self.time_value[:count])


def row_keys(records: SparseRecords, features: FeatureLayout) -> RowKeys:
    """Each row's customer, product and time value; PipelineError if a row is not (user, item, time) of
    this feature layout."""
    if np.any(np.diff(records.indptr) != NONZEROS_PER_ROW) or records.feature_dim != features.feature_dim:
        raise PipelineError("a RecordIO row does not hold exactly (user, item, time): not a prep shard")
    starts = records.indptr[:-1]
    user, item, time = (records.indices[starts + column] for column in range(NONZEROS_PER_ROW))
    # Keys as prep writes them: user_key(0) + u, item_key(0) + i, time_key.
    first_item, time_key = features.item_key(0), features.time_key
    if (
        np.any(user < features.user_key(0))
        or np.any(user >= first_item)
        or np.any(item < first_item)
        or np.any(item >= time_key)
        or np.any(time != time_key)
    ):
        raise PipelineError(
            f"a RecordIO row's keys are not (user, item, time) of {features.num_customers} customers and "
            f"{features.num_products} products: not a prep shard of this run"
        )
    customer = (user - features.user_key(0)).astype(np.int64, copy=False)
    product = (item - first_item).astype(np.int64, copy=False)
    return RowKeys(customer, product, records.values[starts + 2])


def subset(records: SparseRecords, keep: npt.NDArray[np.bool_]) -> SparseRecords:
    """The rows where keep is True, in their order."""
    rows = np.flatnonzero(keep)
    starts = records.indptr[rows]
    counts = np.diff(records.indptr)[rows]
    take = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts) + np.arange(counts.sum())
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return SparseRecords(
        indptr, records.indices[take], records.values[take], records.labels[rows], records.feature_dim
    )


def write_channel(folder: Path, records: SparseRecords) -> Path:
    """The rows as one RecordIO-protobuf shard in a channel folder (prep/train/, prep/test/), named as prep
    names its shards."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / shard_name(0)
    with path.open("wb") as f:
        write_sparse_records(
            f, records.indptr, records.indices, records.values, records.labels, records.feature_dim
        )
    return path
