"""The local stand-in for SageMaker's Factorization Machines regressor: numpy/scipy, one process.

    python -m local.fm --prep runs/x/prep --output runs/x/fm \\
        --hyperparameters '{"feature_dim": 178730, "num_factors": 256, "predictor_type": "regressor"}'

The model is the algorithm's: y = w0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j, trained on the RecordIO
shards prep wrote (prep/train/, prep/test/) with the algorithm's hyperparameter names, defaults and meanings
(``fm_hyperparameters``); the artifact is fm/model.npz (w0, w, V) and fm/metrics.json.

How a mini-batch is computed. The pairwise term uses 0.5 * sum_f [(sum_i v_if x_i)^2 - sum_i v_if^2 x_i^2].
The batch's feature keys are made unique (np.unique) and the batch becomes a sparse matrix X over those
columns only, so every product (X @ V_rows, X^T @ residuals) is a scipy sparse-dense product whose cost
follows the batch's nonzeros, not feature_dim. Loss and gradients follow MXNet, on which the algorithm is
built: squared loss 0.5 * (y_hat - y)^2 per row, summed over the batch and multiplied by rescale_grad
(default 1 / mini_batch_size, the batch mean).

How parameters are updated: Adam as MXNet applies it, with MXNet's defaults (beta1 0.9, beta2 0.999, eps
1e-8): g = rescale_grad * grad + wd * weight, clipped to [-clip_gradient, clip_gradient] if set;
m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g^2; weight -= lr_t m / (sqrt(v) + eps) with
lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t), t counting mini-batches. w and V get *lazy* (row-sparse)
updates, as MXNet's Adam does for row_sparse gradients (lazy_update): only the rows of the features present
in the mini-batch change, moments and weight decay included; a row absent from a batch keeps its weights and
its moments. w0 is updated every batch. Each parameter group (bias, linear, factors) has its own learning
rate and weight decay.

Differences from the managed algorithm, by design: one process instead of several hosts sharing a
parameter server; rows are visited in a fresh seeded random order each epoch; the train and test RMSE of an
epoch are those of the model at the end of that epoch, over every row of each set. Binary classification is
not implemented (predictor_type must be "regressor").
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from fm.recordio import SparseRecords, read_sparse_records
from local.hyperparameters import HyperparameterError, HyperparameterReader, hyperparameters_argument

__all__ = [
    "FmGradients",
    "FmHyperparameters",
    "FmModel",
    "FmProgress",
    "FmResult",
    "Initializer",
    "fm_gradients",
    "fm_hyperparameters",
    "predict",
    "read_shards",
    "rmse",
    "train_fm",
    "train_from_prep",
]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Floats = npt.NDArray[np.floating[Any]]

ALGORITHM = "Factorization Machines"
# Every hyperparameter the SageMaker algorithm documents (fact-machines-hyperparameters).
FM_HYPERPARAMETER_NAMES = (
    "feature_dim",
    "num_factors",
    "predictor_type",
    "epochs",
    "mini_batch_size",
    "clip_gradient",
    "eps",
    "rescale_grad",
    "bias_lr",
    "linear_lr",
    "factors_lr",
    "bias_wd",
    "linear_wd",
    "factors_wd",
    *(
        f"{group}_init_{what}"
        for group in ("bias", "linear", "factors")
        for what in ("method", "scale", "sigma", "value")
    ),
)
ADAM_BETA1 = 0.9
ADAM_BETA2 = 0.999
ADAM_EPS = 1e-8  # MXNet's Adam default, used when eps is not set
PREDICT_CHUNK_ROWS = 32768  # rows scored at once: bounds the (rows, num_factors) temporaries


# ------------------------------------------------------------------------------------ hyperparameters


@dataclass(frozen=True)
class Initializer:
    """How one parameter group starts: normal(0, sigma), uniform(-scale, scale) or the constant value."""

    method: str
    sigma: float
    scale: float | None = None
    value: float | None = None

    def sample(
        self, rng: np.random.Generator, shape: tuple[int, ...], dtype: type[np.floating[Any]]
    ) -> Floats:
        if self.method == "normal":
            out: Floats = rng.standard_normal(shape, dtype=dtype)
            out *= self.sigma
            return out
        if self.method == "uniform":
            assert self.scale is not None  # fm_hyperparameters requires it
            uniform: Floats = rng.random(shape, dtype=dtype)
            uniform *= 2 * self.scale
            uniform -= self.scale
            return uniform
        assert self.value is not None  # fm_hyperparameters requires it
        return np.full(shape, self.value, dtype=dtype)


@dataclass(frozen=True)
class FmHyperparameters:
    """The algorithm's hyperparameters, checked and with its defaults filled in."""

    feature_dim: int
    num_factors: int
    predictor_type: str = "regressor"
    epochs: int = 1
    mini_batch_size: int = 1000
    clip_gradient: float | None = None
    eps: float = ADAM_EPS
    rescale_grad: float | None = None  # None: 1 / mini_batch_size
    bias_lr: float = 0.1
    linear_lr: float = 0.001
    factors_lr: float = 0.0001
    bias_wd: float = 0.01
    linear_wd: float = 0.001
    factors_wd: float = 0.00001
    bias_init: Initializer = field(default_factory=lambda: Initializer("normal", 0.01))
    linear_init: Initializer = field(default_factory=lambda: Initializer("normal", 0.01))
    factors_init: Initializer = field(default_factory=lambda: Initializer("normal", 0.001))

    def as_dict(self) -> dict[str, object]:
        """Under the algorithm's names, with every default written out (None: not set)."""
        out: dict[str, object] = {
            "feature_dim": self.feature_dim,
            "num_factors": self.num_factors,
            "predictor_type": self.predictor_type,
            "epochs": self.epochs,
            "mini_batch_size": self.mini_batch_size,
            "clip_gradient": self.clip_gradient,
            "eps": self.eps,
            "rescale_grad": self.rescale_grad,
        }
        for group in ("bias", "linear", "factors"):
            out[f"{group}_lr"] = getattr(self, f"{group}_lr")
            out[f"{group}_wd"] = getattr(self, f"{group}_wd")
            init: Initializer = getattr(self, f"{group}_init")
            out[f"{group}_init_method"] = init.method
            out[f"{group}_init_sigma"] = init.sigma
            out[f"{group}_init_scale"] = init.scale
            out[f"{group}_init_value"] = init.value
        return out


