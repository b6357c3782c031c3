"""The factorization machine itself: its parameters, its file and its scores.

The parameters are fm.artifact's FmParameters (w0, w (feature_dim,), V (feature_dim, num_factors)), the
one model class of the trainer, the evaluation and the local runtime server. The file is model.tar.gz in the
SageMaker algorithm's own layout, written by fm.artifact.write_fm_artifact and read by
read_fm_artifact, so that a model trained here is served the way the cloud's is and the other way round.

Scores: y = w0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j, with the pairwise term as
0.5 * sum_f [(sum_i v_if x_i)^2 - sum_i v_if^2 x_i^2]. The rows' feature keys are made unique (np.unique) and
the rows become a sparse matrix X over those columns only, so every product (X @ V_rows) is a scipy
sparse-dense product whose cost follows the nonzeros, not feature_dim. Training computes its mini-batches with
the same two functions (batch_matrix, forward).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.special import expit

from fm.artifact import FmParameters, read_fm_artifact, write_fm_artifact

__all__ = [
    "MODEL_FILE",
    "FmParameters",
    "batch_matrix",
    "binary_outputs",
    "check_csr",
    "forward",
    "load_model",
    "predict",
    "save_model",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Floats = npt.NDArray[np.floating[Any]]

MODEL_FILE = "model.tar.gz"
"""What an FM training job leaves in its output folder (fm/ of a local run)."""
PREDICT_CHUNK_ROWS = 32768  # rows scored at once: bounds the (rows, num_factors) temporaries


def save_model(folder: Path, model: FmParameters, hyperparameters: Mapping[str, object]) -> Path:
    """folder/model.tar.gz as the algorithm writes it, with the training job's hyperparameters (SageMaker
    names; a None value is left out) in its meta.json; written atomically. Returns its path."""
    path = folder / MODEL_FILE
    write_fm_artifact(path, model, {k: v for k, v in hyperparameters.items() if v is not None})
    return path


def load_model(source: Path) -> FmParameters:
    """The FM model of a training output folder (its model.tar.gz) or of a model file (model.tar.gz, its
    model_algo-1 or a bare params file). ArtifactError names what is wrong with the file."""
    path = source / MODEL_FILE if source.is_dir() else source
    if not path.is_file():
        raise FileNotFoundError(f"no FM model at {path}")
    return read_fm_artifact(path)


def check_csr(indptr: I64, indices: npt.NDArray[np.integer[Any]], values: Floats, feature_dim: int) -> None:
    if indptr.ndim != 1 or indptr.shape[0] == 0:
        raise ValueError("indptr must be a non-empty one-dimensional array (one entry more than rows)")
    if indices.shape != values.shape or indices.ndim != 1:
        raise ValueError(f"indices {indices.shape} and values {values.shape} must be 1-D and of equal length")
    if int(indptr[0]) != 0 or int(indptr[-1]) != indices.shape[0] or bool(np.any(np.diff(indptr) < 0)):
        raise ValueError(f"indptr must rise from 0 to len(indices) = {indices.shape[0]} without decreasing")
    if indices.shape[0] and (int(indices.min()) < 0 or int(indices.max()) >= feature_dim):
        raise ValueError(
            f"feature keys must lie in [0, {feature_dim}), got {int(indices.min())}..{int(indices.max())}"
        )


def batch_matrix(
    indptr: I64, indices: npt.NDArray[np.integer[Any]], values: Floats, dtype: type[np.floating[Any]]
) -> tuple[sp.csr_matrix, I64]:
    """Rows as a sparse matrix over the distinct keys they hold (column j = key cols[j]), and those keys.

    indptr starts at 0. Repeated keys within a row stay separate entries, so they add up, as the algorithm
    sums x_i over a row's entries.
    """
    cols, local = np.unique(indices, return_inverse=True)
    n = indptr.shape[0] - 1
    x = sp.csr_matrix(
        (values.astype(dtype, copy=False), local.astype(np.int64, copy=False), indptr),
        shape=(n, cols.shape[0]),
    )
    return x, cols.astype(np.int64, copy=False)


def forward(w0: float, w_rows: Floats, v_rows: Floats, x: sp.csr_matrix) -> tuple[Floats, Floats]:
    """Predictions of the rows of x (over the columns whose parameters are w_rows, v_rows) and X @ V."""
    s: Floats = np.asarray(x @ v_rows)
    x2 = x.copy()
    x2.data = x2.data * x2.data
    sq: Floats = np.asarray(x2 @ (v_rows * v_rows))
    pairwise = 0.5 * (s * s - sq).sum(axis=1)
    pred: Floats = w0 + np.asarray(x @ w_rows) + pairwise
    return pred, s


def binary_outputs(logits: npt.ArrayLike) -> tuple[F64, I64]:
    """A binary classifier's answer for its FM outputs: score = sigmoid(output) and predicted_label = 1 when
    score >= 0.5, as SageMaker FM's binary_classifier responds ({"score", "predicted_label"}:
    https://docs.aws.amazon.com/sagemaker/latest/dg/fm-in-formats.html)."""
    score: F64 = expit(np.asarray(logits, np.float64))
    return score, (score >= 0.5).astype(np.int64)


def predict(
    model: FmParameters,
    indptr: npt.ArrayLike,
    indices: npt.ArrayLike,
    values: npt.ArrayLike,
    *,
    chunk_rows: int = PREDICT_CHUNK_ROWS,
    dtype: type[np.floating[Any]] | None = None,
) -> F64:
    """Scores of CSR rows (row r: keys indices[indptr[r]:indptr[r+1]] with values alongside); an empty
    row scores w0. Computed in dtype (default: the model's, float32 for a trained or read model), in chunks
    of chunk_rows rows."""
    ptr = np.asarray(indptr, dtype=np.int64)
    keys = np.asarray(indices)
    vals = np.asarray(values)
    if keys.dtype.kind not in "iu":
        raise ValueError(f"indices must hold integers, got dtype {keys.dtype}")
    check_csr(ptr, keys, vals, model.feature_dim)
    compute = dtype if dtype is not None else model.v.dtype.type
    n = ptr.shape[0] - 1
    out = np.empty(n, np.float64)
    for lo in range(0, n, chunk_rows):
        hi = min(lo + chunk_rows, n)
        start, stop = int(ptr[lo]), int(ptr[hi])
        x, cols = batch_matrix(ptr[lo : hi + 1] - start, keys[start:stop], vals[start:stop], compute)
        w_rows = model.w[cols].astype(compute, copy=False)
        v_rows = model.v[cols].astype(compute, copy=False)
        pred, _ = forward(model.w0, w_rows, v_rows, x)
        out[lo:hi] = pred
    return out
