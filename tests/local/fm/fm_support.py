"""Hand-made data for the FM tests: planted low-rank ratings, CSR rows, prep-style shards."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import numpy.typing as npt

from fm.recordio import SparseRecords, write_sparse_records
from local.fm import FmParameters

I64 = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]

REQUIRED: dict[str, object] = {"feature_dim": 10, "num_factors": 4, "predictor_type": "regressor"}
FAST: dict[str, object] = {
    "predictor_type": "regressor",
    "num_factors": 4,
    "epochs": 15,
    "mini_batch_size": 25,
    "bias_lr": 0.03,
    "linear_lr": 0.03,
    "factors_lr": 0.03,
    "factors_init_sigma": 0.1,
}


def naive_score(model: FmParameters, keys: list[int], values: list[float]) -> float:
    """The FM formula term by term: w0 + sum w_i x_i + sum over pairs of entries <v_i, v_j> x_i x_j."""
    score = model.w0 + sum(float(model.w[k]) * x for k, x in zip(keys, values, strict=True))
    for (a, xa), (b, xb) in itertools.combinations(zip(keys, values, strict=True), 2):
        score += float(np.dot(model.v[a], model.v[b])) * xa * xb
    return score


def csr(rows: list[dict[int, float]]) -> tuple[I64, I64, F32]:
    indptr = np.cumsum([0] + [len(r) for r in rows]).astype(np.int64)
    indices = np.array([k for r in rows for k in r], dtype=np.int64)
    values = np.array([x for r in rows for x in r.values()], dtype=np.float32)
    return indptr, indices, values


def planted_ratings(seed: int = 11) -> tuple[SparseRecords, SparseRecords, int]:
    """Ratings 3 + user bias + item bias + <p_u, q_i> (rank 2) + small noise; one-hot user and item keys."""
    rng = np.random.default_rng(seed)
    users, items = 40, 30
    b_u, b_i = rng.normal(0, 0.5, users), rng.normal(0, 0.5, items)
    p, q = rng.normal(0, 0.8, (users, 2)), rng.normal(0, 0.8, (items, 2))
    pairs = np.array([(u, i) for u in range(users) for i in range(items)])
    pairs = pairs[rng.permutation(len(pairs))[:900]]
    y = 3 + b_u[pairs[:, 0]] + b_i[pairs[:, 1]] + np.sum(p[pairs[:, 0]] * q[pairs[:, 1]], 1)
    y = (y + rng.normal(0, 0.1, len(y))).astype(np.float32)
    dim = users + items

    def records(part: I64, labels: F32) -> SparseRecords:
        keys = np.stack([part[:, 0], users + part[:, 1]], 1).reshape(-1).astype(np.int64)
        return SparseRecords(
            np.arange(0, 2 * len(part) + 1, 2, dtype=np.int64),
            keys,
            np.ones(len(keys), np.float32),
            labels,
            dim,
        )

    return records(pairs[:750], y[:750]), records(pairs[750:], y[750:]), dim


def write_shards(folder: Path, data: SparseRecords, parts: int) -> None:
    folder.mkdir(parents=True)
    n = data.labels.shape[0]
    bounds = np.linspace(0, n, parts + 1).astype(int)
    for p in range(parts):
        lo, hi = bounds[p], bounds[p + 1]
        start, stop = data.indptr[lo], data.indptr[hi]
        with (folder / f"part-{p:05d}.rio").open("wb") as f:
            write_sparse_records(
                f,
                data.indptr[lo : hi + 1] - start,
                data.indices[start:stop],
                data.values[start:stop],
                data.labels[lo:hi],
                data.feature_dim,
            )