_DEFAULTS = FmHyperparameters(feature_dim=1, num_factors=1)


def _initializer(reader: HyperparameterReader, group: str, default_sigma: float) -> Initializer:
    method = reader.choice(f"{group}_init_method", "normal", ("normal", "uniform", "constant"))
    sigma = reader.number(f"{group}_init_sigma", default_sigma, minimum=0.0)
    scale = reader.optional_number(f"{group}_init_scale", minimum=0.0)
    value = reader.optional_number(f"{group}_init_value")
    if method == "uniform" and scale is None:
        raise HyperparameterError(
            f"{ALGORITHM} hyperparameter {group}_init_scale is required when {group}_init_method is uniform"
        )
    if method == "constant" and value is None:
        raise HyperparameterError(
            f"{ALGORITHM} hyperparameter {group}_init_value is required when {group}_init_method is constant"
        )
    return Initializer(method, sigma, scale, value)


def fm_hyperparameters(values: Mapping[str, object]) -> FmHyperparameters:
    """Check a SageMaker Factorization Machines hyperparameter dictionary and fill in the defaults.

    feature_dim, num_factors and predictor_type are required, as in SageMaker. Types are JSON types (int for
    integers, int or float for numbers, str for choices); learning rates, weight decays, sigmas and scales
    must be non-negative; eps, clip_gradient and rescale_grad positive. Raises HyperparameterError naming
    the key.
    """
    r = HyperparameterReader(ALGORITHM, values, FM_HYPERPARAMETER_NAMES)
    predictor_type = r.choice("predictor_type", None, ("binary_classifier", "regressor"))
    if predictor_type != "regressor":
        raise HyperparameterError(
            f"{ALGORITHM} hyperparameter 'predictor_type' is {predictor_type!r}: the local trainer trains "
            "regressors only (predictor_type 'regressor')"
        )
    d = _DEFAULTS
    return FmHyperparameters(
        feature_dim=r.integer("feature_dim", None, minimum=1),
        num_factors=r.integer("num_factors", None, minimum=1),
        predictor_type=predictor_type,
        epochs=r.integer("epochs", d.epochs, minimum=1),
        mini_batch_size=r.integer("mini_batch_size", d.mini_batch_size, minimum=1),
        clip_gradient=r.optional_number("clip_gradient", above=0.0),
        eps=r.number("eps", d.eps, above=0.0),
        rescale_grad=r.optional_number("rescale_grad", above=0.0),
        bias_lr=r.number("bias_lr", d.bias_lr, minimum=0.0),
        linear_lr=r.number("linear_lr", d.linear_lr, minimum=0.0),
        factors_lr=r.number("factors_lr", d.factors_lr, minimum=0.0),
        bias_wd=r.number("bias_wd", d.bias_wd, minimum=0.0),
        linear_wd=r.number("linear_wd", d.linear_wd, minimum=0.0),
        factors_wd=r.number("factors_wd", d.factors_wd, minimum=0.0),
        bias_init=_initializer(r, "bias", d.bias_init.sigma),
        linear_init=_initializer(r, "linear", d.linear_init.sigma),
        factors_init=_initializer(r, "factors", d.factors_init.sigma),
    )


