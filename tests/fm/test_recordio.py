"""RecordIO-protobuf sparse records: byte for byte what the SageMaker SDK 2.x writes, read back by both."""

from __future__ import annotations

import io
import logging
import os
import re
import struct
import tracemalloc
from collections.abc import Callable
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
import pytest
import scipy.sparse as sp

from fm import recordio
from fm.recordio import (
    SparseRecords,
    iter_sparse_record_chunks,
    read_sparse_records,
    write_sparse_records,
)

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
logging.getLogger("sagemaker.config").setLevel(logging.WARNING)  # "Not applying SDK defaults" at import
from sagemaker import serializer_utils  # noqa: E402 (the SDK reads the variable above at import)

# The SDK 2.x writer and readers (sagemaker.amazon.common re-exports them from here); untyped, so typed here.
sdk_write_sparse: Callable[[BinaryIO, sp.csr_matrix, npt.NDArray[Any]], None] = (
    serializer_utils.write_spmatrix_to_sparse_tensor
)
sdk_write_dense: Callable[[BinaryIO, npt.NDArray[Any], npt.NDArray[Any]], None] = (
    serializer_utils.write_numpy_to_dense_tensor
)
sdk_read_records: Callable[[BinaryIO], list[Any]] = serializer_utils.read_records

MAGIC = struct.pack("<I", 0xCED7230A)


def sdk_bytes(matrix: sp.csr_matrix, labels: npt.NDArray[Any]) -> bytes:
    out = io.BytesIO()
    sdk_write_sparse(out, matrix, labels)
    return out.getvalue()


def our_bytes(matrix: sp.csr_matrix, labels: npt.ArrayLike, chunk_rows: int = 65536) -> bytes:
    out = io.BytesIO()
    rows = write_sparse_records(
        out, matrix.indptr, matrix.indices, matrix.data, labels, matrix.shape[1], chunk_rows=chunk_rows
    )
    assert rows == matrix.shape[0]
    return out.getvalue()


def read(data: bytes) -> SparseRecords:
    return read_sparse_records(io.BytesIO(data))


def random_csr(rng: np.random.Generator, rows: int, feature_dim: int, max_width: int) -> sp.csr_matrix:
    """Rows of 0..max_width distinct keys in random order, drawn log-uniformly so that keys of every varint
    length occur; about a fifth of the rows are empty."""
    keys = []
    for width in rng.integers(0, max_width + 1, rows) * (rng.random(rows) > 0.2):  # building the fixture
        picks = np.exp(rng.uniform(0, np.log(feature_dim), 2 * width + 2)).astype(np.int64) - 1
        keys.append(rng.permutation(np.unique(picks))[:width])
    indptr = np.concatenate([[0], np.cumsum([len(k) for k in keys])])
    indices = np.concatenate(keys)
    values = rng.standard_normal(indptr[-1]).astype(np.float32)
    return sp.csr_matrix((values, indices, indptr), shape=(rows, feature_dim))


def notebook_like(rng: np.random.Generator, rows: int) -> tuple[sp.csr_matrix, npt.NDArray[np.float32]]:
    """The notebook's training matrix: user one-hot, item one-hot, days_since_first (often 0) last."""
    customers, products = 1403, 384
    feature_dim = customers + products + 1
    row = np.repeat(np.arange(rows), 3)
    col = np.stack(
        [
            rng.integers(0, customers, rows),
            customers + rng.integers(0, products, rows),
            np.full(rows, feature_dim - 1),
        ],
        axis=1,
    ).reshape(-1)
    days = rng.integers(0, 700, rows).astype(np.float32)
    days[rng.random(rows) < 0.3] = 0  # a customer's first review
    data = np.stack([np.ones(rows), np.ones(rows), days], axis=1).reshape(-1).astype(np.float32)
    matrix = sp.csr_matrix((data, (row, col)), shape=(rows, feature_dim), dtype=np.float32)
    labels = rng.integers(1, 6, rows).astype(np.float32)
    return matrix, labels


