"""MXNet's NDArray list file (what ``mx.nd.save`` writes and ``mx.nd.load`` reads), with numpy only.

A SageMaker Factorization Machines model keeps its parameters in this format (the ``params`` file of
``model_algo-1``). The layout, all integers little-endian, as MXNet's src/ndarray/ndarray.cc
(``NDArray::Save``, ``NDArray::Load``, ``NDArray::LegacyLoad``) and dmlc-core's stream serializers lay it out:

    list      uint64 0x112 (kMXAPINDArrayListMagic) | uint64 0 (reserved)
              uint64 array count | the arrays
              uint64 name count (0, or the array count) | per name: uint64 byte length, UTF-8 bytes
    shape     int32 ndim | ndim x int64 dimensions
    context   int32 device type (1 cpu, 2 gpu, 3 cpu_pinned, 5 cpu_shared) | int32 device id
    V2 array  uint32 0xF993FAC9 | int32 storage type (0 default, 1 row_sparse, 2 csr)
              [sparse: storage shape] | shape
              (ndim 0: an empty "none" array, nothing follows)
              context | int32 dtype flag
              [sparse: per aux array: int32 dtype flag | shape]
              data: the elements of the storage shape (sparse) or of the shape (default), C order
              [sparse: per aux array: its elements]
    V3 array  uint32 0xF993FACA, then as V2: written under MXNet's NumPy shape semantics (np_shape),
              where ndim 0 is a scalar and ndim -1 the empty array; default storage only
    V1 array  uint32 0xF993FAC8 | shape | context | int32 dtype flag | data
    legacy    (before V1) uint32 ndim in the magic's place | ndim x uint32 dimensions | context |
              int32 dtype flag | data

Sparse arrays: row_sparse keeps the rows listed in its one aux array (int64 row indices, increasing), its
storage shape is (stored rows, *shape[1:]); csr keeps aux arrays indptr (rows + 1) and column indices, its
storage shape is (stored values,). Reading gives each array densified *and* its stored parts
(``SavedArray.value`` and ``SavedArray.sparse``).

dtype flags (mshadow/base.h TypeFlag): 0 float32, 1 float64, 2 float16, 3 uint8, 4 int32, 5 int8, 6 int64,
7 bool, 8 int16, 9 uint16, 10 uint32, 11 uint64, 12 bfloat16. numpy has no bfloat16: such an array reads
as float32, exactly (a bfloat16 is the top half of a float32).

Writing produces what MXNet 1.9.1 writes for the same dense arrays, byte for byte: V2 layout, default
storage, context cpu(0). Every malformed input raises ArtifactError with one line naming the problem.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "DTYPE_FLAGS",
    "ArtifactError",
    "SavedArray",
    "SparseParts",
    "arrays_by_name",
    "ndarrays_to_bytes",
    "read_ndarrays",
    "write_ndarrays",
]

Array = npt.NDArray[Any]
Storage = Literal["default", "row_sparse", "csr"]


class ArtifactError(ValueError):
    """A model file is malformed or is not what it should be; the message names the problem on one line."""


LIST_MAGIC = 0x112
V1_MAGIC = 0xF993FAC8
V2_MAGIC = 0xF993FAC9
V3_MAGIC = 0xF993FACA
# A legacy array starts with its ndim where later ones have a magic. MXNet bounds shapes far below this.
_MAX_NDIM = 32
_CPU = 1
_DEVICE_TYPES = {1: "cpu", 2: "gpu", 3: "cpu_pinned", 5: "cpu_shared"}
_STORAGE: dict[int, Storage] = {0: "default", 1: "row_sparse", 2: "csr"}
_STORAGE_FLAG = {name: flag for flag, name in _STORAGE.items()}
_BFLOAT16 = 12

# mshadow's TypeFlag -> the numpy dtype of the stored bytes (little-endian).
DTYPE_FLAGS: dict[int, np.dtype[Any]] = {
    0: np.dtype("<f4"),
    1: np.dtype("<f8"),
    2: np.dtype("<f2"),
    3: np.dtype("u1"),
    4: np.dtype("<i4"),
    5: np.dtype("i1"),
    6: np.dtype("<i8"),
    7: np.dtype("?"),
    8: np.dtype("<i2"),
    9: np.dtype("<u2"),
    10: np.dtype("<u4"),
    11: np.dtype("<u8"),
    _BFLOAT16: np.dtype("<u2"),  # the raw bits; widened to float32 on read
}
_FLAG_NAMES = {
    0: "float32",
    1: "float64",
    2: "float16",
    3: "uint8",
    4: "int32",
    5: "int8",
    6: "int64",
    7: "bool",
    8: "int16",
    9: "uint16",
    10: "uint32",
    11: "uint64",
    _BFLOAT16: "bfloat16",
}
_FLAG_OF_DTYPE = {np.dtype(_FLAG_NAMES[flag]): flag for flag in DTYPE_FLAGS if flag != _BFLOAT16}


@dataclass(frozen=True)
class SparseParts:
    """A sparse array as stored: values and indices (row ids for row_sparse, column ids for csr)."""

    storage: Storage
    shape: tuple[int, ...]
    data: Array
    indices: Array
    indptr: Array | None  # csr only


@dataclass(frozen=True)
class SavedArray:
    """One array of an NDArray list file.

    ``value`` is dense (a sparse array densified; bfloat16 widened to float32); for default storage it is a
    view of the bytes read, without a copy (read-only unless they were a bytearray). ``sparse`` holds a
    sparse array's stored parts (indices as int64).
    ``layout`` is the array's on-disk version: 0 (before V1), 1, 2 or 3.
    """

    name: str | None
    value: Array
    storage: Storage
    layout: int
    dtype_flag: int
    device: str
    sparse: SparseParts | None = None


class _Reader:
    """Bounds-checked little-endian reads over a buffer, naming what was being read when it runs out."""

    def __init__(self, buffer: memoryview) -> None:
        self.buffer = buffer
        self.pos = 0
        self.where = "the list header"

    @property
    def remaining(self) -> int:
        return len(self.buffer) - self.pos

    def take(self, size: int, what: str) -> memoryview:
        if size > self.remaining:
            raise ArtifactError(
                f"truncated NDArray file: {self.where} needs {size:,} bytes for its {what} at byte "
                f"{self.pos:,}, only {self.remaining:,} remain"
            )
        view = self.buffer[self.pos : self.pos + size]
        self.pos += size
        return view

    def unpack(self, fmt: str, what: str) -> tuple[Any, ...]:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))

    def u32(self, what: str) -> int:
        return int(self.unpack("<I", what)[0])

    def i32(self, what: str) -> int:
        return int(self.unpack("<i", what)[0])

    def u64(self, what: str) -> int:
        return int(self.unpack("<Q", what)[0])

    def fail(self, problem: str) -> ArtifactError:
        return ArtifactError(f"{self.where}: {problem}")

    def shape(self, what: str, *, scalar_allowed: bool = False) -> tuple[int, ...] | None:
        """A shape (int32 ndim, int64 dims); None for the "none" marker (ndim 0, or -1 under np_shape)."""
        ndim = self.i32(f"{what} ndim")
        if ndim == (-1 if scalar_allowed else 0):
            return None
        if not 0 <= ndim <= _MAX_NDIM:
            raise self.fail(f"{what} has ndim {ndim}, expected 0 to {_MAX_NDIM}")
        dims = tuple(int(d) for d in self.unpack(f"<{ndim}q", f"{what} dimensions"))
        if any(d < 0 for d in dims):
            if scalar_allowed and any(d == -1 for d in dims):
                return None  # np_shape's unknown dimension: the empty array
            raise self.fail(f"{what} {dims} has a negative dimension")
        return dims

    def dtype_flag(self, what: str) -> int:
        flag = self.i32(f"{what} dtype flag")
        if flag not in DTYPE_FLAGS:
            known = ", ".join(f"{f} {n}" for f, n in _FLAG_NAMES.items())
            raise self.fail(f"unknown dtype flag {flag} for its {what} (MXNet's flags: {known})")
        return flag

    def elements(self, flag: int, shape: tuple[int, ...], what: str) -> Array:
        dtype = DTYPE_FLAGS[flag]
        count = _size(shape)
        view = self.take(count * dtype.itemsize, f"{what} ({count:,} x {_FLAG_NAMES[flag]})")
        values: Array = np.frombuffer(view, dtype=dtype, count=count).reshape(shape)
        return values


def _size(shape: Iterable[int]) -> int:
    size = 1
    for d in shape:
        size *= d
    return size


def _widen(flag: int, values: Array) -> Array:
    if flag != _BFLOAT16:
        return values
    widened: Array = (values.astype(np.uint32) << 16).view(np.float32)
    return widened


def _read_header(r: _Reader) -> tuple[int, Storage, tuple[int, ...] | None, tuple[int, ...]]:
    """An array's layout version, storage type, storage shape (sparse only) and shape."""
    magic = r.u32("magic")
    storage: Storage = "default"
    storage_shape = None
    if magic in (V2_MAGIC, V3_MAGIC):
        layout = 2 if magic == V2_MAGIC else 3
        stype_flag = r.i32("storage type")
        if stype_flag not in _STORAGE:
            raise r.fail(f"unknown storage type {stype_flag} (0 default, 1 row_sparse, 2 csr)")
        storage = _STORAGE[stype_flag]
        if layout == 3 and storage != "default":
            raise r.fail(f"a V3 (np_shape) array must have default storage, found {storage}")
        if storage != "default":
            storage_shape = r.shape("storage shape")
            if storage_shape is None:
                raise r.fail(f"a {storage} array needs a storage shape, its ndim is 0")
        shape = r.shape("shape", scalar_allowed=layout == 3)
    elif magic == V1_MAGIC:
        layout = 1
        shape = r.shape("shape")
    elif magic <= _MAX_NDIM:
        layout = 0
        shape = tuple(int(d) for d in r.unpack(f"<{magic}I", "legacy shape")) if magic else None
    else:
        raise r.fail(
            f"unknown NDArray magic 0x{magic:08x} (expected 0x{V2_MAGIC:08x} V2, 0x{V1_MAGIC:08x} V1, "
            f"0x{V3_MAGIC:08x} V3, or a legacy ndim up to {_MAX_NDIM})"
        )
    if shape is None:
        raise r.fail("is an empty (uninitialized) NDArray, which holds no values to read")
    return layout, storage, storage_shape, shape


