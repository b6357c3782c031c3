"""SageMaker Factorization Machines' model artifact, read and written without MXNet.

What the training job leaves in S3 (``<output>/<job>/output/model.tar.gz``) is a gzip tar holding one file,
``model_algo-1``: a zip of an MXNet Module checkpoint, ``symbol.json`` (the network) and ``params`` (an
NDArray list file, see fm/ndarray.py, names ``arg:<parameter>``), plus ``meta.json`` (the training
job's hyperparameters under ``training_parameters``). Public code that loads it unzips model_algo-1, renames
symbol.json and params to ``model-symbol.json`` and ``model-0000.params`` and calls
``mx.module.Module.load("model", 0, False, label_names=["out_label"])`` (the AWS workshop notebook that
loftrec grows out of; the AWS ML blog "Extending Amazon SageMaker factorization machines algorithm to
predict top x recommendations"). Two namings of the parameters are seen in such code:

    w0_weight (1,)   w1_weight (feature_dim, 1)   v (feature_dim, num_factors)
    Linear_Plus_Bias_bias (1,)   Linear_Plus_Bias_weight (1, feature_dim)   v (num_factors, feature_dim)

(a public loader that reads both uses v as stored under the first naming and transposed under the second,
and the first is the one the workshop notebook reads). Reading takes either naming, from model.tar.gz,
from the extracted model_algo-1 or from a bare params file, and gives V as (feature_dim, num_factors):
turned when its columns rather than its rows match w's length, and by the naming's convention when both
do (feature_dim == num_factors). Shapes declared in symbol.json and feature_dim and num_factors in
meta.json, when present, must agree with the parameters.

Writing produces the first naming in the same layout, with a symbol that MXNet 1.9.1 loads and runs
(checked by tools/generate_fm_golden.py): params hold ``arg:w1_weight``, ``arg:w0_weight``, ``arg:v`` in the
order Module.save_checkpoint writes them, as float32 (the algorithm's dtype), in MXNet's bytes; meta.json
holds the hyperparameters as text, the form CreateTrainingJob takes them in (HyperParameters is a map of
strings: https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateTrainingJob.html). No public
source shows what else the algorithm's meta.json holds, or how it compresses the zip and the tar: here the
zip is stored uncompressed and the tar gzipped at gzip's default level. The bytes depend on the arrays and
hyperparameters only: fixed times, owners and modes in the zip, the tar and the gzip header.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import re
import struct
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, Literal

import numpy as np
import numpy.typing as npt

from fm.ndarray import LIST_MAGIC, ArtifactError, read_ndarrays, write_ndarrays

__all__ = [
    "MODEL_MEMBER",
    "ArtifactError",
    "FmArtifact",
    "FmParameters",
    "fm_symbol",
    "inspect_fm_artifact",
    "read_fm_artifact",
    "write_fm_artifact",
]

Floats = npt.NDArray[np.floating[Any]]
Naming = Literal["w0_w1_v", "linear_plus_bias"]

MODEL_MEMBER = "model_algo-1"
SYMBOL_FILE = "symbol.json"
PARAMS_FILE = "params"
META_FILE = "meta.json"
PREDICTOR_TYPES = {"regressor": "LinearRegressionOutput", "binary_classifier": "LogisticRegressionOutput"}
_OUTPUT_OPS = {op: predictor for predictor, op in PREDICTOR_TYPES.items()}
_NAMINGS: dict[Naming, tuple[str, str, str]] = {
    # bias, linear weights, factors
    "w0_w1_v": ("w0_weight", "w1_weight", "v"),
    "linear_plus_bias": ("Linear_Plus_Bias_bias", "Linear_Plus_Bias_weight", "v"),
}
# How each naming stores V when its shape alone cannot tell (feature_dim == num_factors).
_V_TRANSPOSED: dict[Naming, bool] = {"w0_w1_v": False, "linear_plus_bias": True}
_MXNET_VERSION = 10901  # 1.9.1, the last release, in symbol.json's attrs
_GZIP_LEVEL = 6  # gzip's own default, what `tar czf` uses
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
_FILE_MODE = 0o644


@dataclass(frozen=True)
class FmParameters:
    """A factorization machine: y = w0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j.

    w is (feature_dim,), v is (feature_dim, num_factors). Arrays read from a file may be read-only views of
    the bytes read.
    """

    w0: float
    w: Floats
    v: Floats

    def __post_init__(self) -> None:
        for name, array in (("w", self.w), ("v", self.v)):
            if not isinstance(array, np.ndarray) or array.dtype.kind != "f":
                raise ArtifactError(f"FM parameter {name} must be a float array, got {_describe(array)}")
        if self.w.ndim != 1 or self.v.ndim != 2 or self.v.shape[0] != self.w.shape[0]:
            raise ArtifactError(
                f"FM parameters disagree: w has shape {self.w.shape} and v {self.v.shape}, expected "
                "(feature_dim,) and (feature_dim, num_factors)"
            )
        if not math.isfinite(self.w0):
            raise ArtifactError(f"FM parameter w0 must be finite, got {self.w0}")

    @property
    def feature_dim(self) -> int:
        return int(self.w.shape[0])

    @property
    def num_factors(self) -> int:
        return int(self.v.shape[1])


@dataclass(frozen=True)
class FmArtifact:
    """What a model artifact holds: the parameters and what was found around them."""

    parameters: FmParameters
    naming: Naming
    v_transposed: bool  # V was stored as (num_factors, feature_dim)
    predictor_type: str | None  # from meta.json, else from the symbol's output; None if neither says
    hyperparameters: dict[str, Any]  # meta.json's training_parameters as stored; {} without meta.json
    files: tuple[str, ...]  # the files of model_algo-1 (("params",) for a bare params file)


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of dtype {value.dtype}"
    return type(value).__name__


# ------------------------------------------------------------------------------------------------ reading


def _open(source: Path | str | bytes | BinaryIO) -> BinaryIO:
    if isinstance(source, bytes | bytearray | memoryview):
        return io.BytesIO(source)
    if isinstance(source, Path | str):
        return Path(source).open("rb")
    if not source.seekable():
        return io.BytesIO(source.read())
    return source


def _tar_member(stream: IO[bytes] | gzip.GzipFile) -> dict[str, bytes]:
    """The files of the model_algo-1 that a tar holds."""
    with tarfile.open(fileobj=stream, mode="r:") as tar:
        names = []
        for member in tar:
            names.append(member.name)
            if member.name.removeprefix("./") == MODEL_MEMBER and member.isfile():
                extracted = tar.extractfile(member)
                assert extracted is not None  # a regular file always extracts
                return _model_files(io.BytesIO(extracted.read()))
    raise ArtifactError(f"model.tar.gz holds no {MODEL_MEMBER} (it holds: {', '.join(names) or 'nothing'})")


def _model_files(stream: BinaryIO) -> dict[str, bytes]:
    """The files of model_algo-1 (or {"params": ...} for a bare params file), found by their first bytes."""
    start = stream.tell()
    head = stream.read(512)
    stream.seek(start)
    try:
        if head.startswith(b"\x1f\x8b"):
            with gzip.GzipFile(fileobj=stream, mode="rb") as unzipped:
                files = _tar_member(unzipped)
                while unzipped.read(1 << 20):  # to the end, so that gzip checks its length and CRC
                    pass
            return files
        if head[257:262] == b"ustar":
            return _tar_member(stream)
        if head.startswith(b"PK\x03\x04"):
            with zipfile.ZipFile(stream) as archive:
                entries = archive.namelist()
                if PARAMS_FILE not in entries:
                    raise ArtifactError(
                        f"{MODEL_MEMBER} holds no {PARAMS_FILE} (it holds: {', '.join(entries) or 'nothing'})"
                    )
                wanted = (SYMBOL_FILE, PARAMS_FILE, META_FILE)
                return {name: archive.read(name) for name in wanted if name in entries}
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, gzip.BadGzipFile) as e:
        kind = MODEL_MEMBER if head.startswith(b"PK") else "model.tar.gz"
        raise ArtifactError(f"{kind} is damaged or truncated: {e}") from None
    if len(head) >= 8 and struct.unpack("<Q", head[:8])[0] == LIST_MAGIC:
        return {PARAMS_FILE: stream.read()}
    raise ArtifactError(
        "not an FM model artifact: expected model.tar.gz (gzip), model_algo-1 (zip) or an MXNet params file, "
        f"found first bytes {head[:8].hex() or 'none (empty input)'}"
    )


def _json_file(files: Mapping[str, bytes], name: str) -> Any:
    if name not in files:
        return None
    try:
        return json.loads(files[name])
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArtifactError(f"{MODEL_MEMBER}'s {name} is not JSON: {e}") from None


def _as_int(value: object, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        return int(value)
    raise ArtifactError(f"{where} is {value!r}, not a whole number")


def _symbol_shapes(symbol: Any) -> tuple[dict[str, tuple[int, ...]], str | None]:
    """The declared shapes of symbol.json's variables, and the predictor type its output names."""
    if symbol is None:
        return {}, None
    nodes = symbol.get("nodes") if isinstance(symbol, dict) else None
    if not isinstance(nodes, list) or not all(isinstance(n, dict) for n in nodes):
        raise ArtifactError(f"{MODEL_MEMBER}'s {SYMBOL_FILE} is not an MXNet symbol: it has no list of nodes")
    shapes: dict[str, tuple[int, ...]] = {}
    for node in nodes:
        # MXNet >= 1.0 writes "attrs"; earlier versions wrote "attr" (or "param").
        attrs = node.get("attrs") or node.get("attr") or node.get("param") or {}
        declared = attrs.get("__shape__") if isinstance(attrs, dict) else None
        if node.get("op") == "null" and isinstance(declared, str):
            dims = re.findall(r"-?\d+", declared)
            shapes[str(node.get("name"))] = tuple(int(d) for d in dims)
    heads = symbol.get("heads")
    predictor = None
    if isinstance(heads, list) and heads and isinstance(heads[0], list) and heads[0]:
        index = heads[0][0]
        if isinstance(index, int) and 0 <= index < len(nodes):
            predictor = _OUTPUT_OPS.get(str(nodes[index].get("op")))
    return shapes, predictor


