"""Hand-made prep rows for the pipeline tests."""

from __future__ import annotations

import numpy as np

from contract.features import FeatureLayout
from fm.recordio import SparseRecords

# Two customers (keys 0, 1), three products (keys 2, 3, 4), the time feature at key 5.
FEATURES = FeatureLayout(num_customers=2, num_products=3)


def rows(keys: list[list[int]], times: list[float], labels: list[float], dim: int = 6) -> SparseRecords:
    indptr = np.cumsum([0] + [len(k) for k in keys]).astype(np.int64)
    values = [v for k, t in zip(keys, times, strict=True) for v in [1.0] * (len(k) - 1) + [t]]
    return SparseRecords(
        indptr,
        np.array([key for k in keys for key in k], np.int64),
        np.array(values, np.float32),
        np.array(labels, np.float32),
        dim,
    )