# ------------------------------------------------------------------------------------------- the model


@dataclass
class FmModel:
    """w0 (the global bias), w (feature_dim,) and V (feature_dim, num_factors)."""

    w0: float
    w: Floats
    v: Floats

    def __post_init__(self) -> None:
        if self.w.ndim != 1 or self.v.ndim != 2 or self.v.shape[0] != self.w.shape[0]:
            raise ValueError(
                f"FM parameters disagree: w has shape {self.w.shape}, V has shape {self.v.shape}"
            )

    @property
    def feature_dim(self) -> int:
        return int(self.w.shape[0])

    @property
    def num_factors(self) -> int:
        return int(self.v.shape[1])

    def save(self, path: Path) -> None:
        """model.npz: w0 (float32, shape ()), w (float32) and V (float32), written atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        with partial.open("wb") as f:
            np.savez(
                f,
                w0=np.asarray(self.w0, dtype=np.float32),
                w=self.w.astype(np.float32, copy=False),
                V=self.v.astype(np.float32, copy=False),
            )
        os.replace(partial, path)

    @classmethod
    def load(cls, path: Path) -> FmModel:
        with np.load(path) as npz:
            missing = {"w0", "w", "V"} - set(npz.files)
            if missing:
                raise ValueError(f"{path}: not an FM model, it lacks {', '.join(sorted(missing))}")
            w0 = npz["w0"]
            if w0.shape != ():
                raise ValueError(f"{path}: w0 must be a scalar, got shape {w0.shape}")
            return cls(float(w0), npz["w"], npz["V"])


def _batch_matrix(
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


def _forward(w0: float, w_rows: Floats, v_rows: Floats, x: sp.csr_matrix) -> tuple[Floats, Floats]:
    """Predictions of the rows of x (over the columns whose parameters are w_rows, v_rows) and X @ V."""
    s: Floats = np.asarray(x @ v_rows)
    x2 = x.copy()
    x2.data = x2.data * x2.data
    sq: Floats = np.asarray(x2 @ (v_rows * v_rows))
    pairwise = 0.5 * (s * s - sq).sum(axis=1)
    pred: Floats = w0 + np.asarray(x @ w_rows) + pairwise
    return pred, s


@dataclass(frozen=True)
class FmGradients:
    """The predictions of a batch, its loss rescale * sum 0.5 (y_hat - y)^2, and the loss gradients."""

    pred: Floats
    loss: float
    w0: float
    w: Floats  # (len(cols),)
    v: Floats  # (len(cols), num_factors)


def fm_gradients(
    w0: float, w_rows: Floats, v_rows: Floats, x: sp.csr_matrix, labels: Floats, *, rescale: float
) -> FmGradients:
    """Loss and gradients of a batch x (rows over the batch's columns) against w0, w_rows and v_rows.

    dy_hat/dw0 = 1, dy_hat/dw_i = x_i, dy_hat/dv_if = x_i (sum_j v_jf x_j) - v_if x_i^2; each row's
    derivative is weighted by its residual rescale * (y_hat - y) and summed over the batch. Weight decay is
    not part of the loss: the optimizer adds it (as MXNet does).
    """
    pred, s = _forward(w0, w_rows, v_rows, x)
    residual = pred - labels
    e = (rescale * residual).astype(v_rows.dtype, copy=False)
    xt = x.T.tocsr()
    x2t = xt.copy()
    x2t.data = x2t.data * x2t.data
    g_w: Floats = np.asarray(xt @ e)
    g_v: Floats = np.asarray(xt @ (e[:, None] * s)) - np.asarray(x2t @ e)[:, None] * v_rows
    loss = 0.5 * rescale * float(np.dot(residual.astype(np.float64), residual.astype(np.float64)))
    return FmGradients(pred, loss, float(e.sum(dtype=np.float64)), g_w, g_v)


def _check_csr(indptr: I64, indices: npt.NDArray[np.integer[Any]], values: Floats, feature_dim: int) -> None:
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


def predict(
    model: FmModel,
    indptr: npt.ArrayLike,
    indices: npt.ArrayLike,
    values: npt.ArrayLike,
    *,
    chunk_rows: int = PREDICT_CHUNK_ROWS,
) -> F64:
    """Scores of CSR rows (row r: keys indices[indptr[r]:indptr[r+1]] with values alongside); an empty
    row scores w0. Vectorized in chunks of chunk_rows rows."""
    ptr = np.asarray(indptr, dtype=np.int64)
    keys = np.asarray(indices)
    vals = np.asarray(values)
    if keys.dtype.kind not in "iu":
        raise ValueError(f"indices must hold integers, got dtype {keys.dtype}")
    _check_csr(ptr, keys, vals, model.feature_dim)
    dtype = model.v.dtype.type
    n = ptr.shape[0] - 1
    out = np.empty(n, np.float64)
    for lo in range(0, n, chunk_rows):
        hi = min(lo + chunk_rows, n)
        start, stop = int(ptr[lo]), int(ptr[hi])
        x, cols = _batch_matrix(ptr[lo : hi + 1] - start, keys[start:stop], vals[start:stop], dtype)
        pred, _ = _forward(model.w0, model.w[cols], model.v[cols], x)
        out[lo:hi] = pred
    return out


def rmse(model: FmModel, data: SparseRecords) -> float:
    """Root mean squared error of the model's scores against the labels."""
    scores = predict(model, data.indptr, data.indices, data.values)
    if scores.shape[0] == 0:
        raise ValueError("RMSE of no rows")
    return float(np.sqrt(np.mean((scores - data.labels.astype(np.float64)) ** 2)))


# ---------------------------------------------------------------------------------------------- training


class _LazyAdam:
    """MXNet's Adam on one parameter array, updating only the given rows (lazy_update for row_sparse)."""

    def __init__(self, param: Floats, lr: float, wd: float, clip: float | None, eps: float) -> None:
        self.param = param
        self.mean = np.zeros_like(param)
        self.var = np.zeros_like(param)
        self.lr = lr
        self.wd = wd
        self.clip = clip
        self.eps = eps

    def step(self, rows: I64, current: Floats, grad: Floats, t: int) -> None:
        """current = param[rows]; grad = the (rescaled) loss gradient for those rows; t = update count."""
        if self.lr == 0.0:
            return
        g = grad + self.wd * current if self.wd else grad
        if self.clip is not None:
            np.clip(g, -self.clip, self.clip, out=g)
        m = self.mean[rows]
        m *= ADAM_BETA1
        m += (1.0 - ADAM_BETA1) * g
        var = self.var[rows]
        var *= ADAM_BETA2
        var += (1.0 - ADAM_BETA2) * (g * g)
        self.mean[rows] = m
        self.var[rows] = var
        step = self.lr * math.sqrt(1.0 - ADAM_BETA2**t) / (1.0 - ADAM_BETA1**t)
        np.sqrt(var, out=var)
        var += self.eps
        m /= var
        m *= step
        self.param[rows] = current - m


@dataclass(frozen=True)
class FmProgress:
    """Reported after every mini-batch (rmse fields None) and once more at the end of each epoch."""

    epoch: int  # 1-based
    epochs: int
    batch: int  # mini-batches done in this epoch
    batches: int
    train_rmse: float | None = None
    test_rmse: float | None = None


@dataclass(frozen=True)
class FmResult:
    model: FmModel
    hyperparameters: FmHyperparameters
    epochs: list[dict[str, float | int | None]]  # {epoch, train_rmse, test_rmse}
    train_rows: int
    test_rows: int
    seconds: float

    def metrics(self) -> dict[str, object]:
        """fm/metrics.json: per-epoch RMSEs, the final test_rmse (and train_rmse), and what was trained."""
        last = self.epochs[-1]
        return {
            "epochs": self.epochs,
            "test_rmse": last["test_rmse"],
            "train_rmse": last["train_rmse"],
            "train_rows": self.train_rows,
            "test_rows": self.test_rows,
            "seconds": round(self.seconds, 3),
            "hyperparameters": self.hyperparameters.as_dict(),
        }


def _check_data(name: str, data: SparseRecords, feature_dim: int) -> None:
    rows = data.indptr.shape[0] - 1
    if rows <= 0:
        raise ValueError(f"the {name} data has no rows")
    if data.feature_dim != feature_dim:
        raise ValueError(
            f"the {name} data has feature_dim {data.feature_dim} "
            f"but the hyperparameter feature_dim is {feature_dim}"
        )
    if data.labels.shape[0] != rows:
        raise ValueError(f"the {name} data has {data.labels.shape[0]} labels for {rows} rows")
    _check_csr(data.indptr, data.indices, data.values, feature_dim)
    if not bool(np.isfinite(data.values).all()) or not bool(np.isfinite(data.labels).all()):
        raise ValueError(f"the {name} data holds a non-finite feature value or label")


def _take_rows(data: SparseRecords, rows: I64) -> tuple[I64, I64, Floats, Floats]:
    """The CSR parts (indptr from 0) and labels of the given rows, in that order."""
    starts = data.indptr[rows]
    counts = data.indptr[rows + 1] - starts
    indptr = np.zeros(rows.shape[0] + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    positions = np.arange(int(indptr[-1]), dtype=np.int64) + np.repeat(starts - indptr[:-1], counts)
    return indptr, data.indices[positions], data.values[positions], data.labels[rows]


def train_fm(
    train: SparseRecords,
    test: SparseRecords | None,
    hyperparameters: Mapping[str, object] | FmHyperparameters,
    *,
    seed: int = 0,
    progress: Callable[[FmProgress], None] | None = None,
    dtype: type[np.floating[Any]] = np.float32,
) -> FmResult:
    """Train an FM regressor on CSR rows with labels; RMSE on train (and test) after every epoch.

    Hyperparameters are SageMaker's (see fm_hyperparameters); their feature_dim must be the data's. seed
    fixes the initialization and the row order of every epoch. Raises FloatingPointError if a prediction
    stops being finite (the learning rates are too high for the data).
    """
    hp = (
        hyperparameters
        if isinstance(hyperparameters, FmHyperparameters)
        else fm_hyperparameters(hyperparameters)
    )
    _check_data("train", train, hp.feature_dim)
    if test is not None:
        _check_data("test", test, hp.feature_dim)
    began = time.perf_counter()
    rng = np.random.default_rng(seed)
    d, k = hp.feature_dim, hp.num_factors
    w0 = hp.bias_init.sample(rng, (1,), dtype)
    w = hp.linear_init.sample(rng, (d,), dtype)
    v = hp.factors_init.sample(rng, (d, k), dtype)
    bias_opt = _LazyAdam(w0, hp.bias_lr, hp.bias_wd, hp.clip_gradient, hp.eps)
    linear_opt = _LazyAdam(w, hp.linear_lr, hp.linear_wd, hp.clip_gradient, hp.eps)
    factors_opt = _LazyAdam(v, hp.factors_lr, hp.factors_wd, hp.clip_gradient, hp.eps)
    rescale = hp.rescale_grad if hp.rescale_grad is not None else 1.0 / hp.mini_batch_size
    all_rows = np.zeros(1, np.int64)

    n = train.indptr.shape[0] - 1
    size = hp.mini_batch_size
    batches = -(-n // size)
    history: list[dict[str, float | int | None]] = []
    t = 0
    for epoch in range(1, hp.epochs + 1):
        order = rng.permutation(n)
        for b in range(batches):
            indptr, indices, values, labels = _take_rows(train, order[b * size : (b + 1) * size])
            x, cols = _batch_matrix(indptr, indices, values, dtype)
            w_rows, v_rows = w[cols], v[cols]
            with np.errstate(over="ignore", invalid="ignore"):  # a non-finite prediction is reported below
                grads = fm_gradients(float(w0[0]), w_rows, v_rows, x, labels, rescale=rescale)
            if not bool(np.isfinite(grads.pred).all()):
                raise FloatingPointError(
                    f"FM training diverged in epoch {epoch}, mini-batch {b + 1}: a prediction is not finite "
                    "(lower bias_lr, linear_lr or factors_lr, or set clip_gradient)"
                )
            t += 1
            bias_opt.step(all_rows, w0.copy(), np.asarray([grads.w0], dtype=dtype), t)
            linear_opt.step(cols, w_rows, grads.w, t)
            factors_opt.step(cols, v_rows, grads.v, t)
            if progress is not None:
                progress(FmProgress(epoch, hp.epochs, b + 1, batches))
        model = FmModel(float(w0[0]), w, v)
        train_rmse = rmse(model, train)
        test_rmse = rmse(model, test) if test is not None else None
        history.append({"epoch": epoch, "train_rmse": train_rmse, "test_rmse": test_rmse})
        if progress is not None:
            progress(FmProgress(epoch, hp.epochs, batches, batches, train_rmse, test_rmse))
    test_rows = 0 if test is None else test.indptr.shape[0] - 1
    return FmResult(FmModel(float(w0[0]), w, v), hp, history, n, test_rows, time.perf_counter() - began)


# ------------------------------------------------------------------------------------------ files


def read_shards(folder: Path) -> SparseRecords:
    """All RecordIO-protobuf shards of a channel folder (every regular, non-hidden file, by name) as one set
    of CSR rows."""
    if not folder.is_dir():
        raise FileNotFoundError(f"no shard folder at {folder}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise FileNotFoundError(f"no RecordIO shards in {folder}")
    parts: list[SparseRecords] = []
    for path in files:
        with path.open("rb") as f:
            try:
                part = read_sparse_records(f)
            except ValueError as e:
                raise ValueError(f"{path}: {e}") from None
        if part.labels.shape[0] == 0:
            continue
        if parts and part.feature_dim != parts[0].feature_dim:
            raise ValueError(
                f"{path}: feature_dim {part.feature_dim} differs from the first shard's "
                f"{parts[0].feature_dim}"
            )
        parts.append(part)
    if not parts:
        raise ValueError(f"the shards in {folder} hold no records")
    indptr = [parts[0].indptr]
    done = int(parts[0].indptr[-1])
    for part in parts[1:]:
        indptr.append(part.indptr[1:] + done)
        done += int(part.indptr[-1])
    return SparseRecords(
        np.concatenate(indptr),
        np.concatenate([p.indices for p in parts]),
        np.concatenate([p.values for p in parts]),
        np.concatenate([p.labels for p in parts]),
        parts[0].feature_dim,
    )


def train_from_prep(
    prep_dir: Path,
    output_dir: Path,
    hyperparameters: Mapping[str, object],
    *,
    seed: int = 0,
    progress: Callable[[FmProgress], None] | None = None,
) -> FmResult:
    """Train on prep_dir/train/ (RMSE also on prep_dir/test/); write output_dir/model.npz and metrics.json."""
    hp = fm_hyperparameters(hyperparameters)
    train = read_shards(prep_dir / "train")
    test = read_shards(prep_dir / "test")
    result = train_fm(train, test, hp, seed=seed, progress=progress)
    result.model.save(output_dir / "model.npz")
    metrics_path = output_dir / "metrics.json"
    partial = metrics_path.with_name(metrics_path.name + ".partial")
    partial.write_text(json.dumps(result.metrics(), indent=2) + "\n", encoding="utf-8")
    os.replace(partial, metrics_path)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local.fm",
        description="Train the local Factorization Machines regressor on prep shards.",
    )
    parser.add_argument("--prep", type=Path, required=True, help="the run's prep/ folder (train/ and test/)")
    parser.add_argument("--output", type=Path, required=True, help="where model.npz and metrics.json go")
    parser.add_argument(
        "--hyperparameters",
        required=True,
        help="a JSON object of SageMaker FM hyperparameters, or @file.json",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        hyperparameters = hyperparameters_argument(args.hyperparameters)
    except (OSError, json.JSONDecodeError) as e:
        parser.error(f"--hyperparameters: {e}")
    from tqdm import tqdm  # noqa: PLC0415 -- only the command line draws a progress bar

    bars: dict[int, Any] = {}

    def show(p: FmProgress) -> None:
        if p.epoch not in bars:
            bars[p.epoch] = tqdm(
                total=p.batches, desc=f"FM epoch {p.epoch}/{p.epochs}", unit="batch", file=sys.stderr
            )
        bar = bars[p.epoch]
        if p.train_rmse is None:
            bar.update(1)
        else:
            bar.set_postfix(train_rmse=f"{p.train_rmse:.4f}", test_rmse=f"{p.test_rmse:.4f}")
            bar.close()

    try:
        result = train_from_prep(args.prep, args.output, hyperparameters, seed=args.seed, progress=show)
    except (HyperparameterError, ValueError, FileNotFoundError, FloatingPointError) as e:
        print(f"local.fm: {e}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in result.metrics().items() if k != "hyperparameters"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