def _read_array(r: _Reader) -> SavedArray:
    layout, storage, storage_shape, shape = _read_header(r)
    device_type, _device_id = r.unpack("<ii", "context")
    device = _DEVICE_TYPES.get(device_type)
    if device is None:
        raise r.fail(
            f"unknown device type {device_type} in its context (1 cpu, 2 gpu, 3 cpu_pinned, 5 cpu_shared)"
        )
    flag = r.dtype_flag("data")
    if storage == "default":
        value = _widen(flag, r.elements(flag, shape, "data"))
        return SavedArray(None, value, storage, layout, flag, device)

    assert storage_shape is not None  # read above for every sparse storage
    aux_count = 1 if storage == "row_sparse" else 2
    aux: list[tuple[int, tuple[int, ...]]] = []
    for i in range(aux_count):
        aux_flag = r.dtype_flag(f"aux {i}")
        if DTYPE_FLAGS[aux_flag].kind not in "iu" or aux_flag == _BFLOAT16:
            raise r.fail(
                f"aux {i} of a {storage} array must hold integers, its dtype is {_FLAG_NAMES[aux_flag]}"
            )
        aux_shape = r.shape(f"aux {i} shape")
        if aux_shape is None:
            raise r.fail(f"aux {i} of a {storage} array has no shape")
        aux.append((aux_flag, aux_shape))
    _check_sparse_shapes(r, storage, shape, storage_shape, [s for _, s in aux])
    data = _widen(flag, r.elements(flag, storage_shape, "data"))
    aux_values = [r.elements(f, s, f"aux {i} data").astype(np.int64) for i, (f, s) in enumerate(aux)]
    if storage == "row_sparse":
        parts = SparseParts(storage, shape, data, aux_values[0], None)
    else:
        parts = SparseParts(storage, shape, data, aux_values[1], aux_values[0])
    return SavedArray(None, _densify(r, parts), storage, layout, flag, device, parts)


