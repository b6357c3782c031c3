"""Prep's rows read back as (customer, product, time value), subsets, and a channel written and read again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fm.recordio import SparseRecords
from local.fm import read_shards
from local.pipeline import PipelineError
from local.pipeline.records import row_keys, subset, write_channel
from tests.local.pipeline.pipeline_support import FEATURES, rows

HAND = rows([[0, 3, 5], [1, 4, 5], [0, 2, 5]], [0.5, 0.0, 1.0], [4.0, 2.0, 5.0])


def test_each_row_is_its_customer_product_and_time_value() -> None:
    keys = row_keys(HAND, FEATURES)
    assert keys.customer.tolist() == [0, 1, 0]
    assert keys.product.tolist() == [1, 2, 0]  # item key N + i -> product row i
    assert keys.time_value.tolist() == [0.5, 0.0, 1.0]
    first = keys.first(2)
    assert (first.customer.tolist(), first.product.tolist()) == ([0, 1], [1, 2])


@pytest.mark.parametrize(
    ("records", "message"),
    [
        (rows([[0, 3]], [0.5], [4.0]), "does not hold exactly"),
        (rows([[0, 3, 5]], [0.5], [4.0], dim=7), "does not hold exactly"),
        (rows([[0, 1, 5]], [0.5], [4.0]), "not a prep shard of this run"),  # a user key where the item goes
        (rows([[2, 3, 5]], [0.5], [4.0]), "not a prep shard of this run"),  # an item key where the user goes
        (rows([[0, 3, 4]], [0.5], [4.0]), "not a prep shard of this run"),  # no time key
    ],
)
def test_rows_that_are_not_this_runs_layout_are_named(records: SparseRecords, message: str) -> None:
    with pytest.raises(PipelineError, match=message):
        row_keys(records, FEATURES)


def test_a_subset_keeps_the_chosen_rows_in_order() -> None:
    kept = subset(HAND, np.array([True, False, True]))
    assert kept.indptr.tolist() == [0, 3, 6]
    assert kept.indices.tolist() == [0, 3, 5, 0, 2, 5]
    assert kept.values.tolist() == [1.0, 1.0, 0.5, 1.0, 1.0, 1.0]
    assert kept.labels.tolist() == [4.0, 5.0]
    assert kept.feature_dim == 6


def test_a_channel_written_reads_back_as_the_same_rows(tmp_path: Path) -> None:
    path = write_channel(tmp_path / "prep" / "train", HAND)
    assert path.name == "part-00000.rio"
    back = read_shards(tmp_path / "prep" / "train")
    for name in ("indptr", "indices", "values", "labels"):
        np.testing.assert_array_equal(getattr(back, name), getattr(HAND, name))
    assert back.feature_dim == 6
