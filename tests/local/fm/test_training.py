"""The local FM trainer: gradients, learning (MXNet's lazy Adam), prep channels in, the artifact out."""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from fm.artifact import inspect_fm_artifact
from fm.recordio import SparseRecords
from local.fm import (
    FmProgress,
    fm_display,
    fm_gradients,
    load_model,
    predict,
    records_rmse,
    train_fm,
    train_from_prep,
)
from local.progress import Progress
from local.runtime_server import FmPredictor
from local.runtime_server import load_model as load_served_model
from tests.local.fm.fm_support import FAST, REQUIRED, csr, planted_ratings, write_shards


def test_gradients_match_finite_differences() -> None:
    rng = np.random.default_rng(7)
    d, k = 5, 3
    w0, w, v = 0.2, rng.normal(size=d), rng.normal(size=(d, k))
    x = sp.csr_matrix(
        (
            np.array([1.0, 0.5, 2.0, 1.0, -1.5, 1.0, 0.3, 1.0, 2.5]),
            np.array([0, 2, 4, 1, 2, 3, 4, 0, 3]),
            np.array([0, 3, 5, 7, 9]),
        ),
        shape=(4, d),
    )
    labels = np.array([1.0, -2.0, 0.5, 3.0])
    rescale = 0.25

    def loss(w0_: float, w_: np.ndarray, v_: np.ndarray) -> float:
        return fm_gradients(w0_, w_, v_, x, labels, rescale=rescale).loss

    grads = fm_gradients(w0, w, v, x, labels, rescale=rescale)
    h = 1e-6
    assert grads.w0 == pytest.approx((loss(w0 + h, w, v) - loss(w0 - h, w, v)) / (2 * h), rel=1e-7)
    for i in range(d):
        step = np.zeros(d)
        step[i] = h
        numeric = (loss(w0, w + step, v) - loss(w0, w - step, v)) / (2 * h)
        assert grads.w[i] == pytest.approx(numeric, rel=1e-6, abs=1e-9)
    for i, f in itertools.product(range(d), range(k)):
        step2 = np.zeros((d, k))
        step2[i, f] = h
        numeric = (loss(w0, w, v + step2) - loss(w0, w, v - step2)) / (2 * h)
        assert grads.v[i, f] == pytest.approx(numeric, rel=1e-6, abs=1e-9)
    # The loss is rescale * sum 0.5 * residual^2 of the predictions.
    assert grads.loss == pytest.approx(rescale * 0.5 * float(np.sum((grads.pred - labels) ** 2)))


def test_training_beats_the_global_mean_on_a_planted_low_rank_model() -> None:
    train, test, dim = planted_ratings()
    reports: list[FmProgress] = []
    result = train_fm(train, test, {**FAST, "feature_dim": dim}, seed=1, progress=reports.append)

    global_mean = float(train.labels.mean())
    mean_rmse = float(np.sqrt(np.mean((test.labels - global_mean) ** 2)))
    test_rmse = result.epochs[-1]["test_rmse"]
    assert isinstance(test_rmse, float)
    assert test_rmse < 0.3 * mean_rmse, (test_rmse, mean_rmse)
    assert test_rmse == pytest.approx(records_rmse(result.model, test))
    # The factors carry the planted interactions: biases alone (factors frozen) do far worse.
    biases_only = train_fm(train, test, {**FAST, "feature_dim": dim, "factors_lr": 0.0}, seed=1)
    assert test_rmse < 0.5 * biases_only.epochs[-1]["test_rmse"]  # type: ignore[operator]
    # RMSE falls from the first epoch to the last, on both sets.
    first, last = result.epochs[0], result.epochs[-1]
    assert last["train_rmse"] < first["train_rmse"]  # type: ignore[operator]
    assert last["test_rmse"] < first["test_rmse"]  # type: ignore[operator]
    # One report per mini-batch (750 rows / 25 = 30 a epoch) plus one with the RMSEs per epoch.
    assert len(reports) == 15 * (30 + 1)
    ends = [r for r in reports if r.train_rmse is not None]
    assert [r.epoch for r in ends] == list(range(1, 16))
    assert ends[-1].test_rmse == test_rmse
    assert reports[0] == FmProgress(1, 15, 1, 30)


def test_training_is_reproducible_from_the_seed() -> None:
    train, test, dim = planted_ratings()
    hp = {**FAST, "feature_dim": dim, "epochs": 2}
    a = train_fm(train, test, hp, seed=5).model
    b = train_fm(train, test, hp, seed=5).model
    c = train_fm(train, test, hp, seed=6).model
    np.testing.assert_array_equal(a.v, b.v)
    assert a.w0 == b.w0
    assert not np.array_equal(a.v, c.v)