def _parameter_arrays(params: bytes) -> dict[str, npt.NDArray[Any]]:
    arrays: dict[str, npt.NDArray[Any]] = {}
    for i, saved in enumerate(read_ndarrays(params)):
        if saved.name is None:
            raise ArtifactError(f"{PARAMS_FILE} has no names (array {i} is unnamed): not a Module checkpoint")
        name = saved.name.removeprefix("arg:").removeprefix("aux:")
        if name in arrays:
            raise ArtifactError(f"{PARAMS_FILE} holds {name!r} twice")
        arrays[name] = saved.value
    return arrays


def _naming(arrays: Mapping[str, object]) -> Naming:
    for naming, names in _NAMINGS.items():
        if all(n in arrays for n in names):
            return naming
    expected = " or ".join(", ".join(names) for names in _NAMINGS.values())
    raise ArtifactError(
        f"{PARAMS_FILE} holds neither FM naming: found {', '.join(sorted(arrays)) or 'no arrays'}; "
        f"expected {expected}"
    )


def _float_array(arrays: Mapping[str, npt.NDArray[Any]], name: str) -> Floats:
    array = arrays[name]
    if array.dtype.kind != "f":
        raise ArtifactError(f"FM parameter {name} has dtype {array.dtype}, expected a float dtype")
    return array


