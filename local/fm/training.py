"""Training the factorization machine on prep's RecordIO shards, as SageMaker's algorithm trains it.

Loss and gradients follow MXNet, on which the algorithm is built. predictor_type "regressor": squared loss
0.5 * (y_hat - y)^2 per row; "binary_classifier": labels 0 or 1, logistic loss
log(1 + exp(y_hat)) - y y_hat of the FM's output y_hat (the logit; its score is sigmoid(y_hat)), whose
gradient is (sigmoid(y_hat) - y) times the regressor's; either summed over the mini-batch and multiplied by
rescale_grad (default 1 / mini_batch_size, the batch mean). The classifier's metrics are the algorithm's
(https://docs.aws.amazon.com/sagemaker/latest/dg/fm-tuning.html): binary_classification_accuracy
(predicted_label = score >= 0.5), binary_classification_cross_entropy (the mean logistic loss) and
binary_f_beta (F1 of label 1).

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
epoch are those of the model at the end of that epoch, over every row of each set.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.special import expit

from contract import layout
from fm.metrics import rmse
from fm.recordio import SparseRecords, read_sparse_records
from local.fm.hyperparameters import BINARY_CLASSIFIER, FmHyperparameters, fm_hyperparameters
from local.fm.model import (
    FmParameters,
    batch_matrix,
    binary_outputs,
    check_csr,
    forward,
    predict,
    save_model,
)
from local.progress import Progress

__all__ = [
    "METRICS_FILE",
    "FmGradients",
    "FmProgress",
    "FmResult",
    "binary_metrics",
    "fm_display",
    "fm_gradients",
    "read_shards",
    "records_binary_metrics",
    "records_rmse",
    "train_fm",
    "train_from_prep",
]

I64 = npt.NDArray[np.int64]
Floats = npt.NDArray[np.floating[Any]]

ADAM_BETA1 = 0.9
ADAM_BETA2 = 0.999
METRICS_FILE = "metrics.json"
BINARY_METRICS = (
    "binary_classification_accuracy",
    "binary_classification_cross_entropy",
    "binary_f_beta",
)


@dataclass(frozen=True)
class FmGradients:
    """The predictions of a batch, its loss (rescale * sum 0.5 (y_hat - y)^2, or rescale * the sum of the
    logistic losses), and the loss gradients."""

    pred: Floats
    loss: float
    w0: float
    w: Floats  # (len(cols),)
    v: Floats  # (len(cols), num_factors)


def fm_gradients(
    w0: float,
    w_rows: Floats,
    v_rows: Floats,
    x: sp.csr_matrix,
    labels: Floats,
    *,
    rescale: float,
    logistic: bool = False,
) -> FmGradients:
    """Loss and gradients of a batch x (rows over the batch's columns) against w0, w_rows and v_rows.

    dy_hat/dw0 = 1, dy_hat/dw_i = x_i, dy_hat/dv_if = x_i (sum_j v_jf x_j) - v_if x_i^2; each row's
    derivative is weighted by its residual rescale * (y_hat - y) (logistic: rescale * (sigmoid(y_hat) - y),
    the logistic loss's derivative) and summed over the batch. Weight decay is not part of the loss: the
    optimizer adds it (as MXNet does).
    """
    pred, s = forward(w0, w_rows, v_rows, x)
    if logistic:
        return _logistic_gradients(pred, s, v_rows, x, labels, rescale=rescale)
    residual = pred - labels
    e = (rescale * residual).astype(v_rows.dtype, copy=False)
    g_w, g_v = _row_gradients(e, s, v_rows, x)
    loss = 0.5 * rescale * float(np.dot(residual.astype(np.float64), residual.astype(np.float64)))
    return FmGradients(pred, loss, float(e.sum(dtype=np.float64)), g_w, g_v)


def _logistic_gradients(
    pred: Floats, s: Floats, v_rows: Floats, x: sp.csr_matrix, labels: Floats, *, rescale: float
) -> FmGradients:
    residual = expit(pred) - labels
    e = (rescale * residual).astype(v_rows.dtype, copy=False)
    g_w, g_v = _row_gradients(e, s, v_rows, x)
    loss = rescale * float(_logistic_losses(pred, labels).sum())
    return FmGradients(pred, loss, float(e.sum(dtype=np.float64)), g_w, g_v)


def _row_gradients(e: Floats, s: Floats, v_rows: Floats, x: sp.csr_matrix) -> tuple[Floats, Floats]:
    """Both losses' gradients of the batch's rows of w and v, from e, the loss's derivative per example
    (rescaled): dL/dw_j = sum_i e_i x_ij, dL/dv_j = sum_i e_i (x_ij s_i - x_ij^2 v_j)."""
    xt = x.T.tocsr()
    x2t = xt.copy()
    x2t.data = x2t.data * x2t.data
    g_w: Floats = np.asarray(xt @ e)
    g_v: Floats = np.asarray(xt @ (e[:, None] * s)) - np.asarray(x2t @ e)[:, None] * v_rows
    return g_w, g_v


def _logistic_losses(logits: Floats, labels: Floats) -> npt.NDArray[np.float64]:
    """-y log sigmoid(z) - (1 - y) log(1 - sigmoid(z)) = log(1 + e^z) - y z, per row, without overflow."""
    z = logits.astype(np.float64)
    out: npt.NDArray[np.float64] = np.logaddexp(0.0, z) - labels.astype(np.float64) * z
    return out


def binary_metrics(logits: Floats, labels: Floats) -> dict[str, float]:
    """The classifier's metrics of FM outputs (logits) against labels 0/1: binary_classification_accuracy
    (predicted_label = sigmoid >= 0.5), binary_classification_cross_entropy (mean logistic loss, natural
    log) and binary_f_beta (beta 1: 2 TP / (2 TP + FP + FN) for label 1; 0 when there is no positive label
    nor prediction)."""
    if labels.shape[0] == 0:
        raise ValueError("binary metrics of no rows")
    _, predicted = binary_outputs(logits)
    truth = labels.astype(np.float64) == 1.0
    hit = predicted == 1
    tp = int(np.count_nonzero(hit & truth))
    wrong = int(np.count_nonzero(hit != truth))
    return {
        "binary_classification_accuracy": 1.0 - wrong / labels.shape[0],
        "binary_classification_cross_entropy": float(_logistic_losses(logits, labels).mean()),
        "binary_f_beta": 2 * tp / (2 * tp + wrong) if tp or wrong else 0.0,
    }


def records_binary_metrics(model: FmParameters, data: SparseRecords) -> dict[str, float]:
    """binary_metrics of the model's outputs for the rows against their labels."""
    return binary_metrics(predict(model, data.indptr, data.indices, data.values), data.labels)


def records_rmse(model: FmParameters, data: SparseRecords) -> float:
    """The RMSE (jobs.prep.baselines.rmse) of the model's scores of the rows against their labels."""
    if data.labels.shape[0] == 0:
        raise ValueError("RMSE of no rows")
    return rmse(predict(model, data.indptr, data.indices, data.values), data.labels)


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
    """Reported after every mini-batch (rmse and cross-entropy fields None) and once more at the end of each
    epoch (a regressor's RMSEs, a binary classifier's cross-entropies and accuracies)."""

    epoch: int  # 1-based
    epochs: int
    batch: int  # mini-batches done in this epoch
    batches: int
    train_rmse: float | None = None
    test_rmse: float | None = None
    train_cross_entropy: float | None = None
    test_cross_entropy: float | None = None
    train_accuracy: float | None = None
    test_accuracy: float | None = None


def fm_display(progress: Progress) -> Callable[[FmProgress], None]:
    """Training's reports shown on a Progress: mini-batches advance it, each epoch is a milestone."""

    def report(p: FmProgress) -> None:
        if p.train_cross_entropy is not None:
            progress.milestone(
                f"epoch {p.epoch}/{p.epochs}",
                train_cross_entropy=p.train_cross_entropy,
                test_cross_entropy=p.test_cross_entropy,
                train_accuracy=p.train_accuracy,
                test_accuracy=p.test_accuracy,
            )
        elif p.train_rmse is None:
            progress.advance(total=p.epochs * p.batches)
        else:
            progress.milestone(f"epoch {p.epoch}/{p.epochs}", train_rmse=p.train_rmse, test_rmse=p.test_rmse)

    return report


@dataclass(frozen=True)
class FmResult:
    model: FmParameters
    hyperparameters: FmHyperparameters
    epochs: list[dict[str, float | int | None]]
    """Regressor: {epoch, train_rmse, test_rmse}; binary classifier: {epoch, train_<metric>, test_<metric>}
    for each of binary_metrics' metrics (test ones None without test data)."""
    train_rows: int
    test_rows: int
    seconds: float

    def metrics(self) -> dict[str, object]:
        """fm/metrics.json: per-epoch RMSEs, the final test_rmse (and train_rmse), and what was trained; a
        binary classifier's per-epoch metrics and the final test_ and train_ ones instead of RMSEs."""
        last = self.epochs[-1]
        if self.hyperparameters.predictor_type == BINARY_CLASSIFIER:
            final = {
                f"{side}_{name}": last[f"{side}_{name}"]
                for side in ("test", "train")
                for name in BINARY_METRICS
            }
            return {
                "epochs": self.epochs,
                **final,
                "train_rows": self.train_rows,
                "test_rows": self.test_rows,
                "seconds": round(self.seconds, 3),
                "hyperparameters": self.hyperparameters.as_dict(),
            }
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
    check_csr(data.indptr, data.indices, data.values, feature_dim)
    if not bool(np.isfinite(data.values).all()) or not bool(np.isfinite(data.labels).all()):
        raise ValueError(f"the {name} data holds a non-finite feature value or label")


def _check_inputs(
    train: SparseRecords, test: SparseRecords | None, feature_dim: int, *, binary: bool
) -> None:
    for name, data in (("train", train), ("test", test)):
        if data is not None:
            _check_data(name, data, feature_dim)
            if binary:
                _check_binary_labels(name, data)


def _check_binary_labels(name: str, data: SparseRecords) -> None:
    odd = data.labels[(data.labels != 0) & (data.labels != 1)]
    if odd.shape[0]:
        raise ValueError(
            f"the {name} data holds label {float(odd[0]):g}: predictor_type binary_classifier needs labels "
            "0 or 1"
        )


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
    epoch_end: Callable[[int, FmParameters], None] | None = None,
) -> FmResult:
    """Train an FM regressor (or binary classifier, by predictor_type) on CSR rows with labels; RMSE (the
    classifier's metrics) on train (and test) after every epoch.

    Hyperparameters are SageMaker's (see fm_hyperparameters); their feature_dim must be the data's; a binary
    classifier's labels must be 0 or 1. seed fixes the initialization and the row order of every epoch.
    epoch_end(epoch, model) sees the model after each epoch (its arrays are the ones training goes on
    updating: copy what must outlive the call). Raises FloatingPointError if a prediction stops being
    finite (the learning rates are too high for the data).
    """
    hp = (
        hyperparameters
        if isinstance(hyperparameters, FmHyperparameters)
        else fm_hyperparameters(hyperparameters)
    )
    logistic = hp.predictor_type == BINARY_CLASSIFIER
    _check_inputs(train, test, hp.feature_dim, binary=logistic)
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
            x, cols = batch_matrix(indptr, indices, values, dtype)
            w_rows, v_rows = w[cols], v[cols]
            with np.errstate(over="ignore", invalid="ignore"):  # a non-finite prediction is reported below
                grads = fm_gradients(
                    float(w0[0]), w_rows, v_rows, x, labels, rescale=rescale, logistic=logistic
                )
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
        model = FmParameters(float(w0[0]), w, v)
        if logistic:
            history.append(_binary_epoch(epoch, model, train, test))
            if progress is not None:
                progress(_binary_progress(history[-1], hp.epochs, batches))
        else:
            train_rmse = records_rmse(model, train)
            test_rmse = records_rmse(model, test) if test is not None else None
            history.append({"epoch": epoch, "train_rmse": train_rmse, "test_rmse": test_rmse})
            if progress is not None:
                progress(FmProgress(epoch, hp.epochs, batches, batches, train_rmse, test_rmse))
        if epoch_end is not None:
            epoch_end(epoch, model)
    test_rows = 0 if test is None else test.indptr.shape[0] - 1
    return FmResult(FmParameters(float(w0[0]), w, v), hp, history, n, test_rows, time.perf_counter() - began)


def _binary_epoch(
    epoch: int, model: FmParameters, train: SparseRecords, test: SparseRecords | None
) -> dict[str, float | int | None]:
    row: dict[str, float | int | None] = {"epoch": epoch}
    row.update({f"train_{k}": v for k, v in records_binary_metrics(model, train).items()})
    tested = records_binary_metrics(model, test) if test is not None else {}
    row.update({f"test_{k}": tested.get(k) for k in BINARY_METRICS})
    return row


def _binary_progress(row: Mapping[str, float | int | None], epochs: int, batches: int) -> FmProgress:
    def figure(key: str) -> float | None:
        value = row[key]
        return None if value is None else float(value)

    return FmProgress(
        int(row["epoch"] or 0),
        epochs,
        batches,
        batches,
        train_cross_entropy=figure("train_binary_classification_cross_entropy"),
        test_cross_entropy=figure("test_binary_classification_cross_entropy"),
        train_accuracy=figure("train_binary_classification_accuracy"),
        test_accuracy=figure("test_binary_classification_accuracy"),
    )


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
    test_channel: str | None = layout.VALIDATION,
) -> FmResult:
    """What the FM training job does: train on prep_dir's train/ channel (RMSE also on its "test" channel,
    which the pipeline fills with the validation shard: the test rows are kept for the gate and the final
    report) and write output_dir/model.tar.gz (the algorithm's artifact) and output_dir/metrics.json, whose
    test_rmse is then the validation RMSE, as the training job's test:rmse is. test_channel None: no test
    channel (a run whose validation shard holds no row), test_rmse None."""
    hp = fm_hyperparameters(hyperparameters)
    train = read_shards(prep_dir / layout.in_prep(layout.TRAIN))
    test = None if test_channel is None else read_shards(prep_dir / layout.in_prep(test_channel))
    result = train_fm(train, test, hp, seed=seed, progress=progress)
    save_model(output_dir, result.model, hp.as_dict())
    metrics_path = output_dir / METRICS_FILE
    partial = metrics_path.with_name(metrics_path.name + ".partial")
    partial.write_text(json.dumps(result.metrics(), indent=2) + "\n", encoding="utf-8")
    os.replace(partial, metrics_path)
    return result