# ------------------------------------------------------------------------------------------ writer: bytes


def test_two_rows_written_out_by_hand() -> None:
    matrix = sp.csr_matrix(
        (np.array([1.0, 2.5], np.float32), np.array([5, 200]), np.array([0, 2, 2])), shape=(2, 300)
    )
    labels = np.array([4.0, 1.0], np.float32)
    values = b"\x0a\x06values"
    row0 = (
        MAGIC + b"\x35\x00\x00\x00"  # 53-byte payload
        b"\x0a\x1f" + values + b"\x12\x15"  # features (31 bytes): "values" -> Value (21 bytes)
        b"\x12\x13"  # float32_tensor (19 bytes)
        b"\x0a\x08"
        + struct.pack("<2f", 1.0, 2.5)  # values
        + b"\x12\x03\x05\xc8\x01"  # keys 5, 200 (two varint bytes)
        b"\x1a\x02\xac\x02"  # shape [300]
        b"\x12\x12"
        + values
        + b"\x12\x08\x12\x06\x0a\x04"
        + struct.pack("<f", 4.0)  # label
        + b"\x00\x00\x00"  # padding to 56
    )
    row1 = (
        MAGIC + b"\x26\x00\x00\x00"  # 38-byte payload
        b"\x0a\x10" + values + b"\x12\x06\x12\x04"  # an empty row has no values and no keys field
        b"\x1a\x02\xac\x02"
        b"\x12\x12" + values + b"\x12\x08\x12\x06\x0a\x04" + struct.pack("<f", 1.0) + b"\x00\x00"
    )
    assert our_bytes(matrix, labels) == row0 + row1
    assert sdk_bytes(matrix, labels) == row0 + row1