def _orient_v(
    v: Floats, feature_dim: int, naming: Naming, declared: tuple[int, ...] | None
) -> tuple[Floats, bool]:
    """V as (feature_dim, num_factors), and whether it was stored transposed."""
    if v.ndim != 2:
        raise ArtifactError(f"shape mismatch: FM parameter v has shape {v.shape}, expected a matrix")
    if declared is not None and declared != v.shape:
        raise ArtifactError(
            f"shape mismatch: {SYMBOL_FILE} declares v as {declared}, {PARAMS_FILE} holds {v.shape}"
        )
    rows_fit, columns_fit = v.shape[0] == feature_dim, v.shape[1] == feature_dim
    if not rows_fit and not columns_fit:
        raise ArtifactError(
            f"shape mismatch: w has {feature_dim:,} entries but v is {v.shape}: "
            f"neither side is {feature_dim:,}"
        )
    transposed = _V_TRANSPOSED[naming] if rows_fit and columns_fit else columns_fit
    if not transposed:
        return v, False
    return np.ascontiguousarray(v.T), True


def inspect_fm_artifact(source: Path | str | bytes | BinaryIO) -> FmArtifact:
    """Read an FM model: model.tar.gz, its model_algo-1, or a bare params file (path, bytes or file)."""
    stream = _open(source)
    try:
        files = _model_files(stream)
    finally:
        if stream is not source:
            stream.close()
    arrays = _parameter_arrays(files[PARAMS_FILE])
    naming = _naming(arrays)
    bias_name, linear_name, factors_name = _NAMINGS[naming]
    bias = _float_array(arrays, bias_name)
    linear = _float_array(arrays, linear_name)
    if bias.size != 1:
        raise ArtifactError(f"shape mismatch: FM parameter {bias_name} has shape {bias.shape}, expected (1,)")
    if linear.ndim not in (1, 2) or (linear.ndim == 2 and 1 not in linear.shape):
        raise ArtifactError(
            f"shape mismatch: FM parameter {linear_name} has shape {linear.shape}, expected a vector"
        )
    w = linear.reshape(-1)
    declared, symbol_predictor = _symbol_shapes(_json_file(files, SYMBOL_FILE))
    for name, array in ((linear_name, linear), (bias_name, bias)):
        if name in declared and declared[name] != array.shape:
            raise ArtifactError(
                f"shape mismatch: {SYMBOL_FILE} declares {name} as {declared[name]}, "
                f"{PARAMS_FILE} holds {array.shape}"
            )
    v, transposed = _orient_v(
        _float_array(arrays, factors_name), w.shape[0], naming, declared.get(factors_name)
    )

    meta = _json_file(files, META_FILE)
    if meta is not None and not isinstance(meta, dict):
        raise ArtifactError(f"{MODEL_MEMBER}'s {META_FILE} is not a JSON object")
    training = (meta or {}).get("training_parameters", {})
    if not isinstance(training, dict):
        raise ArtifactError(f"{META_FILE}'s training_parameters is not a JSON object")
    for key, actual in (("feature_dim", v.shape[0]), ("num_factors", v.shape[1])):
        if key in training:
            stated = _as_int(training[key], f"{META_FILE}'s {key}")
            if stated != actual:
                raise ArtifactError(
                    f"shape mismatch: {META_FILE} says {key} {stated:,}, the parameters have {actual:,}"
                )
    predictor = training.get("predictor_type", symbol_predictor)
    parameters = FmParameters(w0=float(bias.reshape(-1)[0]), w=w, v=v)
    return FmArtifact(
        parameters=parameters,
        naming=naming,
        v_transposed=transposed,
        predictor_type=None if predictor is None else str(predictor),
        hyperparameters=dict(training),
        files=tuple(files),
    )