def _check_sparse_shapes(
    r: _Reader,
    storage: Storage,
    shape: tuple[int, ...],
    storage_shape: tuple[int, ...],
    aux_shapes: Sequence[tuple[int, ...]],
) -> None:
    if storage == "row_sparse":
        rows = storage_shape[0]
        if len(storage_shape) != len(shape) or storage_shape[1:] != shape[1:] or rows > shape[0]:
            raise r.fail(
                f"shape mismatch: row_sparse storage shape {storage_shape} does not fit shape {shape}"
            )
        if aux_shapes[0] != (rows,):
            raise r.fail(
                f"shape mismatch: row_sparse keeps {rows} rows but its row index has shape {aux_shapes[0]}"
            )
        return
    if len(shape) != 2 or len(storage_shape) != 1:
        raise r.fail(
            f"shape mismatch: csr needs a 2-d shape and a 1-d storage shape, got {shape} and {storage_shape}"
        )
    if aux_shapes[0] != (shape[0] + 1,) or aux_shapes[1] != storage_shape:
        raise r.fail(
            f"shape mismatch: csr of shape {shape} with {storage_shape[0]} values needs indptr "
            f"({shape[0] + 1},) and indices {storage_shape}, got {aux_shapes[0]} and {aux_shapes[1]}"
        )