@pytest.mark.parametrize(
    ("feature_dim", "max_width", "chunk_rows", "longest_key"),
    [
        (100, 4, 65536, 1),  # keys of one varint byte
        (10_000, 6, 7, 2),  # one and two bytes, chunks of 7 rows
        (2_000_000, 12, 16, 3),  # up to three bytes
        (3_000_000, 40, 5, 4),  # up to four bytes: feature_dim above 2**21
        (2**34, 3, 3, 5),  # up to five bytes: keys above 2**28
    ],
)
def test_random_matrices_match_the_sdk(
    feature_dim: int, max_width: int, chunk_rows: int, longest_key: int
) -> None:
    rng = np.random.default_rng(feature_dim)
    matrix = random_csr(rng, 150, feature_dim, max_width)
    labels = rng.standard_normal(150).astype(np.float32)
    varint_bytes = {max(1, (int(k).bit_length() + 6) // 7) for k in matrix.indices}
    assert varint_bytes == set(range(1, longest_key + 1))
    assert (np.diff(matrix.indptr) == 0).any()
    assert not matrix.has_sorted_indices  # keys are written in stored order, as the SDK does
    assert our_bytes(matrix, labels, chunk_rows) == sdk_bytes(matrix, labels)


def test_notebook_matrix_with_stored_zeros_matches_the_sdk_in_any_chunking() -> None:
    matrix, labels = notebook_like(np.random.default_rng(7), 500)
    # scipy keeps an explicitly given zero as a stored entry, and the SDK writes it as a key with value 0.
    assert matrix.nnz == 3 * 500
    assert (matrix.data == 0).sum() > 100
    expected = sdk_bytes(matrix, labels)
    for chunk_rows in (1, 3, 64, 499, 500, 65536):
        assert our_bytes(matrix, labels, chunk_rows) == expected


def test_fixed_and_mixed_widths_in_one_file_match_the_sdk() -> None:
    # Chunks where every row has the same width and chunks where they differ take different paths.
    matrix, labels = notebook_like(np.random.default_rng(8), 60)
    mixed = sp.vstack(
        [matrix[:20], random_csr(np.random.default_rng(9), 20, matrix.shape[1], 5), matrix[20:]]
    )
    mixed = sp.csr_matrix(mixed, dtype=np.float32)
    labels = np.concatenate([labels[:20], np.arange(20, dtype=np.float32), labels[20:]])
    assert our_bytes(mixed, labels, chunk_rows=20) == sdk_bytes(mixed, labels)


def test_single_row_and_zero_rows() -> None:
    one = sp.csr_matrix((np.array([0.5], np.float32), np.array([130]), np.array([0, 1])), shape=(1, 131))
    assert our_bytes(one, np.array([3.0], np.float32)) == sdk_bytes(one, np.array([3.0], np.float32))
    empty = sp.csr_matrix((0, 131), dtype=np.float32)
    assert sdk_bytes(empty, np.empty(0, np.float32)) == b""
    assert our_bytes(empty, np.empty(0, np.float32)) == b""


def test_unsorted_and_repeated_keys_are_written_as_stored_like_the_sdk() -> None:
    matrix = sp.csr_matrix(
        (np.array([1, 2, 3, 4], np.float32), np.array([70, 3, 70, 9000]), np.array([0, 3, 3, 4])),
        shape=(3, 9001),
    )
    assert not matrix.has_canonical_format
    labels = np.array([1, 2, 3], np.float32)
    assert our_bytes(matrix, labels) == sdk_bytes(matrix, labels)
    assert read(our_bytes(matrix, labels)).indices.tolist() == [70, 3, 70, 9000]


def test_other_number_types_give_the_same_bytes() -> None:
    matrix, labels = notebook_like(np.random.default_rng(3), 40)
    expected = sdk_bytes(matrix, labels)
    out = io.BytesIO()
    write_sparse_records(
        out,
        matrix.indptr.astype(np.int64),
        matrix.indices.astype(np.uint16),
        matrix.data.astype(np.float64),
        labels.astype(np.int8).tolist(),
        matrix.shape[1],
    )
    assert out.getvalue() == expected


# ------------------------------------------------------------------------------------------ reading back


def test_the_sdk_reads_what_we_write() -> None:
    matrix = random_csr(np.random.default_rng(11), 80, 3_000_000, 10)
    labels = np.random.default_rng(12).standard_normal(80).astype(np.float32)
    records = sdk_read_records(io.BytesIO(our_bytes(matrix, labels, chunk_rows=9)))
    assert len(records) == 80
    for i, record in enumerate(records):
        tensor = record.features["values"].float32_tensor
        row = matrix.getrow(i)
        assert list(tensor.keys) == row.indices.tolist()
        assert np.array_equal(np.array(tensor.values, np.float32), row.data)
        assert list(tensor.shape) == [3_000_000]
        assert list(record.label["values"].float32_tensor.values) == [labels[i]]


def test_we_read_what_the_sdk_writes_whole_and_in_chunks() -> None:
    matrix = random_csr(np.random.default_rng(13), 120, 50_000, 8)
    labels = np.random.default_rng(14).standard_normal(120).astype(np.float32)
    data = sdk_bytes(matrix, labels)
    whole = read(data)
    assert np.array_equal(whole.indptr, matrix.indptr)
    assert np.array_equal(whole.indices, matrix.indices)
    assert np.array_equal(whole.values, matrix.data)
    assert np.array_equal(whole.labels, labels)
    assert whole.feature_dim == 50_000
    assert [a.dtype for a in whole[:4]] == [np.dtype(t) for t in ("int64", "int64", "float32", "float32")]
    chunks = list(iter_sparse_record_chunks(io.BytesIO(data), chunk_rows=50))
    assert [len(c.labels) for c in chunks] == [50, 50, 20]
    for k, chunk in enumerate(chunks):
        assert chunk.feature_dim == 50_000
        assert np.array_equal(
            chunk.indptr, matrix.indptr[50 * k : 50 * k + len(chunk.labels) + 1] - matrix.indptr[50 * k]
        )
        rebuilt = sp.csr_matrix(
            (chunk.values, chunk.indices, chunk.indptr), shape=(len(chunk.labels), 50_000)
        )
        assert (rebuilt != matrix[50 * k : 50 * k + len(chunk.labels)]).nnz == 0


def test_reading_no_records() -> None:
    empty = read(b"")
    assert empty.feature_dim == 0
    assert empty.indptr.tolist() == [0]
    assert len(empty.indices) == len(empty.values) == len(empty.labels) == 0
    assert list(iter_sparse_record_chunks(io.BytesIO(b""), 10)) == []


def test_magic_numbers_inside_values_are_not_taken_for_records() -> None:
    (magic_float,) = struct.unpack("<f", MAGIC)
    rows = 40
    widths = np.arange(rows) % 5
    indptr = np.concatenate([[0], np.cumsum(widths)])
    indices = np.concatenate([np.arange(w) for w in widths])
    values = np.full(indptr[-1], magic_float, np.float32)
    labels = np.full(rows, magic_float, np.float32)
    out = io.BytesIO()
    write_sparse_records(out, indptr, indices, values, labels, 10)
    data = out.getvalue()
    aligned_magics = sum(data[i : i + 4] == MAGIC for i in range(0, len(data), 4))
    assert aligned_magics > rows  # some values and labels do sit where a record could start
    for chunk_rows in (1, 7, 100):
        chunks = list(iter_sparse_record_chunks(io.BytesIO(data), chunk_rows))
        assert sum(len(c.labels) for c in chunks) == rows
    back = read(data)
    assert np.array_equal(back.indptr, indptr)
    assert np.array_equal(back.indices, indices)
    assert np.array_equal(back.labels, labels)


def test_reading_in_small_pieces_from_a_pipe_like_stream() -> None:
    class Trickle(io.RawIOBase):
        """Hands out at most 5 bytes a read, as a pipe may."""

        def __init__(self, data: bytes) -> None:
            self.data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            return self.data.read(min(size, 5) if size >= 0 else 5)

    matrix, labels = notebook_like(np.random.default_rng(5), 30)
    back = read_sparse_records(Trickle(our_bytes(matrix, labels)))  # type: ignore[arg-type]  # a BinaryIO stand-in
    assert np.array_equal(back.labels, labels)
    assert np.array_equal(back.indices, matrix.indices)


# ------------------------------------------------------------------------------------------ reading bad files


def two_records() -> bytes:
    matrix = sp.csr_matrix(
        (np.array([1.0, 2.5], np.float32), np.array([5, 200]), np.array([0, 2, 2])), shape=(2, 300)
    )
    return our_bytes(matrix, np.array([4.0, 1.0], np.float32))  # 64 + 48 bytes, as written out above


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda good: b"\x00" * 8 + good, "bad RecordIO magic number at byte 0"),
        (lambda good: good[:64] + b"\x0b" + good[65:], "bad RecordIO magic number at byte 64"),
        (lambda good: good[:64] + b"\x0b\x23\xd7\xce", "bad RecordIO magic number at byte 64: 0xced7230b"),
        (lambda good: good[:-1], "truncated RecordIO record at byte 64"),
        (lambda good: good[:68], "truncated RecordIO record at byte 64: the stream ends 4 bytes into it"),
        (lambda good: good[:60], "truncated RecordIO record at byte 0: the stream ends 60 bytes into it"),
        (lambda good: good + b"\x0a\x23", "truncated RecordIO record at byte 112"),
        (lambda good: good[:7] + b"\x20" + good[8:], "record at byte 0 is part of a multi-part record"),
        (
            lambda good: good[:11] + b"\x0b" + good[12:],
            "record 0 (RecordIO header at byte 0) is not a float32",
        ),
    ],
)
def test_corrupt_files_fail_naming_the_problem(corrupt: Callable[[bytes], bytes], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        read(corrupt(two_records()))


def test_a_record_with_another_shape_fails() -> None:
    first, _ = notebook_like(np.random.default_rng(1), 3)
    other = sp.csr_matrix(first[:, :-1])  # one column fewer
    data = our_bytes(first, np.ones(3, np.float32)) + our_bytes(other, np.ones(3, np.float32))
    with pytest.raises(
        ValueError, match=r"record 3 .* shape disagrees with the first record's shape \[1788\]"
    ):
        read(data)
    with pytest.raises(ValueError, match=r"record 3 .* shape disagrees"):  # also across chunks
        list(iter_sparse_record_chunks(io.BytesIO(data), 3))


def test_dense_and_float64_records_from_the_sdk_fail() -> None:
    dense = io.BytesIO()
    sdk_write_dense(dense, np.ones((2, 3), np.float32), np.ones(2, np.float32))
    with pytest.raises(ValueError, match=r"record 0 .* values without keys"):
        read(dense.getvalue())
    wide = sp.csr_matrix(np.eye(2, 4))  # float64
    with pytest.raises(ValueError, match=r"record 0 .* expected a float32 tensor"):
        read(sdk_bytes(wide, np.ones(2, np.float32)))
    with pytest.raises(ValueError, match=r"record 0 .* expected a float32 label"):
        read(sdk_bytes(sp.csr_matrix(wide, dtype=np.float32), np.ones(2)))


def test_a_payload_cut_inside_fails() -> None:
    data = bytearray(two_records())
    data[4] = 40  # the first record claims 40 bytes: its label is cut off, the next header is misplaced
    with pytest.raises(ValueError, match="bad RecordIO magic number at byte 48"):
        read(bytes(data))
    data[4] = 54  # the same padded size, but a padding byte is now part of the payload
    with pytest.raises(ValueError, match=r"record 0 .* unexpected bytes after the label"):
        read(bytes(data))
    data[4] = 53
    data[9] = 0x7F  # the features entry claims more bytes than the record has
    with pytest.raises(ValueError, match=r"record 0 .* the features entry runs past the end of the record"):
        read(bytes(data))
    data[9] = 0x1F
    data[8 + 53 - 5] = 0x03  # the label's length byte
    with pytest.raises(ValueError, match=r"record 0 .* expected a float32 label"):
        read(bytes(data))
    data[8 + 53 - 5] = 0x04
    data[8 + 25] = 0x04  # the keys field: 4 bytes instead of 3 swallows the shape's tag
    with pytest.raises(ValueError, match=r"record 0 .* expected the shape"):
        read(bytes(data))
    data[8 + 25] = 0x03
    assert read(bytes(data)).indices.tolist() == [5, 200]  # all restored


@pytest.mark.parametrize(
    ("payload_offset", "byte", "message"),
    [
        (27, 0x48, "it has a different number of keys than values"),  # keys 5, 72, 1 for two values
        (28, 0x81, "its last key varint is cut off"),
        (32, 0x01, "a key is not below the shape 172"),  # shape [300] becomes [172], below key 200
    ],
)
def test_inconsistent_keys_fail(payload_offset: int, byte: int, message: str) -> None:
    data = bytearray(two_records()[:64])  # the first record alone: its keys are 05 c8 01 at bytes 26..28
    assert data[8 + 26 : 8 + 33] == b"\x05\xc8\x01\x1a\x02\xac\x02"
    data[8 + payload_offset] = byte
    with pytest.raises(ValueError, match=f"record 0 .* {message}"):
        read(bytes(data))


# ------------------------------------------------------------------------------------------ writer: bad input

GOOD = {
    "indptr": np.array([0, 2, 3]),
    "indices": np.array([1, 4, 0]),
    "values": np.array([1.0, 2.0, 3.0], np.float32),
    "labels": np.array([5.0, 1.0], np.float32),
    "feature_dim": 5,
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"labels": np.ones(3, np.float32)}, "labels has 3 entries but indptr describes 2 rows"),
        ({"values": np.ones(2, np.float32)}, "values has 2 entries but indices has 3"),
        ({"indptr": np.array([0, 2, 4])}, r"indptr must run from 0 to len\(indices\) = 3, got 0 to 4"),
        ({"indptr": np.array([1, 2, 3])}, "indptr must run from 0"),
        ({"indptr": np.array([], np.int64)}, "indptr must have one entry more than there are rows"),
        (
            {"indptr": np.array([0, 3, 1, 3]), "labels": np.ones(3, np.float32)},
            "indptr must not decrease, but row 1 ends before it starts",
        ),
        ({"indices": np.array([1, -4, 0])}, "indices holds the negative key -4"),
        ({"indices": np.array([1, 5, 0])}, "indices holds the key 5, not below feature_dim = 5"),
        ({"feature_dim": 0}, "feature_dim must be positive, got 0"),
        ({"feature_dim": -3}, "feature_dim must be positive, got -3"),
        ({"feature_dim": 5.0}, "feature_dim must be an integer, got 5.0"),
        ({"feature_dim": True}, "feature_dim must be an integer"),
        ({"indices": np.array([1.0, 4.0, 0.0])}, "indices must hold integers, got dtype float64"),
        ({"values": np.array(["a", "b", "c"])}, "values must hold numbers"),
        ({"labels": np.ones((2, 1), np.float32)}, r"labels must be one-dimensional, got shape \(2, 1\)"),
    ],
)
def test_bad_input_fails_before_anything_is_written(change: dict[str, object], message: str) -> None:
    out = io.BytesIO()
    args = {**GOOD, **change}
    with pytest.raises(ValueError, match=message):
        write_sparse_records(
            out,
            args["indptr"],  # type: ignore[arg-type]
            args["indices"],  # type: ignore[arg-type]
            args["values"],  # type: ignore[arg-type]
            args["labels"],  # type: ignore[arg-type]
            args["feature_dim"],  # type: ignore[arg-type]
        )
    assert out.getvalue() == b""


