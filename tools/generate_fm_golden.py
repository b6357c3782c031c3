#!/usr/bin/env python3
"""Write tests/fm/golden/: NDArray files and FM model artifacts made by the real MXNet 1.9.1.

MXNet is retired (1.9.1 is its last release, with wheels up to Python 3.9; it still uses np.bool, which
numpy 1.24 removed), so it lives in a throwaway environment outside the project and never enters its
dependencies:

    ~/.pyenv/versions/3.9.18/bin/python -m venv /work/wt/mxnet39
    /work/wt/mxnet39/bin/pip install mxnet==1.9.1 'numpy<1.24'
    /work/wt/mxnet39/bin/python tools/generate_fm_golden.py [--project-python .venv/bin/python]

What it writes (each a few KB at most), and expected.json with every value they hold:
- dense_v2.params, unnamed_v2.params: ``mx.nd.save`` of dense arrays of every dtype MXNet's Python API
  makes (float32, float64, float16, uint8, int8, int32, int64, bool), with names and without.
- v3_np_shape.params: saved under NumPy shape semantics (``mx.util.np_shape(True)``), which MXNet writes in
  its V3 layout: a 0-d scalar, a zero-size array.
- legacy_v1.params: MXNet 1.9.1 writes only V2/V3, so this one is built here by hand after ndarray.cc's
  ``LegacyLoad`` (a V1 array: int64 shape; a pre-V1 array: uint32 ndim and shape in place of the magic),
  and MXNet itself loads it back to the same values (a check below).
- row_sparse.params, csr.params: MXNet's sparse storage types, including a row_sparse array with no rows.
- fm_w0_w1_v/model.tar.gz, fm_w0_w1_v_row_sparse/model_algo-1, fm_linear_plus_bias/model.tar.gz: the FM
  artifact as SageMaker lays it out, from a Module checkpoint (``Module.save_checkpoint``: symbol.json and
  params with "arg:" names) plus meta.json, zipped as model_algo-1 and tarred as model.tar.gz; the first
  naming (w0_weight, w1_weight (d, 1), v (d, k)) with dense and with row_sparse parameters (the latter kept
  by the Module as row_sparse, a zero row left out), and the Linear_Plus_Bias naming (FullyConnected weight
  (1, d), v stored (k, d)) as a binary classifier. For each, MXNet's own predictions on a small batch.

Checks it runs and records under "checks" in expected.json (it fails if any does not pass):
- MXNet's output is deterministic (the same arrays saved twice give the same bytes);
- MXNet loads the hand-built V1/legacy file to the expected values;
- fm.artifact.fm_symbol equals MXNet's Symbol.tojson() of the same network (both predictor types);
- an artifact written by fm.artifact.write_fm_artifact (run with the project's Python, which has
  numpy 2 and no MXNet) loads with ``mx.module.Module.load`` and predicts, dense and csr, what the FM
  formula gives, and its params bytes equal what Module.save_checkpoint writes for the same arrays.
"""

from __future__ import annotations

import argparse
import gzip
import importlib
import io
import json
import os
import platform
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "fm" / "golden"
LIST_MAGIC, V1_MAGIC = 0x112, 0xF993FAC8
FLAGS = {"float32": 0, "float64": 1}


def _mx() -> Any:
    return importlib.import_module("mxnet")


def _listed(array: np.ndarray) -> Any:
    """Values as JSON: float32/float16 values as the float64 they widen to, exactly."""
    if array.dtype == np.bool_:
        return [bool(x) for x in array.ravel()]
    if array.dtype.kind in "iu":
        return [int(x) for x in array.ravel()]
    return [float(x) for x in array.ravel()]


