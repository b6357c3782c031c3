"""bench/implicit_ranking.py's training rows: positives as prep coded them, negatives never reviewed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.implicit_ranking import implicit_rows
from contract.features import FeatureLayout
from fm.factors import reviewed_products
from fm.recordio import SparseRecords
from tests.local.fm.fm_support import write_shards

FEATURES = FeatureLayout(num_customers=2, num_products=3)  # users 0, 1; items 2, 3, 4; time key 5


def train_rows() -> SparseRecords:
    # Customer 0 reviewed products 0 and 1 (time values 0.1, 0.4), customer 1 product 0 (time value 0.7).
    keys = np.array([0, 2, 5, 0, 3, 5, 1, 2, 5], np.int64)
    values = np.array([1, 1, 0.1, 1, 1, 0.4, 1, 1, 0.7], np.float32)
    return SparseRecords(np.array([0, 3, 6, 9], np.int64), keys, values, np.array([5, 3, 4], np.float32), 6)


def test_positives_keep_their_rows_and_negatives_are_unreviewed_products_at_the_same_time(
    tmp_path: Path,
) -> None:
    train = train_rows()
    write_shards(tmp_path / "train", train, parts=1)
    seen = reviewed_products(sorted((tmp_path / "train").iterdir()), FEATURES)

    rows = implicit_rows(train, FEATURES, seen, negatives=3, beta=0.0, seed=5)

    keys = rows.indices.reshape(-1, 3)
    values = rows.values.reshape(-1, 3)
    assert rows.labels.tolist() == [1, 1, 1] + [0] * 9
    np.testing.assert_array_equal(keys[:3], train.indices.reshape(-1, 3))
    np.testing.assert_array_equal(values[:3], train.values.reshape(-1, 3))
    # Customer 0's only unreviewed product is 2 (key 4); customer 1's are 1 and 2 (keys 3, 4).
    assert keys[3:9, 0].tolist() == [0] * 6 and keys[3:9, 1].tolist() == [4] * 6
    assert keys[9:, 0].tolist() == [1] * 3 and set(keys[9:, 1].tolist()) <= {3, 4}
    assert bool((keys[:, 2] == 5).all())
    np.testing.assert_allclose(values[3:, 2], [0.1] * 3 + [0.4] * 3 + [0.7] * 3)
    assert rows.feature_dim == 6 and rows.indptr.tolist() == list(range(0, 37, 3))


def test_a_customer_who_reviewed_everything_gets_no_negative(tmp_path: Path) -> None:
    features = FeatureLayout(num_customers=1, num_products=2)  # user 0; items 1, 2; time key 3
    train = SparseRecords(
        np.array([0, 3, 6], np.int64),
        np.array([0, 1, 3, 0, 2, 3], np.int64),
        np.array([1, 1, 0.2, 1, 1, 0.3], np.float32),
        np.array([4, 2], np.float32),
        4,
    )
    write_shards(tmp_path / "train", train, parts=1)
    seen = reviewed_products(sorted((tmp_path / "train").iterdir()), features)

    rows = implicit_rows(train, features, seen, negatives=2, beta=1.0, seed=0)

    assert rows.labels.tolist() == [1, 1]