def test_a_row_too_large_for_one_record_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    # The real limit (2**29 bytes) needs a row of ~100 million nonzeros; a lowered limit shows the check.
    monkeypatch.setattr(recordio, "_MAX_RECORD_BYTES", 50)
    with pytest.raises(
        ValueError, match="a row with 2 nonzeros needs a 51-byte record, more than the 50 bytes"
    ):
        write_sparse_records(io.BytesIO(), **GOOD)  # type: ignore[arg-type]


def test_chunk_rows_must_be_positive() -> None:
    with pytest.raises(ValueError, match="chunk_rows must be positive, got 0"):
        write_sparse_records(io.BytesIO(), **GOOD, chunk_rows=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="chunk_rows must be positive, got 0"):
        list(iter_sparse_record_chunks(io.BytesIO(b""), 0))


# ------------------------------------------------------------------------------------------ memory


class Sink:
    """A stream that keeps only a count, so that the output is not part of the measured memory."""

    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data: bytes | memoryview) -> int:
        self.bytes += len(data)
        return len(data)


def peak_bytes_writing(rows: int, chunk_rows: int) -> int:
    matrix, labels = notebook_like(np.random.default_rng(rows), rows)
    tracemalloc.start()
    try:
        write_sparse_records(
            Sink(),  # type: ignore[arg-type]  # a write-only stand-in for BinaryIO
            matrix.indptr,
            matrix.indices,
            matrix.data,
            labels,
            matrix.shape[1],
            chunk_rows=chunk_rows,
        )
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_writing_memory_follows_the_chunk_not_the_matrix() -> None:
    small, large = peak_bytes_writing(20_000, 2_000), peak_bytes_writing(100_000, 2_000)
    assert large < 1.25 * small  # five times the rows, about the same peak
    assert small < 1_000 * 2_000  # well under 1 kB of working memory a row of the chunk


def test_reading_memory_follows_the_chunk_not_the_file() -> None:
    peaks = []
    for rows in (20_000, 100_000):
        matrix, labels = notebook_like(np.random.default_rng(rows), rows)
        data = io.BytesIO(our_bytes(matrix, labels))
        tracemalloc.start()
        try:
            seen = sum(len(chunk.labels) for chunk in iter_sparse_record_chunks(data, 2_000))
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert seen == rows
    assert peaks[1] < 1.25 * peaks[0]