def _describe(name: Any, array: Any, layout: int) -> dict[str, Any]:
    stype = getattr(array, "stype", "default")
    dense = array.asnumpy() if hasattr(array, "asnumpy") else array
    entry: dict[str, Any] = {
        "name": name,
        "storage": stype,
        "layout": layout,
        "dtype": str(dense.dtype),
        "shape": list(dense.shape),
        "values": _listed(dense),
    }
    if stype == "row_sparse":
        entry["stored"] = {"data": _listed(array.data.asnumpy()), "indices": _listed(array.indices.asnumpy())}
    elif stype == "csr":
        entry["stored"] = {
            "data": _listed(array.data.asnumpy()),
            "indices": _listed(array.indices.asnumpy()),
            "indptr": _listed(array.indptr.asnumpy()),
        }
    return entry


def _save(path: Path, data: Any) -> bytes:
    """mx.nd.save, twice, checking that MXNet writes the same bytes each time."""
    mx = _mx()
    mx.nd.save(str(path), data)
    first = path.read_bytes()
    mx.nd.save(str(path), data)
    if path.read_bytes() != first:
        raise SystemExit(f"mx.nd.save is not deterministic for {path.name}")
    return first


def ndarray_files(out: Path, rng: np.random.RandomState) -> dict[str, Any]:
    mx = _mx()
    files: dict[str, Any] = {}
    dense: dict[str, np.ndarray] = {
        "f32": rng.standard_normal((2, 3)).astype(np.float32),
        "f64": rng.standard_normal(3),
        "f16": rng.standard_normal((2, 2)).astype(np.float16),
        "u8": np.array([0, 7, 255, 128], dtype=np.uint8),
        "i8": np.array([-128, -1, 127], dtype=np.int8),
        "i32": np.array([[-(2**31), 5], [2**31 - 1, 0]], dtype=np.int32),
        "i64": np.array([-(2**62), 2**53 + 1, 42], dtype=np.int64),
        "bool": np.array([True, False, True]),
        "f32_3d": rng.standard_normal((2, 1, 3)).astype(np.float32),
    }
    nds = {name: mx.nd.array(a, dtype=a.dtype) for name, a in dense.items()}
    _save(out / "dense_v2.params", nds)
    files["dense_v2.params"] = [_describe(n, a, 2) for n, a in nds.items()]

    unnamed = [mx.nd.array(rng.standard_normal(2).astype(np.float32)), mx.nd.array([7, -7], dtype="int64")]
    _save(out / "unnamed_v2.params", unnamed)
    files["unnamed_v2.params"] = [_describe(None, a, 2) for a in unnamed]

    with mx.util.np_shape(True):
        v3 = {
            "scalar": mx.nd.array(np.array(3.5, dtype=np.float32)),
            "empty": mx.nd.zeros((2, 0)),
            "m": mx.nd.array(rng.standard_normal((2, 2)), dtype="float64"),
        }
        _save(out / "v3_np_shape.params", v3)
        files["v3_np_shape.params"] = [_describe(n, a, 3) for n, a in v3.items()]

    rs_values = rng.standard_normal((2, 2)).astype(np.float32)
    sparse_rs = {
        "rs": mx.nd.sparse.row_sparse_array((rs_values, np.array([1, 3])), shape=(5, 2)),
        "rs_no_rows": mx.nd.sparse.zeros("row_sparse", (3, 2)),
        "rs_f64": mx.nd.sparse.row_sparse_array(
            (rng.standard_normal((1, 3)), np.array([0])), shape=(2, 3), dtype="float64"
        ),
    }
    _save(out / "row_sparse.params", sparse_rs)
    files["row_sparse.params"] = [_describe(n, a, 2) for n, a in sparse_rs.items()]

    csr_values = rng.standard_normal(4).astype(np.float32)
    sparse_csr = {
        "csr": mx.nd.sparse.csr_matrix(
            (csr_values, np.array([0, 2, 1, 3]), np.array([0, 2, 2, 4])), shape=(3, 4)
        ),
        "csr_empty_rows": mx.nd.sparse.csr_matrix(
            (np.array([1.5], dtype=np.float32), np.array([2]), np.array([0, 0, 1, 1])), shape=(3, 5)
        ),
    }
    _save(out / "csr.params", sparse_csr)
    files["csr.params"] = [_describe(n, a, 2) for n, a in sparse_csr.items()]

    # Built by hand after ndarray.cc's LegacyLoad: MXNet 1.9.1 reads these layouts but no longer writes them.
    v1 = rng.standard_normal((2, 2)).astype(np.float32)
    legacy = rng.standard_normal(3)
    raw = struct.pack("<QQQ", LIST_MAGIC, 0, 2)
    raw += struct.pack("<Ii2qiii", V1_MAGIC, 2, *v1.shape, 1, 0, FLAGS["float32"]) + v1.tobytes()
    raw += struct.pack("<II", 1, 3) + struct.pack("<iii", 1, 0, FLAGS["float64"]) + legacy.tobytes()
    raw += struct.pack("<Q", 2)
    for name in ("v1", "pre_v1"):
        raw += struct.pack("<Q", len(name)) + name.encode()
    (out / "legacy_v1.params").write_bytes(raw)
    loaded = mx.nd.load(str(out / "legacy_v1.params"))
    if not (
        sorted(loaded) == ["pre_v1", "v1"]
        and np.array_equal(loaded["v1"].asnumpy(), v1)
        and np.array_equal(loaded["pre_v1"].asnumpy(), legacy)
    ):
        raise SystemExit("MXNet does not load the hand-built legacy_v1.params to the values written")
    files["legacy_v1.params"] = [_describe("v1", v1, 1), _describe("pre_v1", legacy, 0)]
    return files