def test_updates_are_lazy_rows_absent_from_training_keep_their_initial_values() -> None:
    train, _, dim = planted_ratings()
    hp = {
        **FAST,
        "feature_dim": dim + 2,  # two keys no row holds
        "epochs": 2,
        "linear_init_method": "constant",
        "linear_init_value": 0.25,
        "factors_init_method": "uniform",
        "factors_init_scale": 0.05,
    }
    widen = train._replace(feature_dim=dim + 2)
    model = train_fm(widen, None, hp, seed=2).model
    assert model.w[dim] == np.float32(0.25) and model.w[dim + 1] == np.float32(0.25)
    assert np.all(np.abs(model.v[dim:]) <= 0.05)
    assert not np.any(model.w[:dim] == np.float32(0.25))  # every key that occurs was updated


def test_two_updates_follow_mxnet_adam_with_weight_decay_clipping_and_bias_correction() -> None:
    # Six rows over keys 0..6 (key 7 never occurs), one mini-batch an epoch, two epochs: two Adam steps.
    rows = [
        {0: 1.0, 3: 1.0},
        {1: 1.0, 4: 2.0},
        {0: 1.0, 5: 0.5},
        {2: 1.0, 3: 1.0, 6: 1.5},
        {1: 1.0},
        {2: 1.0, 6: 1.0},
    ]
    indptr, indices, values = csr(rows)
    labels = np.array([4.0, 2.0, 5.0, 3.0, 1.0, 4.0], np.float32)
    data = SparseRecords(indptr, indices, values, labels, 8)
    hp: dict[str, Any] = {
        "feature_dim": 8,
        "num_factors": 3,
        "predictor_type": "regressor",
        "mini_batch_size": 10,  # rescale_grad defaults to 1/10
        "bias_lr": 0.1,
        "linear_lr": 0.05,
        "factors_lr": 0.02,
        "bias_wd": 0.01,
        "linear_wd": 0.2,
        "factors_wd": 0.3,
        "clip_gradient": 0.05,
        "eps": 1e-3,
        "factors_init_sigma": 0.5,
    }
    # With every learning rate 0 the trainer returns its initial parameters.
    start = train_fm(
        data, None, {**hp, "bias_lr": 0, "linear_lr": 0, "factors_lr": 0}, seed=9, dtype=np.float64
    )
    trained = train_fm(data, None, {**hp, "epochs": 2}, seed=9, dtype=np.float64).model

    # MXNet's Adam written out: g = rescale * grad + wd * weight, clipped; moments; bias-corrected step.
    w0, w, v = np.array([start.model.w0]), start.model.w.copy(), start.model.v.copy()
    moments = {name: [np.zeros_like(p), np.zeros_like(p)] for name, p in (("w0", w0), ("w", w), ("v", v))}
    touched = np.arange(7)
    x = sp.csr_matrix((values.astype(np.float64), indices, indptr), shape=(6, 8))[:, touched]
    for t in (1, 2):
        g = fm_gradients(float(w0[0]), w[touched], v[touched], x, labels.astype(np.float64), rescale=0.1)
        for name, param, grad, lr, wd in (
            ("w0", w0, np.array([g.w0]), 0.1, 0.01),
            ("w", w, g.w, 0.05, 0.2),
            ("v", v, g.v, 0.02, 0.3),
        ):
            rows_ = slice(None) if name == "w0" else touched
            full = np.clip(grad + wd * param[rows_], -0.05, 0.05)
            m, s = moments[name]
            m[rows_] = 0.9 * m[rows_] + 0.1 * full
            s[rows_] = 0.999 * s[rows_] + 0.001 * full**2
            step = lr * np.sqrt(1 - 0.999**t) / (1 - 0.9**t)
            param[rows_] -= step * m[rows_] / (np.sqrt(s[rows_]) + 1e-3)

    assert trained.w0 == pytest.approx(float(w0[0]), rel=1e-10)
    np.testing.assert_allclose(trained.w, w, rtol=1e-10)
    np.testing.assert_allclose(trained.v, v, rtol=1e-10)
    # Key 7 never occurs: its weights are the initial ones (lazy update, no weight decay either).
    assert trained.w[7] == start.model.w[7]
    np.testing.assert_array_equal(trained.v[7], start.model.v[7])


def test_training_rejects_data_that_disagrees_with_the_hyperparameters() -> None:
    train, test, dim = planted_ratings()
    with pytest.raises(
        ValueError, match="train data has feature_dim 70 but the hyperparameter feature_dim is 71"
    ):
        train_fm(train, test, {**FAST, "feature_dim": dim + 1})
    bad = train._replace(labels=train.labels.copy())
    bad.labels[3] = np.nan
    with pytest.raises(ValueError, match="train data holds a non-finite"):
        train_fm(bad, None, {**FAST, "feature_dim": dim})