def read_fm_artifact(source: Path | str | bytes | BinaryIO) -> FmParameters:
    """The parameters of an FM model: model.tar.gz, its model_algo-1, or a bare params file."""
    return inspect_fm_artifact(source).parameters


# ------------------------------------------------------------------------------------------------ writing


def fm_symbol(feature_dim: int, num_factors: int, predictor_type: str) -> dict[str, Any]:
    """The network as MXNet's Symbol.tojson() describes it (the same JSON value, parsed).

    data (batch, feature_dim), dense or csr; score = (data . w1_weight + w0_weight)
    + 0.5 * (sum_f (data . v)_f^2 - data^2 . sum_f v_f^2); then LinearRegressionOutput (regressor) or
    LogisticRegressionOutput (binary_classifier) against the label variable out_label. The algorithm's
    own network is not public: this one computes the same model under the names public loaders use (data,
    w0_weight, w1_weight, v, out_label), in the way MXNet's sparse factorization-machine example does.
    """
    if predictor_type not in PREDICTOR_TYPES:
        raise ArtifactError(
            f"predictor_type must be one of {', '.join(PREDICTOR_TYPES)}, got {predictor_type!r}"
        )
    nodes: list[dict[str, Any]] = []

    def add(op: str, name: str, inputs: list[int], attrs: dict[str, str] | None = None) -> int:
        node: dict[str, Any] = {"op": op, "name": name}
        if attrs:
            node["attrs"] = attrs
        node["inputs"] = [[i, 0, 0] for i in inputs]
        nodes.append(node)
        return len(nodes) - 1

    def variable(name: str, shape: tuple[int, ...] | None = None) -> int:
        return add("null", name, [], None if shape is None else {"__shape__": str(shape)})

    keep = {"axis": "1", "keepdims": "True"}
    data = variable("data")
    linear_dot = add("dot", "linear_dot", [data, variable("w1_weight", (feature_dim, 1))])
    linear = add("broadcast_add", "linear", [linear_dot, variable("w0_weight", (1,))])
    v = variable("v", (feature_dim, num_factors))
    xv = add("dot", "xv", [data, v])
    xv_squared_sum = add("sum", "xv_squared_sum", [add("square", "xv_squared", [xv])], keep)
    x_squared = add("square", "x_squared", [data])
    v_squared_sum = add("sum", "v_squared_sum", [add("square", "v_squared", [v])], keep)
    x2v2 = add("dot", "x2v2", [x_squared, v_squared_sum])
    difference = add("elemwise_sub", "pair_diff", [xv_squared_sum, x2v2])
    pairwise = add("_mul_scalar", "pairwise", [difference], {"scalar": "0.5"})
    score = add("elemwise_add", "score", [linear, pairwise])
    out = add(PREDICTOR_TYPES[predictor_type], "out", [score, variable("out_label")])
    return {
        "nodes": nodes,
        "arg_nodes": [i for i, n in enumerate(nodes) if n["op"] == "null"],
        "node_row_ptr": list(range(len(nodes) + 1)),
        "heads": [[out, 0, 0]],
        "attrs": {"mxnet_version": ["int", _MXNET_VERSION]},
    }