# ------------------------------------------------------------------------------------------------ FM


def fm_network(
    feature_dim: int, num_factors: int, predictor_type: str, naming: str, stype: str | None = None
) -> Any:
    """The FM network, both namings. Variable and op names are fixed so that the JSON is reproducible."""
    mx = _mx()
    sym = mx.sym
    sparse: dict[str, Any] = {} if stype is None else {"stype": stype}
    x = sym.Variable("data", **({"stype": "csr"} if stype else {}))
    if naming == "w0_w1_v":
        w1 = sym.Variable("w1_weight", shape=(feature_dim, 1), **sparse)
        w0 = sym.Variable("w0_weight", shape=(1,))
        linear = sym.broadcast_add(sym.dot(x, w1, name="linear_dot"), w0, name="linear")
        v = sym.Variable("v", shape=(feature_dim, num_factors), **sparse)
        xv = sym.dot(x, v, name="xv")
        xv_squared_sum = sym.sum(
            sym.square(xv, name="xv_squared"), axis=1, keepdims=True, name="xv_squared_sum"
        )
        v_squared_sum = sym.sum(sym.square(v, name="v_squared"), axis=1, keepdims=True, name="v_squared_sum")
        x2v2 = sym.dot(sym.square(x, name="x_squared"), v_squared_sum, name="x2v2")
    else:
        linear = sym.FullyConnected(data=x, num_hidden=1, name="Linear_Plus_Bias")
        v = sym.Variable("v", shape=(num_factors, feature_dim))
        xv = sym.dot(x, v, transpose_b=True, name="xv")
        xv_squared_sum = sym.sum(
            sym.square(xv, name="xv_squared"), axis=1, keepdims=True, name="xv_squared_sum"
        )
        v_squared_sum = sym.sum(sym.square(v, name="v_squared"), axis=0, name="v_squared_sum")
        x2v2 = sym.dot(
            sym.square(x, name="x_squared"),
            sym.reshape(v_squared_sum, shape=(-1, 1), name="v_col"),
            name="x2v2",
        )
    difference = sym.elemwise_sub(xv_squared_sum, x2v2, name="pair_diff")
    pairwise = sym._internal._mul_scalar(difference, scalar=0.5, name="pairwise")
    score = sym.elemwise_add(linear, pairwise, name="score")
    label = sym.Variable("out_label")
    if predictor_type == "regressor":
        return sym.LinearRegressionOutput(data=score, label=label, name="out")
    return sym.LogisticRegressionOutput(data=score, label=label, name="out")


