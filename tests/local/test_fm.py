"""The local Factorization Machines trainer: formula, gradients, learning, hyperparameters, artifact."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from fm.recordio import SparseRecords, write_sparse_records
from local.fm import (
    FmHyperparameters,
    FmModel,
    FmProgress,
    Initializer,
    fm_gradients,
    fm_hyperparameters,
    predict,
    rmse,
    train_fm,
    train_from_prep,
)
from local.hyperparameters import HyperparameterError
from local.runtime_server import FmModel as ServedFmModel


def naive_score(model: FmModel, keys: list[int], values: list[float]) -> float:
    """The FM formula term by term: w0 + sum w_i x_i + sum over pairs of entries <v_i, v_j> x_i x_j."""
    score = model.w0 + sum(float(model.w[k]) * x for k, x in zip(keys, values, strict=True))
    for (a, xa), (b, xb) in itertools.combinations(zip(keys, values, strict=True), 2):
        score += float(np.dot(model.v[a], model.v[b])) * xa * xb
    return score


def csr(rows: list[dict[int, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    indptr = np.cumsum([0] + [len(r) for r in rows]).astype(np.int64)
    indices = np.array([k for r in rows for k in r], dtype=np.int64)
    values = np.array([x for r in rows for x in r.values()], dtype=np.float32)
    return indptr, indices, values


# ------------------------------------------------------------------------------------------- prediction


def test_prediction_of_a_hand_computed_row() -> None:
    model = FmModel(0.5, np.array([1.0, 2.0, 3.0]), np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    # x = {0: 1, 2: 2}: 0.5 + (1*1 + 3*2) + <v0, v2> * 1 * 2 = 0.5 + 7 + 1 * 2 = 9.5
    # x = {1: 1, 2: 1}: 0.5 + (2 + 3) + <v1, v2> = 0.5 + 5 + 1 = 6.5; empty row: w0 = 0.5
    scores = predict(model, [0, 2, 4, 4], [0, 2, 1, 2], [1.0, 2.0, 1.0, 1.0])
    np.testing.assert_allclose(scores, [9.5, 6.5, 0.5])


def test_prediction_matches_the_naive_pairwise_loop() -> None:
    rng = np.random.default_rng(3)
    model = FmModel(0.3, rng.normal(size=12), rng.normal(size=(12, 4)))
    rows = [
        {0: 1.0, 5: 1.0, 11: 0.7},
        {3: 2.0},
        {1: 1.0, 2: -0.5, 7: 3.0, 9: 0.25, 10: 1.5},
        {},
        {11: 4.0, 4: 1.0},
    ]
    indptr, indices, values = csr(rows)
    expected = [naive_score(model, list(r), [float(np.float32(x)) for x in r.values()]) for r in rows]
    np.testing.assert_allclose(predict(model, indptr, indices, values), expected, rtol=1e-12)
    # Chunked scoring gives the same numbers.
    np.testing.assert_allclose(predict(model, indptr, indices, values, chunk_rows=2), expected, rtol=1e-12)


def test_prediction_rejects_keys_outside_feature_dim() -> None:
    model = FmModel(0.0, np.zeros(3), np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"feature keys must lie in \[0, 3\)"):
        predict(model, [0, 1], [3], [1.0])
    with pytest.raises(ValueError, match="indptr"):
        predict(model, [0, 2], [1], [1.0])


# -------------------------------------------------------------------------------------------- gradients


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


# ----------------------------------------------------------------------------------------------- training


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

    def records(part: np.ndarray, labels: np.ndarray) -> SparseRecords:
        keys = np.stack([part[:, 0], users + part[:, 1]], 1).reshape(-1).astype(np.int64)
        return SparseRecords(
            np.arange(0, 2 * len(part) + 1, 2, dtype=np.int64),
            keys,
            np.ones(len(keys), np.float32),
            labels,
            dim,
        )

    return records(pairs[:750], y[:750]), records(pairs[750:], y[750:]), dim


FAST = {
    "predictor_type": "regressor",
    "num_factors": 4,
    "epochs": 15,
    "mini_batch_size": 25,
    "bias_lr": 0.03,
    "linear_lr": 0.03,
    "factors_lr": 0.03,
    "factors_init_sigma": 0.1,
}


def test_training_beats_the_global_mean_on_a_planted_low_rank_model() -> None:
    train, test, dim = planted_ratings()
    reports: list[FmProgress] = []
    result = train_fm(train, test, {**FAST, "feature_dim": dim}, seed=1, progress=reports.append)

    global_mean = float(train.labels.mean())
    mean_rmse = float(np.sqrt(np.mean((test.labels - global_mean) ** 2)))
    test_rmse = result.epochs[-1]["test_rmse"]
    assert isinstance(test_rmse, float)
    assert test_rmse < 0.3 * mean_rmse, (test_rmse, mean_rmse)
    assert test_rmse == pytest.approx(rmse(result.model, test))
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


# ---------------------------------------------------------------------------------------- hyperparameters


def test_defaults_are_the_sagemaker_algorithms() -> None:
    hp = fm_hyperparameters({"feature_dim": 178730, "num_factors": 256, "predictor_type": "regressor"})
    assert hp == FmHyperparameters(
        feature_dim=178730,
        num_factors=256,
        predictor_type="regressor",
        epochs=1,
        mini_batch_size=1000,
        clip_gradient=None,
        eps=1e-8,
        rescale_grad=None,
        bias_lr=0.1,
        linear_lr=0.001,
        factors_lr=0.0001,
        bias_wd=0.01,
        linear_wd=0.001,
        factors_wd=0.00001,
        bias_init=Initializer("normal", 0.01),
        linear_init=Initializer("normal", 0.01),
        factors_init=Initializer("normal", 0.001),
    )
    assert hp.as_dict()["factors_init_sigma"] == 0.001


REQUIRED: dict[str, object] = {"feature_dim": 10, "num_factors": 4, "predictor_type": "regressor"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"num_factor": 4}, "unknown Factorization Machines hyperparameter 'num_factor'"),
        ({"feature_dim": None}, "'feature_dim' must be an integer, got None"),
        ({"num_factors": "64"}, "'num_factors' must be an integer, got '64' \\(str\\)"),
        ({"epochs": True}, "'epochs' must be an integer, got True \\(bool\\)"),
        ({"epochs": 0}, "'epochs' must be at least 1, got 0"),
        ({"mini_batch_size": 2.0}, "'mini_batch_size' must be an integer"),
        ({"bias_lr": -0.1}, "'bias_lr' must be at least 0.0, got -0.1"),
        ({"factors_wd": "0.1"}, "'factors_wd' must be a number, got '0.1'"),
        ({"linear_lr": float("nan")}, "'linear_lr' must be finite"),
        ({"eps": 0}, "'eps' must be greater than 0.0, got 0"),
        ({"clip_gradient": -1.0}, "'clip_gradient' must be greater than 0.0"),
        ({"predictor_type": "classifier"}, "'predictor_type' must be one of binary_classifier, regressor"),
        (
            {"predictor_type": "binary_classifier"},
            "'predictor_type' is 'binary_classifier': .* regressors only",
        ),
        ({"factors_init_method": "xavier"}, "'factors_init_method' must be one of normal, uniform, constant"),
        ({"bias_init_method": "uniform"}, "bias_init_scale is required when bias_init_method is uniform"),
        (
            {"linear_init_method": "constant"},
            "linear_init_value is required when linear_init_method is constant",
        ),
    ],
)
def test_bad_hyperparameters_are_named(change: dict[str, object], message: str) -> None:
    with pytest.raises(HyperparameterError, match=message):
        fm_hyperparameters({**REQUIRED, **change})


@pytest.mark.parametrize("missing", ["feature_dim", "num_factors", "predictor_type"])
def test_required_hyperparameters(missing: str) -> None:
    with pytest.raises(HyperparameterError, match=f"'{missing}' is required"):
        fm_hyperparameters({k: v for k, v in REQUIRED.items() if k != missing})


# ------------------------------------------------------------------------------------------------ files


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


def test_training_from_recordio_shards_writes_the_agreed_artifact(tmp_path: Path) -> None:
    train, test, dim = planted_ratings()
    write_shards(tmp_path / "prep" / "train", train, parts=4)
    write_shards(tmp_path / "prep" / "test", test, parts=1)
    hp: dict[str, Any] = {**FAST, "feature_dim": dim, "epochs": 3}

    result = train_from_prep(tmp_path / "prep", tmp_path / "fm", hp, seed=4)

    # The shards hold the same rows as the arrays: the model equals one trained on the arrays directly.
    direct = train_fm(train, test, hp, seed=4)
    np.testing.assert_array_equal(result.model.v, direct.model.v)
    assert result.train_rows == 750 and result.test_rows == 150

    with np.load(tmp_path / "fm" / "model.npz") as npz:
        assert sorted(npz.files) == ["V", "w", "w0"]
        assert npz["w0"].shape == () and npz["w0"].dtype == np.float32
        assert npz["w"].shape == (dim,) and npz["w"].dtype == np.float32
        assert npz["V"].shape == (dim, 4) and npz["V"].dtype == np.float32
    loaded = FmModel.load(tmp_path / "fm" / "model.npz")
    scores = predict(loaded, test.indptr, test.indices, test.values)
    np.testing.assert_allclose(
        scores, predict(result.model, test.indptr, test.indices, test.values), rtol=1e-6
    )

    metrics = json.loads((tmp_path / "fm" / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3]
    assert set(metrics["epochs"][0]) == {"epoch", "train_rmse", "test_rmse"}
    assert metrics["test_rmse"] == metrics["epochs"][-1]["test_rmse"]
    assert metrics["test_rmse"] == pytest.approx(rmse(loaded, test), rel=1e-6)
    assert metrics["hyperparameters"]["num_factors"] == 4
    assert not list((tmp_path / "fm").glob("*.partial"))

    # The local runtime server scores the artifact the same way.
    served = ServedFmModel.load(tmp_path / "fm")
    first = [int(k) for k in test.indices[:2]]
    assert served.scores(first, [1.0, 1.0], [0]) == pytest.approx([scores[0]], rel=1e-5)


def test_missing_shards_are_named(tmp_path: Path) -> None:
    (tmp_path / "prep" / "train").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"no RecordIO shards in .*train"):
        train_from_prep(tmp_path / "prep", tmp_path / "fm", {**REQUIRED})
    (tmp_path / "prep" / "train" / "part-00000.rio").write_bytes(b"not recordio")
    with pytest.raises(ValueError, match=r"part-00000.rio: bad RecordIO magic number"):
        train_from_prep(tmp_path / "prep", tmp_path / "fm", {**REQUIRED})


def test_a_model_file_without_v_is_rejected(tmp_path: Path) -> None:
    np.savez(tmp_path / "model.npz", w0=np.float32(1), w=np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="not an FM model, it lacks V"):
        FmModel.load(tmp_path / "model.npz")