def _densify(r: _Reader, parts: SparseParts) -> Array:
    dense: Array = np.zeros(parts.shape, dtype=parts.data.dtype)
    if parts.storage == "row_sparse":
        rows = parts.indices
        if rows.size and (rows[0] < 0 or rows[-1] >= parts.shape[0] or np.any(np.diff(rows) <= 0)):
            raise r.fail(f"row_sparse row indices must increase within 0..{parts.shape[0] - 1}")
        dense[rows] = parts.data
        return dense
    assert parts.indptr is not None  # csr always has it
    indptr, columns = parts.indptr, parts.indices
    if indptr[0] != 0 or indptr[-1] != columns.size or np.any(np.diff(indptr) < 0):
        raise r.fail(f"csr indptr must rise from 0 to {columns.size}")
    if columns.size and (columns.min() < 0 or columns.max() >= parts.shape[1]):
        raise r.fail(f"csr column indices must lie within 0..{parts.shape[1] - 1}")
    row_of = np.repeat(np.arange(parts.shape[0]), np.diff(indptr))
    dense[row_of, columns] = parts.data
    return dense


def read_ndarrays(source: bytes | bytearray | memoryview | Path | str) -> list[SavedArray]:
    """Every array of an NDArray list file, in file order, with its name when the file has names."""
    buffer = memoryview(Path(source).read_bytes() if isinstance(source, Path | str) else source).cast("B")
    r = _Reader(buffer)
    magic = r.u64("magic")
    if magic != LIST_MAGIC:
        raise ArtifactError(
            f"not an MXNet NDArray file: list magic is 0x{magic:016x}, expected 0x{LIST_MAGIC:x} "
            f"(first bytes {bytes(buffer[:8]).hex()})"
        )
    r.u64("reserved word")
    count = r.u64("array count")
    arrays = []
    for i in range(count):  # a damaged count fails at the first array the bytes cannot hold
        r.where = f"array {i} of {count:,}"
        arrays.append(_read_array(r))
    r.where = "the names"
    name_count = r.u64("name count")
    if name_count not in (0, count):
        raise ArtifactError(
            f"NDArray file has {name_count:,} names for {count:,} arrays (0 or {count:,} expected)"
        )
    names: list[str | None] = []
    for i in range(name_count):
        r.where = f"name {i} of {name_count:,}"
        length = r.u64("length")
        raw = r.take(length, "text")
        try:
            names.append(bytes(raw).decode("utf-8"))
        except UnicodeDecodeError as e:
            raise r.fail(f"is not UTF-8 ({e.reason} at byte {e.start})") from None
    if r.remaining:
        raise ArtifactError(f"NDArray file has {r.remaining:,} unexpected bytes after its last name")
    if not names:
        return arrays
    return [
        SavedArray(n, a.value, a.storage, a.layout, a.dtype_flag, a.device, a.sparse)
        for n, a in zip(names, arrays, strict=True)
    ]