def _module(network: Any, arg_params: dict[str, Any], batch: int, feature_dim: int) -> Any:
    mx = _mx()
    module = mx.mod.Module(network, data_names=["data"], label_names=["out_label"], context=mx.cpu())
    module.bind(
        data_shapes=[("data", (batch, feature_dim))],
        label_shapes=[("out_label", (batch, 1))],
        for_training=False,
    )
    module.init_params(arg_params=arg_params, allow_missing=False)
    return module


def _predict(module: Any, x: np.ndarray, csr: bool) -> np.ndarray:
    mx = _mx()
    data = mx.nd.array(x)
    batch = mx.io.DataBatch(data=[data.tostype("csr") if csr else data], label=None)
    module.forward(batch, is_train=False)
    out: np.ndarray = module.get_outputs()[0].asnumpy().ravel()
    return out


def _fm_formula(w0: float, w: np.ndarray, v: np.ndarray, x: np.ndarray, predictor_type: str) -> np.ndarray:
    x64, v64 = x.astype(np.float64), v.astype(np.float64)
    score = w0 + x64 @ w + 0.5 * (((x64 @ v64) ** 2).sum(axis=1) - (x64**2) @ (v64**2).sum(axis=1))
    out: np.ndarray = score if predictor_type == "regressor" else 1.0 / (1.0 + np.exp(-score))
    return out


def _batch(feature_dim: int) -> np.ndarray:
    """Rows like loftrec's: one-hot user, one-hot item, a time feature in 0..1; a row touching feature 4."""
    x = np.zeros((4, feature_dim), dtype=np.float32)
    for row, (user, item, t) in enumerate(
        [(0, 3, 0.5), (1, 4, 0.25), (2, feature_dim - 1, 1.0), (0, 4, 0.0)]
    ):
        x[row, user] = 1.0
        x[row, item] = 1.0
        x[row, feature_dim - 2] = t
    return x


