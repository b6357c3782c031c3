"""MXNet's NDArray list format: golden files written by the real MXNet 1.9.1, our writer's bytes, bad files.

The golden files and expected.json come from tools/generate_fm_golden.py, run under MXNet 1.9.1.
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fm.ndarray import (
    ArtifactError,
    SavedArray,
    arrays_by_name,
    ndarrays_to_bytes,
    read_ndarrays,
    write_ndarrays,
)

GOLDEN = Path(__file__).parent / "golden"
EXPECTED: dict[str, Any] = json.loads((GOLDEN / "expected.json").read_text())
NDARRAY_FILES = sorted(EXPECTED["ndarray_files"])


def _expected_array(entry: dict[str, Any]) -> np.ndarray:
    return np.array(entry["values"], dtype=entry["dtype"]).reshape(entry["shape"])


def _error(data: bytes) -> str:
    with pytest.raises(ArtifactError) as caught:
        read_ndarrays(data)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_the_golden_files_cover_every_layout_and_storage() -> None:
    entries = [a for name in NDARRAY_FILES for a in EXPECTED["ndarray_files"][name]]
    assert {a["layout"] for a in entries} == {0, 1, 2, 3}
    assert {a["storage"] for a in entries} == {"default", "row_sparse", "csr"}
    assert {a["dtype"] for a in entries} >= {
        "float32",
        "float64",
        "float16",
        "uint8",
        "int8",
        "int32",
        "int64",
        "bool",
    }
    assert EXPECTED["mxnet_version"] == "1.9.1"
    assert EXPECTED["checks"]["mxnet_loads_hand_built_v1_and_legacy"] is True


@pytest.mark.parametrize("filename", NDARRAY_FILES)
def test_every_golden_file_reads_to_the_values_mxnet_saved(filename: str) -> None:
    expected = EXPECTED["ndarray_files"][filename]
    saved = read_ndarrays(GOLDEN / filename)
    assert len(saved) == len(expected)
    for got, want in zip(saved, expected, strict=True):
        assert got.name == want["name"]
        assert got.storage == want["storage"]
        assert got.layout == want["layout"]
        assert got.device == "cpu"
        assert got.value.dtype == np.dtype(want["dtype"])
        assert got.value.shape == tuple(want["shape"])
        assert np.array_equal(got.value, _expected_array(want))
        if want["storage"] == "default":
            assert got.sparse is None
            continue
        assert got.sparse is not None
        assert np.array_equal(got.sparse.data.ravel(), np.array(want["stored"]["data"], dtype=want["dtype"]))
        assert got.sparse.indices.tolist() == want["stored"]["indices"]
        if want["storage"] == "csr":
            assert got.sparse.indptr is not None
            assert got.sparse.indptr.tolist() == want["stored"]["indptr"]


def test_row_sparse_keeps_only_the_listed_rows_and_densifies_the_rest_to_zero() -> None:
    rs = {a.name: a for a in read_ndarrays(GOLDEN / "row_sparse.params")}
    parts = rs["rs"].sparse
    assert parts is not None
    assert parts.indices.tolist() == [1, 3]
    assert parts.data.shape == (2, 2)
    dense = rs["rs"].value
    assert np.array_equal(dense[[0, 2, 4]], np.zeros((3, 2), dtype=np.float32))
    assert np.array_equal(dense[[1, 3]], parts.data)
    assert rs["rs_no_rows"].value.shape == (3, 2) and not rs["rs_no_rows"].value.any()


def test_a_v3_file_holds_a_scalar_and_a_zero_size_array() -> None:
    by_name = arrays_by_name(read_ndarrays(GOLDEN / "v3_np_shape.params"))
    assert by_name["scalar"].shape == () and float(by_name["scalar"]) == 3.5
    assert by_name["empty"].shape == (2, 0)


def test_dense_values_are_views_of_the_bytes_read_without_a_copy() -> None:
    data = (GOLDEN / "dense_v2.params").read_bytes()
    f32 = read_ndarrays(data)[0].value
    assert not f32.flags.owndata and not f32.flags.writeable


@pytest.mark.parametrize("filename", ["dense_v2.params", "unnamed_v2.params"])
def test_our_bytes_equal_mxnets_for_the_same_dense_arrays(filename: str) -> None:
    expected = EXPECTED["ndarray_files"][filename]
    arrays = [_expected_array(a) for a in expected]
    if expected[0]["name"] is None:
        ours = ndarrays_to_bytes(arrays)
    else:
        ours = ndarrays_to_bytes({a["name"]: array for a, array in zip(expected, arrays, strict=True)})
    assert ours == (GOLDEN / filename).read_bytes()


def test_write_then_read_keeps_every_dtype_shape_and_name() -> None:
    rng = np.random.default_rng(3)
    arrays: dict[str, np.ndarray] = {
        "f32": rng.standard_normal((3, 4), dtype=np.float32),
        "f64_transposed": rng.standard_normal((4, 3)).T,  # not C-contiguous
        "f16": rng.standard_normal(5).astype(np.float16),
        "big_endian": np.arange(6, dtype=">i4").reshape(2, 3),
        "u16": np.array([0, 65535], dtype=np.uint16),
        "i16": np.array([-32768, 7], dtype=np.int16),
        "u32": np.array([2**32 - 1], dtype=np.uint32),
        "u64": np.array([2**64 - 1], dtype=np.uint64),
        "zero_size": np.zeros((2, 0), dtype=np.float32),
        "naïve": np.array([True, False]),
    }
    out = io.BytesIO()
    written = write_ndarrays(out, arrays)
    assert written == len(out.getvalue())
    saved = read_ndarrays(out.getvalue())
    assert [a.name for a in saved] == list(arrays)
    for got, want in zip(saved, arrays.values(), strict=True):
        assert got.layout == 2 and got.storage == "default"
        assert got.value.dtype == want.dtype.newbyteorder("<") or got.value.dtype == want.dtype
        assert np.array_equal(got.value, want)
    assert arrays_by_name(saved)["big_endian"].tolist() == [[0, 1, 2], [3, 4, 5]]


def test_bfloat16_reads_as_the_float32_it_is_the_top_half_of() -> None:
    # 1.5 is 0x3FC00000 as float32: its bfloat16 is 0x3FC0; -2.0 is 0xC000.
    raw = struct.pack("<QQQ", 0x112, 0, 1)
    raw += struct.pack("<Iiiqiii", 0xF993FAC9, 0, 1, 2, 1, 0, 12) + struct.pack("<HH", 0x3FC0, 0xC000)
    raw += struct.pack("<Q", 0)
    (saved,) = read_ndarrays(raw)
    assert saved.value.dtype == np.float32 and saved.value.tolist() == [1.5, -2.0]
    assert saved.dtype_flag == 12


def test_arrays_by_name_needs_names() -> None:
    with pytest.raises(ArtifactError, match="no names"):
        arrays_by_name(read_ndarrays(GOLDEN / "unnamed_v2.params"))
    twice = [
        SavedArray("x", np.zeros(1), "default", 2, 0, "cpu"),
        SavedArray("x", np.ones(1), "default", 2, 0, "cpu"),
    ]
    with pytest.raises(ArtifactError, match="'x' twice"):
        arrays_by_name(twice)


# -------------------------------------------------------------------------------------------- bad files


@pytest.mark.parametrize(
    "filename", ["dense_v2.params", "row_sparse.params", "csr.params", "legacy_v1.params"]
)
def test_every_truncation_gives_one_clear_error(filename: str) -> None:
    data = (GOLDEN / filename).read_bytes()
    for end in range(len(data)):
        message = _error(data[:end])
        assert "truncated" in message or "not an MXNet NDArray file" in message, (end, message)


def test_a_truncation_says_where_and_how_many_bytes_were_expected() -> None:
    data = (GOLDEN / "dense_v2.params").read_bytes()
    # 24 bytes of list header, then array 0 (f32, 2 x 3): 4 magic + 4 storage + 4 ndim + 16 dims + 8 context
    # + 4 dtype = 40 bytes of header, then 24 bytes of values. Cut 10 bytes into its values:
    message = _error(data[: 24 + 40 + 10])
    assert message == (
        "truncated NDArray file: array 0 of 9 needs 24 bytes for its data (6 x float32) at byte 64, "
        "only 10 remain"
    )
    assert _error(data[:20]) == (
        "truncated NDArray file: the list header needs 8 bytes for its array count at byte 16, only 4 remain"
    )
    assert "name 8 of 9" in _error(data[:-1])


def test_a_wrong_list_magic_is_named() -> None:
    data = bytearray((GOLDEN / "dense_v2.params").read_bytes())
    data[0] = 0x13
    assert _error(bytes(data)).startswith(
        "not an MXNet NDArray file: list magic is 0x0000000000000113, expected 0x112"
    )
    assert (
        _error(b"")
        == "truncated NDArray file: the list header needs 8 bytes for its magic at byte 0, only 0 remain"
    )


def test_a_wrong_ndarray_magic_is_named() -> None:
    data = bytearray((GOLDEN / "dense_v2.params").read_bytes())
    data[24:28] = struct.pack("<I", 0xDEADBEEF)
    assert _error(bytes(data)).startswith(
        "array 0 of 9: unknown NDArray magic 0xdeadbeef (expected 0xf993fac9 V2"
    )


def test_an_unknown_dtype_flag_is_named() -> None:
    data = bytearray((GOLDEN / "dense_v2.params").read_bytes())
    data[24 + 36 : 24 + 40] = struct.pack("<i", 13)
    assert _error(bytes(data)).startswith(
        "array 0 of 9: unknown dtype flag 13 for its data (MXNet's flags: 0 float32"
    )


def test_an_unknown_storage_type_is_named() -> None:
    data = bytearray((GOLDEN / "dense_v2.params").read_bytes())
    data[28:32] = struct.pack("<i", 5)
    assert _error(bytes(data)) == "array 0 of 9: unknown storage type 5 (0 default, 1 row_sparse, 2 csr)"


def test_sparse_parts_that_disagree_with_the_shape_are_a_shape_mismatch() -> None:
    data = bytearray((GOLDEN / "row_sparse.params").read_bytes())
    # array 0 is "rs": storage shape (2, 2) starts at 24 + 8; make it (2, 3), which does not fit (5, 2).
    assert struct.unpack("<iqq", data[32:52]) == (2, 2, 2)
    data[44:52] = struct.pack("<q", 3)
    assert (
        _error(bytes(data))
        == "array 0 of 3: shape mismatch: row_sparse storage shape (2, 3) does not fit shape (5, 2)"
    )


def test_row_indices_out_of_range_are_rejected() -> None:
    data = bytearray((GOLDEN / "row_sparse.params").read_bytes())
    # "rs" ends with its two int64 row indices (1, 3): the first array's last 16 bytes.
    position = data.index(struct.pack("<qq", 1, 3))
    data[position + 8 : position + 16] = struct.pack("<q", 9)
    assert _error(bytes(data)) == "array 0 of 3: row_sparse row indices must increase within 0..4"


def test_names_that_do_not_match_the_arrays_and_trailing_bytes_are_rejected() -> None:
    one = ndarrays_to_bytes([np.zeros(2, dtype=np.float32)])
    assert (
        _error(one[:-8] + struct.pack("<Q", 2)) == "NDArray file has 2 names for 1 arrays (0 or 1 expected)"
    )
    assert _error(one + b"\0") == "NDArray file has 1 unexpected bytes after its last name"


def test_a_huge_array_count_fails_at_the_first_array_that_is_not_there() -> None:
    one = ndarrays_to_bytes([np.zeros(2, dtype=np.float32)])
    message = _error(struct.pack("<QQQ", 0x112, 0, 2**60) + one[24:-8])
    assert message == (
        "truncated NDArray file: array 1 of 1,152,921,504,606,846,976 needs 4 bytes for its magic "
        "at byte 64, only 0 remain"
    )


def test_the_writer_rejects_what_mxnet_cannot_hold() -> None:
    with pytest.raises(ArtifactError, match="dtype complex128, which MXNet cannot store"):
        ndarrays_to_bytes({"c": np.zeros(2, dtype=np.complex128)})
    with pytest.raises(ArtifactError, match="0-dimensional"):
        ndarrays_to_bytes({"s": np.float32(1.0)})  # type: ignore[dict-item]  # a numpy scalar, on purpose


def test_sparse_indices_must_be_integers() -> None:
    data = bytearray((GOLDEN / "row_sparse.params").read_bytes())
    # "rs": magic, storage type, storage shape (2 dims), shape (2 dims), context, dtype flag: 60 bytes, then
    # its row index's dtype flag (6, int64).
    assert struct.unpack("<i", data[24 + 60 : 24 + 64]) == (6,)
    data[24 + 60 : 24 + 64] = struct.pack("<i", 0)
    assert (
        _error(bytes(data))
        == "array 0 of 3: aux 0 of a row_sparse array must hold integers, its dtype is float32"
    )


def test_a_csr_indptr_that_does_not_end_at_the_value_count_is_rejected() -> None:
    data = bytearray((GOLDEN / "csr.params").read_bytes())
    # "csr" (3 x 4, 4 values): its indptr (0, 2, 2, 4) follows its 4 float32 values.
    position = data.index(struct.pack("<4q", 0, 2, 2, 4))
    data[position + 24 : position + 32] = struct.pack("<q", 3)
    assert _error(bytes(data)) == "array 0 of 2: csr indptr must rise from 0 to 4"