def test_divergence_is_reported() -> None:
    train, _, dim = planted_ratings()
    huge = train._replace(values=np.full_like(train.values, 1e20))
    with pytest.raises(FloatingPointError, match="diverged in epoch 1, mini-batch 1"):
        train_fm(huge, None, {**FAST, "feature_dim": dim, "factors_init_sigma": 1.0})


# ------------------------------------------------------------------------------------------------ files


def test_training_from_recordio_shards_writes_sagemakers_artifact(tmp_path: Path) -> None:
    train, test, dim = planted_ratings()
    write_shards(tmp_path / "prep" / "train", train, parts=4)
    write_shards(tmp_path / "prep" / "validation", test, parts=1)
    hp: dict[str, Any] = {**FAST, "feature_dim": dim, "epochs": 3}

    result = train_from_prep(tmp_path / "prep", tmp_path / "fm", hp, seed=4)

    # The shards hold the same rows as the arrays: the model equals one trained on the arrays directly.
    direct = train_fm(train, test, hp, seed=4)
    np.testing.assert_array_equal(result.model.v, direct.model.v)
    assert result.train_rows == 750 and result.test_rows == 150

    assert sorted(p.name for p in (tmp_path / "fm").iterdir()) == ["metrics.json", "model.tar.gz"]
    artifact = inspect_fm_artifact(tmp_path / "fm" / "model.tar.gz")
    assert artifact.predictor_type == "regressor"
    trained = artifact.hyperparameters
    assert (trained["feature_dim"], trained["num_factors"], trained["epochs"]) == (str(dim), "4", "3")
    assert trained["mini_batch_size"] == "25" and trained["factors_init_sigma"] == "0.1"
    assert "clip_gradient" not in trained  # not set
    assert artifact.parameters.w.shape == (dim,) and artifact.parameters.w.dtype == np.float32
    assert artifact.parameters.v.shape == (dim, 4) and artifact.parameters.v.dtype == np.float32
    # Trained in float32 and stored in float32: the round trip changes no parameter and no prediction.
    loaded = load_model(tmp_path / "fm")
    assert loaded.w0 == result.model.w0
    np.testing.assert_array_equal(loaded.w, result.model.w)
    np.testing.assert_array_equal(loaded.v, result.model.v)
    scores = predict(loaded, test.indptr, test.indices, test.values)
    np.testing.assert_array_equal(scores, predict(result.model, test.indptr, test.indices, test.values))

    metrics = json.loads((tmp_path / "fm" / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3]
    assert set(metrics["epochs"][0]) == {"epoch", "train_rmse", "test_rmse"}
    assert metrics["test_rmse"] == metrics["epochs"][-1]["test_rmse"]
    assert metrics["test_rmse"] == records_rmse(loaded, test)
    assert metrics["hyperparameters"]["num_factors"] == 4
    assert not list((tmp_path / "fm").glob("*.partial"))

    # The local runtime server scores the artifact the same way.
    served = load_served_model(tmp_path / "fm")
    assert isinstance(served, FmPredictor)
    first = [int(k) for k in test.indices[:2]]
    instance = {"data": {"features": {"keys": first, "shape": [dim], "values": [1.0, 1.0]}}}
    answer = served.answer({"instances": [instance]})
    assert answer["predictions"][0]["score"] == pytest.approx(scores[0], rel=1e-5)


def test_missing_shards_are_named(tmp_path: Path) -> None:
    (tmp_path / "prep" / "train").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"no RecordIO shards in .*train"):
        train_from_prep(tmp_path / "prep", tmp_path / "fm", {**REQUIRED})
    (tmp_path / "prep" / "train" / "part-00000.rio").write_bytes(b"not recordio")
    with pytest.raises(ValueError, match=r"part-00000.rio: bad RecordIO magic number"):
        train_from_prep(tmp_path / "prep", tmp_path / "fm", {**REQUIRED})


# --------------------------------------------------------------------------------------------- progress


def test_progress_off_a_terminal_is_one_line_per_epoch_with_its_rmse() -> None:
    train, test, dim = planted_ratings()
    stream = io.StringIO()
    with Progress("FM", unit="batch", stream=stream) as progress:
        result = train_fm(
            train, test, {**FAST, "feature_dim": dim, "epochs": 2}, seed=1, progress=fm_display(progress)
        )
    assert progress.done == 2 * 30 and progress.total == 2 * 30
    lines = stream.getvalue().splitlines()
    expected = [
        f"FM: epoch {e['epoch']}/2, train_rmse {e['train_rmse']:.4f}, test_rmse {e['test_rmse']:.4f}"
        for e in result.epochs
    ]
    assert lines == expected
    assert "\r" not in stream.getvalue()