def arrays_by_name(saved: Sequence[SavedArray]) -> dict[str, Array]:
    """The dense values by name; a file without names, or with a name twice, is an error."""
    out: dict[str, Array] = {}
    for i, a in enumerate(saved):
        if a.name is None:
            raise ArtifactError(f"NDArray file has no names (array {i} of {len(saved)} is unnamed)")
        if a.name in out:
            raise ArtifactError(f"NDArray file names {a.name!r} twice")
        out[a.name] = a.value
    return out


def _array_header(name: str, value: Array) -> tuple[bytes, Array]:
    array = np.asarray(value)
    flag = _FLAG_OF_DTYPE.get(array.dtype.newbyteorder("="))
    if flag is None:
        raise ArtifactError(
            f"array {name} has dtype {array.dtype}, which MXNet cannot store "
            f"(one of {', '.join(_FLAG_NAMES[f] for f in sorted(_FLAG_OF_DTYPE.values()))})"
        )
    if array.ndim == 0:
        raise ArtifactError(
            f"array {name} is 0-dimensional: MXNet's V2 layout reads ndim 0 as an empty array; "
            "reshape it to (1,)"
        )
    if array.ndim > _MAX_NDIM:
        raise ArtifactError(f"array {name} has {array.ndim} dimensions, at most {_MAX_NDIM} are allowed")
    header = struct.pack(
        f"<Iii{array.ndim}qiii", V2_MAGIC, _STORAGE_FLAG["default"], array.ndim, *array.shape, _CPU, 0, flag
    )
    return header, np.ascontiguousarray(array, dtype=DTYPE_FLAGS[flag])


def write_ndarrays(stream: IO[bytes], arrays: Mapping[str, Array] | Sequence[Array]) -> int:
    """Write dense arrays as ``mx.nd.save`` does (V2, cpu(0)); a mapping gives names.

    Returns the number of bytes written.
    """
    if isinstance(arrays, Mapping):
        items: list[tuple[str, Array]] = list(arrays.items())
        names: list[str] = [str(k) for k, _ in items]
        values = [v for _, v in items]
        labels = [repr(n) for n in names]
    else:
        values, names = list(arrays), []
        labels = [str(i) for i in range(len(values))]
    prepared = [_array_header(label, v) for label, v in zip(labels, values, strict=True)]
    written = stream.write(struct.pack("<QQQ", LIST_MAGIC, 0, len(prepared)))
    for header, data in prepared:
        written += stream.write(header)
        written += stream.write(data.data if data.size else b"")
    written += stream.write(struct.pack("<Q", len(names)))
    for name in names:
        encoded = name.encode("utf-8")
        written += stream.write(struct.pack("<Q", len(encoded)) + encoded)
    return written


def ndarrays_to_bytes(arrays: Mapping[str, Array] | Sequence[Array]) -> bytes:
    """The bytes ``mx.nd.save`` writes for these dense arrays."""
    out = io.BytesIO()
    write_ndarrays(out, arrays)
    return out.getvalue()
