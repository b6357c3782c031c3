"""predictor_type binary_classifier: logistic loss on labels 0/1, sigmoid scores, the algorithm's metrics."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from fm.artifact import inspect_fm_artifact
from fm.recordio import SparseRecords
from local.fm import (
    FmParameters,
    FmProgress,
    binary_metrics,
    binary_outputs,
    fm_gradients,
    fm_hyperparameters,
    load_model,
    predict,
    records_binary_metrics,
    train_fm,
    train_from_prep,
)
from tests.local.fm.fm_support import FAST, write_shards

BINARY: dict[str, Any] = {**FAST, "predictor_type": "binary_classifier"}


def parity_pairs() -> SparseRecords:
    """Customers 0..9 (keys 0..9) and products 0..9 (keys 10..19): label 1 when customer and product share
    their parity, else 0. Separable by FM's pairwise term (v_u . v_i), not by biases alone: every customer
    and every product has as many 1s as 0s."""
    pairs = [(u, i) for u in range(10) for i in range(10)]
    keys = np.array([k for u, i in pairs for k in (u, 10 + i)], np.int64)
    labels = np.array([float(u % 2 == i % 2) for u, i in pairs], np.float32)
    return SparseRecords(
        np.arange(0, 2 * len(pairs) + 1, 2, dtype=np.int64), keys, np.ones(keys.shape, np.float32), labels, 20
    )


def test_the_hyperparameters_accept_the_binary_classifier() -> None:
    hp = fm_hyperparameters({"feature_dim": 20, "num_factors": 2, "predictor_type": "binary_classifier"})
    assert hp.predictor_type == "binary_classifier"
    assert hp.as_dict()["predictor_type"] == "binary_classifier"


def test_outputs_are_the_sigmoid_and_the_label_at_one_half() -> None:
    score, label = binary_outputs([0.0, math.log(3.0), -math.log(3.0), 40.0])
    np.testing.assert_allclose(score, [0.5, 0.75, 0.25, 1.0])
    assert label.tolist() == [1, 1, 0, 1]


def test_metrics_of_hand_made_outputs() -> None:
    # predicted labels 1, 0, 1, 0 against 1, 1, 0, 0: one true positive, one false positive, one false
    # negative. Cross-entropy per row log(1 + e^z) - y z: 0.126928, 1.313262, 0.974077, 0.048587.
    metrics = binary_metrics(np.array([2.0, -1.0, 0.5, -3.0]), np.array([1.0, 1.0, 0.0, 0.0]))
    assert metrics["binary_classification_accuracy"] == 0.5
    assert metrics["binary_f_beta"] == 0.5  # 2 TP / (2 TP + FP + FN) = 2 / 4
    assert metrics["binary_classification_cross_entropy"] == pytest.approx(0.615713, abs=1e-6)
    perfect = binary_metrics(np.array([3.0, -3.0]), np.array([1.0, 0.0]))
    assert perfect["binary_classification_accuracy"] == 1.0 and perfect["binary_f_beta"] == 1.0
    none = binary_metrics(np.array([-3.0]), np.array([0.0]))  # no positive label, none predicted
    assert none["binary_f_beta"] == 0.0 and none["binary_classification_accuracy"] == 1.0


def test_logistic_loss_and_gradients_of_a_zero_model_written_out() -> None:
    # With every parameter 0 each output is 0 and its sigmoid 0.5: the residuals are 0.5 - y; each row's
    # loss is log 2. Row 0 (key 0, label 1), row 1 (key 1, label 0), row 2 (keys 0 and 1, label 1).
    x = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float64))
    labels = np.array([1.0, 0.0, 1.0])
    g = fm_gradients(0.0, np.zeros(2), np.zeros((2, 1)), x, labels, rescale=0.5, logistic=True)
    assert g.loss == pytest.approx(0.5 * 3 * math.log(2.0))
    assert g.w0 == pytest.approx(0.5 * (-0.5 + 0.5 - 0.5))
    np.testing.assert_allclose(g.w, [0.5 * (-0.5 - 0.5), 0.5 * (0.5 - 0.5)])
    np.testing.assert_allclose(g.v, [[0.0], [0.0]])


def test_logistic_gradients_match_finite_differences() -> None:
    rng = np.random.default_rng(3)
    x = sp.csr_matrix(rng.random((6, 4)) * (rng.random((6, 4)) < 0.6))
    labels = (rng.random(6) < 0.5).astype(np.float64)
    w0, w, v = 0.2, rng.normal(0, 0.5, 4), rng.normal(0, 0.5, (4, 3))
    grads = fm_gradients(w0, w, v, x, labels, rescale=0.25, logistic=True)

    def loss(w0_: float, w_: np.ndarray, v_: np.ndarray) -> float:
        return fm_gradients(w0_, w_, v_, x, labels, rescale=0.25, logistic=True).loss

    h = 1e-6
    assert grads.w0 == pytest.approx((loss(w0 + h, w, v) - loss(w0 - h, w, v)) / (2 * h), abs=1e-6)
    for i in range(4):
        d = np.zeros(4)
        d[i] = h
        assert grads.w[i] == pytest.approx((loss(w0, w + d, v) - loss(w0, w - d, v)) / (2 * h), abs=1e-6)
        for f in range(3):
            e = np.zeros((4, 3))
            e[i, f] = h
            numeric = (loss(w0, w, v + e) - loss(w0, w, v - e)) / (2 * h)
            assert grads.v[i, f] == pytest.approx(numeric, abs=1e-6)


def test_a_separable_toy_problem_is_learned() -> None:
    data = parity_pairs()
    hp = {**BINARY, "feature_dim": 20, "epochs": 60, "mini_batch_size": 10, "factors_init_sigma": 0.5}
    result = train_fm(data, data, hp, seed=1)
    first, last = result.epochs[0], result.epochs[-1]
    assert last["train_binary_classification_accuracy"] == 1.0
    assert last["train_binary_f_beta"] == 1.0
    assert float(last["train_binary_classification_cross_entropy"] or 1.0) < 0.1
    assert (
        float(first["train_binary_classification_cross_entropy"] or 0.0) > 0.5
    )  # near log 2 = 0.69 at first
    assert set(first) == {
        "epoch",
        *(f"{side}_{name}" for side in ("train", "test") for name in BINARY_NAMES),
    }
    score, label = binary_outputs(predict(result.model, data.indptr, data.indices, data.values))
    assert label.tolist() == data.labels.astype(int).tolist()
    assert bool((score[data.labels == 1] > 0.9).all()) and bool((score[data.labels == 0] < 0.1).all())


BINARY_NAMES = ("binary_classification_accuracy", "binary_classification_cross_entropy", "binary_f_beta")


def test_a_label_other_than_0_or_1_is_refused() -> None:
    data = parity_pairs()
    labels = data.labels.copy()
    labels[7] = 4.0
    bad = SparseRecords(data.indptr, data.indices, data.values, labels, 20)
    with pytest.raises(ValueError, match=r"the train data holds label 4: .* needs labels 0 or 1"):
        train_fm(bad, None, {**BINARY, "feature_dim": 20}, seed=0)
    with pytest.raises(ValueError, match="the test data holds label 4"):
        train_fm(data, bad, {**BINARY, "feature_dim": 20}, seed=0)


def test_each_epoch_reports_the_classifier_metrics_and_hands_over_the_model() -> None:
    data = parity_pairs()
    reports: list[FmProgress] = []
    seen: list[tuple[int, float]] = []

    def epoch_end(epoch: int, model: FmParameters) -> None:
        seen.append((epoch, records_binary_metrics(model, data)["binary_classification_cross_entropy"]))

    result = train_fm(
        data,
        None,
        {**BINARY, "feature_dim": 20, "epochs": 3},
        seed=0,
        progress=reports.append,
        epoch_end=epoch_end,
    )
    ends = [r for r in reports if r.train_cross_entropy is not None]
    assert [r.epoch for r in ends] == [1, 2, 3]
    assert all(r.test_cross_entropy is None and r.train_rmse is None for r in ends)
    assert [e for e, _ in seen] == [1, 2, 3]
    got = [row["train_binary_classification_cross_entropy"] for row in result.epochs]
    assert [c for _, c in seen] == got
    assert result.epochs[-1]["test_binary_f_beta"] is None


def test_training_from_shards_records_the_predictor_type(tmp_path: Path) -> None:
    data = parity_pairs()
    write_shards(tmp_path / "prep" / "train", data, parts=2)
    write_shards(tmp_path / "prep" / "validation", data, parts=1)
    hp = {**BINARY, "feature_dim": 20, "epochs": 2}

    result = train_from_prep(tmp_path / "prep", tmp_path / "fm", hp, seed=2)

    artifact = inspect_fm_artifact(tmp_path / "fm" / "model.tar.gz")
    assert artifact.predictor_type == "binary_classifier"
    assert artifact.hyperparameters["predictor_type"] == "binary_classifier"
    metrics = json.loads((tmp_path / "fm" / "metrics.json").read_text())
    assert "test_rmse" not in metrics
    loaded = load_model(tmp_path / "fm")
    expected = records_binary_metrics(loaded, data)
    for name in BINARY_NAMES:
        assert metrics[f"test_{name}"] == expected[name] == result.epochs[-1][f"test_{name}"]
    assert metrics["hyperparameters"]["predictor_type"] == "binary_classifier"