def _hyperparameter_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    raise ArtifactError(
        f"hyperparameter values must be text, numbers or booleans, got {type(value).__name__}"
    )


def _training_parameters(params: FmParameters, hyperparameters: Mapping[str, object]) -> dict[str, str]:
    text: dict[str, str] = {}
    for key, value in hyperparameters.items():
        if not isinstance(key, str):
            raise ArtifactError(f"hyperparameter names must be strings, got {key!r}")
        if value is not None:
            text[key] = _hyperparameter_text(value)
    for key, actual in (("feature_dim", params.feature_dim), ("num_factors", params.num_factors)):
        if key in text and _as_int(text[key], f"hyperparameter {key}") != actual:
            raise ArtifactError(
                f"shape mismatch: hyperparameter {key} is {text[key]}, the parameters have {actual:,}"
            )
        text[key] = str(actual)
    predictor = text.get("predictor_type")
    if predictor not in PREDICTOR_TYPES:
        raise ArtifactError(
            f"hyperparameter predictor_type must be one of {', '.join(PREDICTOR_TYPES)}, got {predictor!r}"
        )
    return dict(sorted(text.items()))


def _zip_entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    info.compress_type = zipfile.ZIP_STORED
    info.create_system = 3  # unix, so that the mode below applies
    info.external_attr = (0o100000 | _FILE_MODE) << 16
    return info


def _write_model_algo(out: IO[bytes], params: FmParameters, hyperparameters: Mapping[str, object]) -> None:
    training = _training_parameters(params, hyperparameters)
    symbol = fm_symbol(params.feature_dim, params.num_factors, training["predictor_type"])
    arrays = {
        "arg:w1_weight": params.w.astype(np.float32, copy=False).reshape(-1, 1),
        "arg:w0_weight": np.array([params.w0], dtype=np.float32),
        "arg:v": params.v.astype(np.float32, copy=False),
    }
    params_size = 4 * (params.feature_dim * (params.num_factors + 1) + 1) + 512  # data + headers, generously
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(_zip_entry(SYMBOL_FILE), json.dumps(symbol, indent=2) + "\n")
        force_zip64 = params_size >= zipfile.ZIP64_LIMIT
        with archive.open(_zip_entry(PARAMS_FILE), "w", force_zip64=force_zip64) as entry:
            write_ndarrays(entry, arrays)
        meta = {"training_parameters": training}
        archive.writestr(_zip_entry(META_FILE), json.dumps(meta, indent=2, sort_keys=True) + "\n")


def write_fm_artifact(path: Path | str, params: FmParameters, hyperparameters: Mapping[str, object]) -> None:
    """Write model.tar.gz as the SageMaker algorithm lays it out (see the module docstring), atomically.

    ``hyperparameters`` are the training job's (SageMaker FM names; predictor_type is required);
    feature_dim and num_factors are taken from the parameters and must agree when given.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    with tempfile.TemporaryFile(dir=target.parent) as model_algo:
        _write_model_algo(model_algo, params, hyperparameters)
        size = model_algo.tell()
        model_algo.seek(0)
        member = tarfile.TarInfo(MODEL_MEMBER)
        member.size, member.mtime, member.mode = size, 0, _FILE_MODE
        member.uid = member.gid = 0
        member.uname = member.gname = ""
        with (
            partial.open("wb") as raw,
            gzip.GzipFile(
                filename="", mode="wb", fileobj=raw, compresslevel=_GZIP_LEVEL, mtime=0
            ) as compressed,
            tarfile.open(fileobj=compressed, mode="w", format=tarfile.USTAR_FORMAT) as tar,
        ):
            tar.addfile(member, model_algo)
    os.replace(partial, target)