def _model_algo(checkpoint: Path, meta: dict[str, Any], order: list[str], compression: int) -> bytes:
    """model_algo-1 from a Module checkpoint, as public loaders unpack it (symbol.json, params, meta.json)."""
    contents = {
        "symbol.json": (checkpoint.parent / f"{checkpoint.name}-symbol.json").read_bytes(),
        "params": (checkpoint.parent / f"{checkpoint.name}-0000.params").read_bytes(),
        "meta.json": json.dumps(meta, indent=2).encode(),
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as archive:
        for name in order:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = compression
            archive.writestr(info, contents[name])
    return out.getvalue()


def _tar_gz(path: Path, model_algo: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    info = tarfile.TarInfo("model_algo-1")
    info.size, info.mtime = len(model_algo), 1577836800
    raw = path.open("wb")
    compressed = gzip.GzipFile("", "wb", fileobj=raw, mtime=info.mtime)
    with raw, compressed, tarfile.open(fileobj=compressed, mode="w") as tar:
        tar.addfile(info, io.BytesIO(model_algo))


def fm_artifacts(out: Path, rng: np.random.RandomState, work: Path) -> dict[str, Any]:
    mx = _mx()
    artifacts: dict[str, Any] = {}
    cases = [
        ("fm_w0_w1_v/model.tar.gz", "w0_w1_v", "regressor", None, 6, 3),
        ("fm_w0_w1_v_row_sparse/model_algo-1", "w0_w1_v", "regressor", "row_sparse", 6, 3),
        ("fm_linear_plus_bias/model.tar.gz", "linear_plus_bias", "binary_classifier", None, 5, 4),
    ]
    for relative, naming, predictor, stype, d, k in cases:
        w0 = np.float32(rng.standard_normal() * 0.5)
        w = (rng.standard_normal(d) * 0.3).astype(np.float32)
        v = (rng.standard_normal((d, k)) * 0.3).astype(np.float32)
        if stype:
            w[4], v[4] = 0.0, 0.0  # a feature no batch touched: row_sparse leaves it out
        if naming == "w0_w1_v":
            params = {"w1_weight": w.reshape(d, 1), "w0_weight": np.array([w0]), "v": v}
        else:
            params = {
                "Linear_Plus_Bias_weight": w.reshape(1, d),
                "Linear_Plus_Bias_bias": np.array([w0]),
                "v": v.T,
            }
        arg_params = {
            name: mx.nd.array(a, dtype="float32").tostype(stype)
            if stype and a.shape[0] == d
            else mx.nd.array(a)
            for name, a in params.items()
        }
        x = _batch(d)
        module = _module(fm_network(d, k, predictor, naming, stype), arg_params, len(x), d)
        prefix = work / relative.replace("/", "_")
        module.save_checkpoint(str(prefix), 0)
        saved = mx.nd.load(f"{prefix}-0000.params")
        mxnet_out = _predict(module, x, csr=stype is not None)
        expected = _fm_formula(float(w0), w, v, x, predictor)
        if not np.allclose(mxnet_out, expected, rtol=1e-5, atol=1e-6):
            raise SystemExit(
                f"{relative}: MXNet's predictions {mxnet_out} differ from the FM formula {expected}"
            )
        hyperparameters = {
            "feature_dim": str(d),
            "num_factors": str(k),
            "predictor_type": predictor,
            "epochs": "3",
            "mini_batch_size": "1000",
        }
        order = (
            ["symbol.json", "params", "meta.json"]
            if naming == "w0_w1_v"
            else ["meta.json", "params", "symbol.json"]
        )
        compression = zipfile.ZIP_STORED if stype else zipfile.ZIP_DEFLATED
        model_algo = _model_algo(prefix, {"training_parameters": hyperparameters}, order, compression)
        target = out / relative
        if relative.endswith("model.tar.gz"):
            _tar_gz(target, model_algo)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(model_algo)
        artifacts[relative] = {
            "naming": naming,
            "predictor_type": predictor,
            "v_transposed": naming == "linear_plus_bias",
            "files": order,
            "hyperparameters": hyperparameters,
            "stored": {
                name.removeprefix("arg:"): {"storage": a.stype, "shape": list(a.shape)}
                for name, a in saved.items()
            },
            "w0": float(w0),
            "w": _listed(w),
            "v": [_listed(row) for row in v],
            "batch": [_listed(row) for row in x],
            "mxnet_predictions": _listed(mxnet_out),
        }
    return artifacts


# ------------------------------------------------------------------------------- loftrec's writer, checked


def write_with_loftrec(npz: Path, target: Path) -> None:
    """(Run with the project's Python.) Write an artifact with fm.artifact from arrays in an .npz."""
    sys.path.insert(0, str(ROOT))
    artifact = importlib.import_module("fm.artifact")
    with np.load(npz) as arrays:
        params = artifact.FmParameters(w0=float(arrays["w0"]), w=arrays["w"], v=arrays["v"])
        hyperparameters = json.loads(str(arrays["hyperparameters"]))
    artifact.write_fm_artifact(target, params, hyperparameters)
    symbols = {
        p: artifact.fm_symbol(params.feature_dim, params.num_factors, p) for p in artifact.PREDICTOR_TYPES
    }
    target.with_suffix(".symbols.json").write_text(json.dumps(symbols))


def check_loftrec_writer(project_python: Path, rng: np.random.RandomState, work: Path) -> dict[str, Any]:
    mx = _mx()
    d, k = 7, 4
    w0 = np.float32(0.375)
    w = (rng.standard_normal(d) * 0.3).astype(np.float32)
    v = (rng.standard_normal((d, k)) * 0.3).astype(np.float32)
    checks: dict[str, Any] = {}
    for predictor in ("regressor", "binary_classifier"):
        npz, target = work / f"loftrec-{predictor}.npz", work / f"loftrec-{predictor}" / "model.tar.gz"
        hyperparameters = {"feature_dim": d, "num_factors": k, "predictor_type": predictor, "epochs": 3}
        np.savez(npz, w0=w0, w=w, v=v, hyperparameters=json.dumps(hyperparameters))
        subprocess.run(
            [str(project_python), str(Path(__file__).resolve()), "--loftrec-writer", str(npz), str(target)],
            check=True,
            cwd=ROOT,
        )
        unpacked = target.parent / "unpacked"
        with tarfile.open(target) as tar:
            tar.extractall(unpacked)
        with zipfile.ZipFile(unpacked / "model_algo-1") as archive:
            archive.extractall(unpacked)
        os.rename(unpacked / "symbol.json", unpacked / "model-symbol.json")
        os.rename(unpacked / "params", unpacked / "model-0000.params")
        module = mx.module.Module.load(str(unpacked / "model"), 0, False, label_names=["out_label"])
        arg = module._arg_params
        if not (
            sorted(arg) == ["v", "w0_weight", "w1_weight"]
            and np.array_equal(arg["v"].asnumpy(), v)
            and np.array_equal(arg["w1_weight"].asnumpy(), w.reshape(d, 1))
            and np.array_equal(arg["w0_weight"].asnumpy(), np.array([w0]))
        ):
            raise SystemExit(f"Module.load of loftrec's {predictor} artifact gives other parameters")
        x = _batch(d)
        module.bind(
            data_shapes=[("data", x.shape)], label_shapes=[("out_label", (len(x), 1))], for_training=False
        )
        expected = _fm_formula(float(w0), w, v, x, predictor)
        errors = []
        for csr in (False, True):
            predicted = _predict(module, x, csr)
            errors.append(float(np.max(np.abs(predicted - expected))))
            if not np.allclose(predicted, expected, rtol=1e-5, atol=1e-6):
                raise SystemExit(
                    f"MXNet's predictions from loftrec's {predictor} artifact are wrong: {predicted}"
                )
        ours = json.loads(target.with_suffix(".symbols.json").read_text())[predictor]
        if ours != json.loads(fm_network(d, k, predictor, "w0_w1_v").tojson()):
            raise SystemExit(f"fm.artifact.fm_symbol({predictor!r}) differs from MXNet's tojson()")
        reference = work / f"reference-{predictor}"
        arg_params = {
            "w1_weight": mx.nd.array(w.reshape(d, 1)),
            "w0_weight": mx.nd.array([w0]),
            "v": mx.nd.array(v),
        }
        _module(fm_network(d, k, predictor, "w0_w1_v"), arg_params, len(x), d).save_checkpoint(
            str(reference), 0
        )
        if (unpacked / "model-0000.params").read_bytes() != Path(f"{reference}-0000.params").read_bytes():
            raise SystemExit(f"loftrec's params differ from Module.save_checkpoint's for {predictor}")
        checks[predictor] = {
            "module_load_gives_the_parameters": True,
            "symbol_equals_mxnet_tojson": True,
            "params_bytes_equal_module_save_checkpoint": True,
            "max_abs_error_dense_and_csr": errors,
        }
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--project-python", type=Path, default=ROOT / ".venv" / "bin" / "python")
    parser.add_argument("--output", type=Path, default=GOLDEN)
    parser.add_argument(
        "--loftrec-writer", nargs=2, type=Path, metavar=("NPZ", "TARGET"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.loftrec_writer:
        write_with_loftrec(*args.loftrec_writer)
        return 0
    mx = _mx()
    out: Path = args.output
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    rng = np.random.RandomState(20260101)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        expected = {
            "generator": "tools/generate_fm_golden.py",
            "mxnet_version": mx.__version__,
            "numpy_version": np.__version__,
            "python_version": platform.python_version(),
            "ndarray_files": ndarray_files(out, rng),
            "fm_artifacts": fm_artifacts(out, rng, work),
            "checks": {
                "mx_nd_save_is_deterministic": True,
                "mxnet_loads_hand_built_v1_and_legacy": True,
                "mxnet_predictions_match_fm_formula": True,
                "loftrec_writer": check_loftrec_writer(args.project_python, rng, work),
            },
        }
    (out / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    for path in sorted(out.rglob("*")):
        if path.is_file():
            print(f"{path.stat().st_size:>7,} {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
