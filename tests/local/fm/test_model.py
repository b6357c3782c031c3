"""The factorization machine's scores and its file: the FM formula, chunked scoring, SageMaker's artifact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fm.artifact import ArtifactError, inspect_fm_artifact
from fm.ndarray import ndarrays_to_bytes
from local.fm import MODEL_FILE, FmParameters, load_model, predict, save_model
from tests.local.fm.fm_support import csr, naive_score

# ------------------------------------------------------------------------------------------- prediction


def test_prediction_of_a_hand_computed_row() -> None:
    model = FmParameters(0.5, np.array([1.0, 2.0, 3.0]), np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    # x = {0: 1, 2: 2}: 0.5 + (1*1 + 3*2) + <v0, v2> * 1 * 2 = 0.5 + 7 + 1 * 2 = 9.5
    # x = {1: 1, 2: 1}: 0.5 + (2 + 3) + <v1, v2> = 0.5 + 5 + 1 = 6.5; empty row: w0 = 0.5
    scores = predict(model, [0, 2, 4, 4], [0, 2, 1, 2], [1.0, 2.0, 1.0, 1.0])
    np.testing.assert_allclose(scores, [9.5, 6.5, 0.5])


def test_prediction_matches_the_naive_pairwise_loop() -> None:
    rng = np.random.default_rng(3)
    model = FmParameters(0.3, rng.normal(size=12), rng.normal(size=(12, 4)))
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
    model = FmParameters(0.0, np.zeros(3), np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"feature keys must lie in \[0, 3\)"):
        predict(model, [0, 1], [3], [1.0])
    with pytest.raises(ValueError, match="indptr"):
        predict(model, [0, 2], [1], [1.0])


# ------------------------------------------------------------------------------------------------ the file


def test_the_model_file_is_sagemakers_artifact_and_round_trips_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    model = FmParameters(
        0.625, rng.normal(size=12).astype(np.float32), rng.normal(size=(12, 3)).astype(np.float32)
    )
    hyperparameters = {"feature_dim": 12, "num_factors": 3, "predictor_type": "regressor", "epochs": 2}

    path = save_model(tmp_path / "fm", model, {**hyperparameters, "clip_gradient": None})

    assert path == tmp_path / "fm" / MODEL_FILE
    artifact = inspect_fm_artifact(path)
    assert artifact.files == ("symbol.json", "params", "meta.json")
    assert artifact.naming == "w0_w1_v" and artifact.predictor_type == "regressor"
    # The training job's hyperparameters as text, the unset one left out.
    assert artifact.hyperparameters == {
        "epochs": "2",
        "feature_dim": "12",
        "num_factors": "3",
        "predictor_type": "regressor",
    }
    loaded = load_model(tmp_path / "fm")
    assert loaded.w0 == model.w0
    assert loaded.w.dtype == np.float32 and loaded.v.dtype == np.float32
    np.testing.assert_array_equal(loaded.w, model.w)
    np.testing.assert_array_equal(loaded.v, model.v)
    indptr, indices, values = csr([{0: 1.0, 5: 1.0, 11: 0.5}, {3: 2.0, 7: 1.0}])
    np.testing.assert_array_equal(
        predict(loaded, indptr, indices, values), predict(model, indptr, indices, values)
    )
    # The file itself is read too, not only its folder.
    assert load_model(path).w0 == model.w0


def test_scores_in_float64_agree_with_float32_to_float32_precision() -> None:
    rng = np.random.default_rng(8)
    model = FmParameters(
        0.3, rng.normal(size=20).astype(np.float32), rng.normal(size=(20, 4)).astype(np.float32)
    )
    indptr, indices, values = csr([{0: 1.0, 9: 1.0, 19: 0.25}, {4: 1.0, 5: 3.0}])
    wide = predict(model, indptr, indices, values, dtype=np.float64)
    wide_model = FmParameters(model.w0, model.w.astype(np.float64), model.v.astype(np.float64))
    exact = [
        naive_score(wide_model, [0, 9, 19], [1.0, 1.0, 0.25]),
        naive_score(wide_model, [4, 5], [1.0, 3.0]),
    ]
    np.testing.assert_allclose(wide, exact, rtol=1e-12)
    np.testing.assert_allclose(predict(model, indptr, indices, values), exact, rtol=1e-5)


def test_a_model_file_without_v_is_rejected(tmp_path: Path) -> None:
    arrays = {"arg:w0_weight": np.ones(1, np.float32), "arg:w1_weight": np.zeros((3, 1), np.float32)}
    (tmp_path / "params").write_bytes(ndarrays_to_bytes(arrays))
    with pytest.raises(ArtifactError, match="params holds neither FM naming: found w0_weight, w1_weight"):
        load_model(tmp_path / "params")


def test_a_folder_without_a_model_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no FM model at .*model\.tar\.gz"):
        load_model(tmp_path)
