"""The FM model artifact: golden artifacts from MXNet 1.9.1, our writer against MXNet's bytes, bad files.

The golden artifacts and expected.json come from tools/generate_fm_golden.py (MXNet 1.9.1): each is a
Module checkpoint laid out as SageMaker's model.tar.gz, with MXNet's own predictions on a small batch.
"""

from __future__ import annotations

import io
import json
import tarfile
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fm.artifact import (
    ArtifactError,
    FmParameters,
    fm_symbol,
    inspect_fm_artifact,
    read_fm_artifact,
    write_fm_artifact,
)
from fm.ndarray import ndarrays_to_bytes, read_ndarrays

GOLDEN = Path(__file__).parent / "golden"
EXPECTED: dict[str, Any] = json.loads((GOLDEN / "expected.json").read_text())
ARTIFACTS = sorted(EXPECTED["fm_artifacts"])
HYPERPARAMETERS = {"feature_dim": 7, "num_factors": 4, "predictor_type": "regressor", "epochs": 3}


def _model_algo_files(path: Path) -> dict[str, bytes]:
    data = path.read_bytes()
    if path.name == "model.tar.gz":
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            member = tar.extractfile("model_algo-1")
            assert member is not None
            data = member.read()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _zip(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def _tar_gz(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _params(rng: np.random.Generator, d: int = 7, k: int = 4) -> FmParameters:
    return FmParameters(
        w0=0.375,
        w=rng.standard_normal(d, dtype=np.float32),
        v=rng.standard_normal((d, k), dtype=np.float32),
    )


def _predict(p: FmParameters, x: np.ndarray, predictor_type: str) -> np.ndarray:
    x64, v64 = x.astype(np.float64), p.v.astype(np.float64)
    score = p.w0 + x64 @ p.w + 0.5 * (((x64 @ v64) ** 2).sum(axis=1) - (x64**2) @ (v64**2).sum(axis=1))
    out: np.ndarray = score if predictor_type == "regressor" else 1 / (1 + np.exp(-score))
    return out


def _error(source: bytes | Path) -> str:
    with pytest.raises(ArtifactError) as caught:
        read_fm_artifact(source)
    message = str(caught.value)
    assert "\n" not in message
    return message


# ----------------------------------------------------------------------------------------- golden files


@pytest.mark.parametrize("relative", ARTIFACTS)
def test_every_golden_artifact_reads_to_the_parameters_mxnet_saved(relative: str) -> None:
    want = EXPECTED["fm_artifacts"][relative]
    got = inspect_fm_artifact(GOLDEN / relative)
    assert got.naming == want["naming"]
    assert got.v_transposed is want["v_transposed"]
    assert got.predictor_type == want["predictor_type"]
    assert got.hyperparameters == want["hyperparameters"]
    assert sorted(got.files) == sorted(want["files"])
    p = got.parameters
    assert p.w0 == want["w0"]
    assert np.array_equal(p.w, np.array(want["w"], dtype=np.float32))
    assert np.array_equal(p.v, np.array(want["v"], dtype=np.float32))
    assert p.v.flags.c_contiguous
    assert (p.feature_dim, p.num_factors) == (len(want["w"]), len(want["v"][0]))


@pytest.mark.parametrize("relative", ARTIFACTS)
def test_the_parameters_read_predict_what_mxnet_predicted_with_them(relative: str) -> None:
    want = EXPECTED["fm_artifacts"][relative]
    p = read_fm_artifact(GOLDEN / relative)
    ours = _predict(p, np.array(want["batch"], dtype=np.float32), want["predictor_type"])
    np.testing.assert_allclose(ours, want["mxnet_predictions"], rtol=1e-5, atol=1e-6)


def test_the_golden_artifacts_cover_both_namings_and_row_sparse_storage() -> None:
    stored = {r: EXPECTED["fm_artifacts"][r]["stored"] for r in ARTIFACTS}
    assert stored["fm_w0_w1_v_row_sparse/model_algo-1"]["v"] == {"storage": "row_sparse", "shape": [6, 3]}
    assert stored["fm_linear_plus_bias/model.tar.gz"]["v"]["shape"] == [4, 5]  # (num_factors, feature_dim)
    files = _model_algo_files(GOLDEN / "fm_w0_w1_v_row_sparse/model_algo-1")
    (v,) = [a for a in read_ndarrays(files["params"]) if a.name == "arg:v"]
    assert v.sparse is not None and v.sparse.indices.tolist() == [0, 1, 2, 3, 5]  # row 4 is all zeros


def test_our_params_bytes_and_symbol_equal_mxnets_module_checkpoint(tmp_path: Path) -> None:
    want = EXPECTED["fm_artifacts"]["fm_w0_w1_v/model.tar.gz"]
    params = FmParameters(
        w0=want["w0"], w=np.array(want["w"], dtype=np.float32), v=np.array(want["v"], dtype=np.float32)
    )
    write_fm_artifact(tmp_path / "model.tar.gz", params, want["hyperparameters"])
    ours, mxnets = (
        _model_algo_files(tmp_path / "model.tar.gz"),
        _model_algo_files(GOLDEN / "fm_w0_w1_v/model.tar.gz"),
    )
    assert ours["params"] == mxnets["params"]
    assert json.loads(ours["symbol.json"]) == json.loads(mxnets["symbol.json"])
    assert json.loads(ours["meta.json"]) == json.loads(mxnets["meta.json"])
    assert list(ours) == ["symbol.json", "params", "meta.json"]
    assert (
        EXPECTED["checks"]["loftrec_writer"]["regressor"]["params_bytes_equal_module_save_checkpoint"] is True
    )
    assert EXPECTED["checks"]["loftrec_writer"]["binary_classifier"]["symbol_equals_mxnet_tojson"] is True


def test_the_symbol_names_the_label_and_declares_the_shapes() -> None:
    symbol = fm_symbol(10, 3, "binary_classifier")
    variables = {n["name"]: n.get("attrs", {}).get("__shape__") for n in symbol["nodes"] if n["op"] == "null"}
    assert variables == {
        "data": None,
        "w1_weight": "(10, 1)",
        "w0_weight": "(1,)",
        "v": "(10, 3)",
        "out_label": None,
    }
    assert symbol["nodes"][symbol["heads"][0][0]]["op"] == "LogisticRegressionOutput"
    with pytest.raises(ArtifactError, match="predictor_type must be one of regressor, binary_classifier"):
        fm_symbol(10, 3, "multiclass")


# --------------------------------------------------------------------------------------------- writing


def test_write_then_read_from_every_form_gives_the_same_parameters(tmp_path: Path) -> None:
    params = _params(np.random.default_rng(1))
    target = tmp_path / "out" / "model.tar.gz"
    write_fm_artifact(target, params, HYPERPARAMETERS)
    files = _model_algo_files(target)
    with tarfile.open(target) as tar:
        model_algo = tar.extractfile("model_algo-1")
        assert model_algo is not None
        model_algo_bytes = model_algo.read()
    sources: list[Any] = [target, str(target), target.read_bytes(), io.BytesIO(target.read_bytes())]
    sources += [model_algo_bytes, files["params"]]
    for source in sources:
        got = read_fm_artifact(source)
        assert got.w0 == params.w0
        assert np.array_equal(got.w, params.w) and np.array_equal(got.v, params.v)
    details = inspect_fm_artifact(target)
    assert details.hyperparameters == {
        "epochs": "3",
        "feature_dim": "7",
        "num_factors": "4",
        "predictor_type": "regressor",
    }
    assert details.predictor_type == "regressor" and details.naming == "w0_w1_v"
    assert inspect_fm_artifact(files["params"]).files == ("params",)
    assert not list(tmp_path.glob("out/*.partial"))


def test_writing_is_deterministic_and_carries_no_time_or_owner(tmp_path: Path) -> None:
    params = _params(np.random.default_rng(2))
    write_fm_artifact(tmp_path / "a" / "model.tar.gz", params, HYPERPARAMETERS)
    write_fm_artifact(tmp_path / "b" / "model.tar.gz", params, dict(reversed(HYPERPARAMETERS.items())))
    first, second = (
        (tmp_path / "a" / "model.tar.gz").read_bytes(),
        (tmp_path / "b" / "model.tar.gz").read_bytes(),
    )
    assert first == second
    assert first[4:8] == b"\0\0\0\0"  # gzip header mtime
    with tarfile.open(tmp_path / "a" / "model.tar.gz") as tar:
        (member,) = tar.getmembers()
        assert (member.name, member.mtime, member.uid, member.uname, member.mode) == (
            "model_algo-1",
            0,
            0,
            "",
            0o644,
        )
        data = tar.extractfile(member)
        assert data is not None
        with zipfile.ZipFile(io.BytesIO(data.read())) as archive:
            assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
            assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_STORED}


def test_parameters_are_stored_as_float32(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    params = FmParameters(w0=0.5, w=rng.standard_normal(3), v=rng.standard_normal((3, 2)))
    write_fm_artifact(tmp_path / "model.tar.gz", params, {"predictor_type": "binary_classifier"})
    got = inspect_fm_artifact(tmp_path / "model.tar.gz")
    assert got.parameters.w.dtype == np.float32 and got.parameters.v.dtype == np.float32
    assert np.array_equal(got.parameters.v, params.v.astype(np.float32))
    assert got.predictor_type == "binary_classifier"


def test_the_writer_checks_the_hyperparameters_against_the_parameters(tmp_path: Path) -> None:
    params = _params(np.random.default_rng(5))
    target = tmp_path / "model.tar.gz"
    with pytest.raises(
        ArtifactError, match="shape mismatch: hyperparameter feature_dim is 8, the parameters have 7"
    ):
        write_fm_artifact(target, params, {**HYPERPARAMETERS, "feature_dim": 8})
    with pytest.raises(
        ArtifactError, match="predictor_type must be one of regressor, binary_classifier, got None"
    ):
        write_fm_artifact(target, params, {"num_factors": 4})
    with pytest.raises(
        ArtifactError, match="hyperparameter values must be text, numbers or booleans, got list"
    ):
        write_fm_artifact(target, params, {**HYPERPARAMETERS, "epochs": [3]})
    assert not target.exists()


def test_fm_parameters_must_agree() -> None:
    with pytest.raises(ArtifactError, match=r"w has shape \(3,\) and v \(4, 2\)"):
        FmParameters(w0=0.0, w=np.zeros(3, dtype=np.float32), v=np.zeros((4, 2), dtype=np.float32))
    with pytest.raises(ArtifactError, match="must be a float array, got an array of dtype int64"):
        FmParameters(w0=0.0, w=np.zeros(3, dtype=np.int64), v=np.zeros((3, 2), dtype=np.float32))
    with pytest.raises(ArtifactError, match="w0 must be finite"):
        FmParameters(w0=float("nan"), w=np.zeros(3, dtype=np.float32), v=np.zeros((3, 2), dtype=np.float32))


# ------------------------------------------------------------------------------------- V's orientation


def _checkpoint(arrays: dict[str, np.ndarray], **files: bytes) -> bytes:
    return _zip({"params": ndarrays_to_bytes({f"arg:{k}": v for k, v in arrays.items()}), **files})


def test_v_stored_transposed_is_turned_by_which_side_matches_w() -> None:
    rng = np.random.default_rng(6)
    w, v = rng.standard_normal(5, dtype=np.float32), rng.standard_normal((5, 3), dtype=np.float32)
    bias = np.array([0.5], dtype=np.float32)
    stored_as_is = _checkpoint({"w0_weight": bias, "w1_weight": w.reshape(5, 1), "v": v})
    stored_turned = _checkpoint({"w0_weight": bias, "w1_weight": w.reshape(5, 1), "v": v.T})
    for data, transposed in ((stored_as_is, False), (stored_turned, True)):
        got = inspect_fm_artifact(data)
        assert got.v_transposed is transposed
        assert np.array_equal(got.parameters.v, v)


def test_a_square_v_takes_each_namings_orientation() -> None:
    rng = np.random.default_rng(7)
    w, v = rng.standard_normal(3, dtype=np.float32), rng.standard_normal((3, 3), dtype=np.float32)
    bias = np.array([0.5], dtype=np.float32)
    first = inspect_fm_artifact(_checkpoint({"w0_weight": bias, "w1_weight": w.reshape(3, 1), "v": v}))
    assert not first.v_transposed and np.array_equal(first.parameters.v, v)
    second = inspect_fm_artifact(
        _checkpoint({"Linear_Plus_Bias_bias": bias, "Linear_Plus_Bias_weight": w.reshape(1, 3), "v": v})
    )
    assert second.v_transposed and np.array_equal(second.parameters.v, v.T)


def test_the_symbols_declared_shape_decides_and_must_match() -> None:
    rng = np.random.default_rng(8)
    w, v = rng.standard_normal(3, dtype=np.float32), rng.standard_normal((3, 3), dtype=np.float32)
    arrays = {"w0_weight": np.array([0.5], dtype=np.float32), "w1_weight": w.reshape(3, 1), "v": v}
    symbol = json.dumps(fm_symbol(4, 3, "regressor")).encode()
    message = _error(_checkpoint(arrays, **{"symbol.json": symbol}))
    assert message == "shape mismatch: symbol.json declares w1_weight as (4, 1), params holds (3, 1)"


# -------------------------------------------------------------------------------------------- bad files


def test_a_w_and_v_that_disagree_are_a_shape_mismatch() -> None:
    arrays = {
        "w0_weight": np.array([0.5], dtype=np.float32),
        "w1_weight": np.zeros((6, 1), dtype=np.float32),
        "v": np.zeros((5, 3), dtype=np.float32),
    }
    assert _error(_checkpoint(arrays)) == "shape mismatch: w has 6 entries but v is (5, 3): neither side is 6"


def test_meta_json_must_agree_with_the_parameters(tmp_path: Path) -> None:
    write_fm_artifact(tmp_path / "model.tar.gz", _params(np.random.default_rng(9)), HYPERPARAMETERS)
    files = _model_algo_files(tmp_path / "model.tar.gz")
    meta = {"training_parameters": {"feature_dim": "8", "num_factors": 4}}
    message = _error(_zip({**files, "meta.json": json.dumps(meta).encode()}))
    assert message == "shape mismatch: meta.json says feature_dim 8, the parameters have 7"
    meta = {"training_parameters": {"feature_dim": "seven"}}
    assert _error(_zip({**files, "meta.json": json.dumps(meta).encode()})) == (
        "meta.json's feature_dim is 'seven', not a whole number"
    )
    assert _error(_zip({**files, "meta.json": b"{"})).startswith("model_algo-1's meta.json is not JSON: ")


def test_params_without_an_fm_naming_are_named() -> None:
    message = _error(_checkpoint({"weight": np.zeros(3, dtype=np.float32)}))
    assert message == (
        "params holds neither FM naming: found weight; expected w0_weight, w1_weight, v or "
        "Linear_Plus_Bias_bias, Linear_Plus_Bias_weight, v"
    )


@pytest.mark.parametrize("relative", ["fm_w0_w1_v/model.tar.gz", "fm_linear_plus_bias/model.tar.gz"])
def test_a_truncated_model_tar_gz_gives_one_clear_error(relative: str) -> None:
    data = (GOLDEN / relative).read_bytes()
    for end in (2, 10, 100, len(data) // 2, len(data) - 9):
        message = _error(data[:end])
        assert message.startswith("model.tar.gz is damaged or truncated: ") or message.startswith(
            "model.tar.gz holds no model_algo-1"
        ), (end, message)


def test_a_truncated_model_algo_and_a_damaged_params_file_are_named() -> None:
    data = (GOLDEN / "fm_w0_w1_v_row_sparse/model_algo-1").read_bytes()
    assert _error(data[: len(data) // 2]).startswith("model_algo-1 is damaged or truncated: ")
    files = _model_algo_files(GOLDEN / "fm_w0_w1_v_row_sparse/model_algo-1")
    assert _error(_zip({**files, "params": files["params"][:100]})) == (
        "truncated NDArray file: array 0 of 3 needs 20 bytes for its data (5 x float32) at byte 100, "
        "only 0 remain"
    )
    assert _error(_zip({**files, "params": b"\x13" + files["params"][1:]})).startswith(
        "not an MXNet NDArray file: list magic is 0x0000000000000113"
    )


def test_containers_without_the_model_are_named() -> None:
    assert _error(_tar_gz({"other.txt": b"x"})) == "model.tar.gz holds no model_algo-1 (it holds: other.txt)"
    assert _error(_zip({"symbol.json": b"{}"})) == "model_algo-1 holds no params (it holds: symbol.json)"
    assert _error(b"hello world") == (
        "not an FM model artifact: expected model.tar.gz (gzip), model_algo-1 (zip) or an MXNet params file, "
        "found first bytes 68656c6c6f20776f"
    )


# -------------------------------------------------------------------------------------------- at scale


def test_a_58k_by_256_artifact_reads_without_copies_of_v(tmp_path: Path) -> None:
    """At loftrec's scale V is a view of the params bytes read: memory stays within two copies of V.

    bench/fm_artifact.py prints the read time against np.load for the notebook's 178,730 features.
    """
    rng = np.random.default_rng(10)
    d, k = 58_000, 256
    params = FmParameters(
        w0=-0.25, w=rng.standard_normal(d, dtype=np.float32), v=rng.standard_normal((d, k), dtype=np.float32)
    )
    target = tmp_path / "model.tar.gz"
    write_fm_artifact(target, params, {"predictor_type": "regressor"})
    with tarfile.open(target) as tar:
        member = tar.extractfile("model_algo-1")
        assert member is not None
        (tmp_path / "model_algo-1").write_bytes(member.read())
    for source in (target, tmp_path / "model_algo-1"):
        tracemalloc.start()
        got = read_fm_artifact(source)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert np.array_equal(got.v, params.v) and np.array_equal(got.w, params.w) and got.w0 == -0.25
        assert not got.v.flags.owndata  # a view of the bytes read, not a copy
        # model.tar.gz: the unpacked model_algo-1 and the params read from it; model_algo-1: the params.
        copies = 2.5 if source.name == "model.tar.gz" else 1.5
        assert peak < copies * params.v.nbytes, (source.name, peak / params.v.nbytes)
