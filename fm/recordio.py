"""RecordIO-protobuf sparse records: the training-data format of SageMaker's Factorization Machines.

A file is a sequence of RecordIO records. Each record is framed as

    magic 0xCED7230A (uint32 LE) | length (uint32 LE: 29 bits of length, 3 bits of continuation flags,
    always 0 here) | payload | zero padding to a multiple of 4 bytes

and its payload is one ``aialgs.data.Record`` protobuf message holding one matrix row:

    features {"values": Value{float32_tensor{values (packed float), keys (packed uint64 varints),
                                             shape [feature_dim] (packed uint64)}}}
    label    {"values": Value{float32_tensor{values [label]}}}

An empty row has no ``values`` and no ``keys`` field (protobuf omits empty packed fields). The bytes are the
ones the SageMaker SDK 2.x ``write_spmatrix_to_sparse_tensor`` produces for a float32 CSR matrix and float32
labels, so the SDK's ``read_records`` reads them, and files the SDK wrote read back here.

Both directions work on numpy arrays a chunk of rows at a time, without the protobuf library: the writer
computes every varint and message length of a chunk with array operations and lays the bytes out in one
buffer; the reader finds the record boundaries and decodes the fields of a whole chunk the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO, NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = [
    "SparseRecords",
    "iter_sparse_record_chunks",
    "read_sparse_records",
    "write_sparse_records",
]

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
F32 = npt.NDArray[np.float32]
Bool = npt.NDArray[np.bool_]

_MAGIC = 0xCED7230A
_MAGIC_BYTES = _MAGIC.to_bytes(4, "little")
# The RecordIO length word keeps its top 3 bits for the continuation flag of multi-part records.
_LENGTH_BITS = 29
_MAX_RECORD_BYTES = (1 << _LENGTH_BITS) - 1
_MAX_VARINT_BYTES = 10
_VARINT_CAP = 1 << 62  # lengths and dims read from a file are capped here, far above any real one

# Record.features map entry: key field (tag 1, "values") then the tag of its value field (2).
_ENTRY_KEY_AND_VALUE_TAG = b"\x0a\x06values\x12"
_FEATURES_TAG = 0x0A  # Record.features, field 1, length-delimited
_FLOAT32_TENSOR_TAG = 0x12  # Value.float32_tensor, field 2, length-delimited
_VALUES_TAG = 0x0A  # Float32Tensor.values, field 1, packed
_KEYS_TAG = 0x12  # Float32Tensor.keys, field 2, packed
_SHAPE_TAG = 0x1A  # Float32Tensor.shape, field 3, packed
# Record.label (field 2) = {"values": Value{float32_tensor{values: [label]}}}: 16 fixed bytes + the float.
_LABEL_PREFIX = b"\x12\x12" + _ENTRY_KEY_AND_VALUE_TAG + b"\x08\x12\x06\x0a\x04"
_LABEL_FIELD_BYTES = len(_LABEL_PREFIX) + 4


class SparseRecords(NamedTuple):
    """Rows read from RecordIO-protobuf, as CSR parts: row i has keys ``indices[indptr[i]:indptr[i+1]]``."""

    indptr: I64
    indices: I64
    values: F32
    labels: F32
    feature_dim: int  # the shape every record carries; 0 when there are no records


# --------------------------------------------------------------------------------------------- varints


def _varint_len(x: npt.NDArray[np.unsignedinteger]) -> I64:
    """Bytes each value takes as a protobuf varint (7 bits a byte)."""
    n = np.ones(x.shape, np.int64)
    if x.size == 0:
        return n
    top = int(x.max())
    shift = 7
    while shift < 64 and top >> shift:
        n += x >= (1 << shift)
        shift += 7
    return n


def _varint_matrix(x: npt.NDArray[np.unsignedinteger], lengths: I64, width: int) -> U8:
    """Row r holds the varint of x[r] in its first lengths[r] bytes (the rest is don't-care)."""
    out = np.empty((x.shape[0], width), np.uint8)
    for j in range(width):
        byte = ((x >> (7 * j)) & 0x7F).astype(np.uint8)
        if j < width - 1:
            byte |= (lengths > j + 1).astype(np.uint8) << 7
        out[:, j] = byte
    return out


def _encode_varint(value: int) -> bytes:
    """One non-negative int as a protobuf varint."""
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


# --------------------------------------------------------------------------------------------- writer


class _RowLayout:
    """The bytes of n rows, built as blocks of columns of one (n, width) byte matrix.

    A block may carry a (n, w) mask of the bytes that exist; ``pack`` keeps the existing bytes in row-major
    order, so each row comes out as the concatenation of its blocks.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self._blocks: list[tuple[U8, Bool | None]] = []

    def constant(self, data: bytes, present: Bool | None = None) -> None:
        """The same bytes in every row (only in the rows where present is True, if given)."""
        block = np.frombuffer(data, np.uint8)[None, :]
        mask = None if present is None else np.broadcast_to(present[:, None], (self.n, len(data)))
        self.block(block, mask)

    def block(self, data: U8, mask: Bool | None = None) -> None:
        if data.shape[1]:
            self._blocks.append((data, mask))

    def varint(self, x: I64, present: Bool | None = None) -> None:
        """The varint of each x[r] (nothing in the rows where present is False)."""
        ux = x.astype(np.uint64)
        lengths = _varint_len(ux)
        width = int(lengths.max(initial=1))
        mask: Bool | None = None
        if present is not None or int(lengths.min(initial=width)) != width:
            mask = np.arange(width) < lengths[:, None]
            if present is not None:
                mask &= present[:, None]
        self.block(_varint_matrix(ux, lengths, width), mask)

    def tail(self, shape_field: bytes, labels: F32, padding: I64) -> None:
        """What follows the keys: the shape field, the label field and the padding to 4 bytes."""
        self.constant(shape_field + _LABEL_PREFIX)
        self.block(labels.view(np.uint8).reshape(-1, 4))
        self.block(np.zeros((1, 3), np.uint8), np.arange(3) < padding[:, None])

    def row_bytes(self) -> I64:
        total = np.zeros(self.n, np.int64)
        for data, mask in self._blocks:
            total += data.shape[1] if mask is None else mask.sum(axis=1)
        return total

    def pack(self) -> U8:
        width = sum(data.shape[1] for data, _ in self._blocks)
        out = np.empty((self.n, width), np.uint8)
        keep: Bool | None = None
        col = 0
        for data, mask in self._blocks:
            w = data.shape[1]
            out[:, col : col + w] = data
            if mask is not None:
                if keep is None:
                    keep = np.ones(out.shape, np.bool_)
                keep[:, col : col + w] = mask
            col += w
        return out.reshape(-1) if keep is None else out[keep]


def _interleave(streams: list[U8], lengths: I64) -> U8:
    """Row r is the next lengths[r, 0] bytes of streams[0], then the next lengths[r, 1] of streams[1], ..."""
    n, k = lengths.shape
    owner = np.repeat(np.tile(np.arange(k, dtype=np.uint8), n), lengths.reshape(-1))
    out = np.empty(owner.shape[0], np.uint8)
    for s, stream in enumerate(streams):
        out[owner == s] = stream
    return out


def _encode_rows(
    indptr: I64, keys: npt.NDArray[np.unsignedinteger[Any]], values: F32, labels: F32, shape_field: bytes
) -> U8:
    """The RecordIO bytes of len(labels) >= 1 rows; indptr starts at 0 and indexes keys and values."""
    n = labels.shape[0]
    counts = np.diff(indptr)
    fixed = int(counts[0]) if int(counts.min()) == int(counts.max()) else -1

    key_len = _varint_len(keys)
    if fixed >= 0:
        key_bytes = key_len.reshape(n, fixed).sum(axis=1)
    else:
        ends = np.zeros(keys.shape[0] + 1, np.int64)
        np.cumsum(key_len, out=ends[1:])
        key_bytes = ends[indptr[1:]] - ends[indptr[:-1]]

    # Message sizes, innermost first (the nesting is in the module docstring).
    has = counts > 0
    value_bytes = 4 * counts
    tensor = np.where(has, 2 + _varint_len(value_bytes.astype(np.uint64)) + value_bytes, 0)
    tensor += np.where(has, _varint_len(key_bytes.astype(np.uint64)) + key_bytes, 0) + len(shape_field)
    value = 1 + _varint_len(tensor.astype(np.uint64)) + tensor
    entry = len(_ENTRY_KEY_AND_VALUE_TAG) + _varint_len(value.astype(np.uint64)) + value
    length = 1 + _varint_len(entry.astype(np.uint64)) + entry + _LABEL_FIELD_BYTES
    if int(length.max()) > _MAX_RECORD_BYTES:
        row = int(np.argmax(length))
        raise ValueError(
            f"a row with {int(counts[row])} nonzeros needs a {int(length[row])}-byte record, "
            f"more than the {_MAX_RECORD_BYTES} bytes a RecordIO record can hold"
        )
    padding = -length & 3

    # One matrix row per key: its varint in the leading key_len bytes of key_width.
    key_width = int(key_len.max(initial=1))
    key_matrix = _varint_matrix(keys, key_len, key_width)
    key_mask = (
        None if int(key_len.min(initial=key_width)) == key_width else np.arange(key_width) < key_len[:, None]
    )

    record = _RowLayout(n)
    record.constant(_MAGIC_BYTES)
    record.block(length.astype("<u4").view(np.uint8).reshape(n, 4))
    record.constant(bytes([_FEATURES_TAG]))
    record.varint(entry)
    record.constant(_ENTRY_KEY_AND_VALUE_TAG)
    record.varint(value)
    record.constant(bytes([_FLOAT32_TENSOR_TAG]))
    record.varint(tensor)

    if fixed >= 0:
        # Every row has the same number of keys: each record is one row of a single byte matrix.
        if fixed:
            record.constant(bytes([_VALUES_TAG]) + _encode_varint(4 * fixed))
            record.block(values.view(np.uint8).reshape(n, 4 * fixed))
            record.constant(bytes([_KEYS_TAG]))
            record.varint(key_bytes)
            record.block(
                key_matrix.reshape(n, fixed * key_width),
                None if key_mask is None else key_mask.reshape(n, fixed * key_width),
            )
        record.tail(shape_field, labels, padding)
        return record.pack()

    # Rows of different widths: the per-row parts and the values and keys are packed as separate streams,
    # then interleaved row by row.
    record.constant(bytes([_VALUES_TAG]), present=has)
    record.varint(value_bytes, present=has)
    keys_head = _RowLayout(n)
    keys_head.constant(bytes([_KEYS_TAG]), present=has)
    keys_head.varint(key_bytes, present=has)
    tail = _RowLayout(n)
    tail.tail(shape_field, labels, padding)
    return _interleave(
        [
            record.pack(),
            values.view(np.uint8),
            keys_head.pack(),
            key_matrix.reshape(-1) if key_mask is None else key_matrix[key_mask],
            tail.pack(),
        ],
        np.stack([record.row_bytes(), value_bytes, keys_head.row_bytes(), key_bytes, tail.row_bytes()], 1),
    )


def _array(name: str, data: npt.ArrayLike, kinds: str) -> npt.NDArray[Any]:
    array = np.asarray(data)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.dtype.kind not in kinds:
        expected = "integers" if kinds == "iu" else "numbers"
        raise ValueError(f"{name} must hold {expected}, got dtype {array.dtype}")
    return array


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return int(value)


def write_sparse_records(  # noqa: PLR0917 (the agreed interface passes the CSR parts positionally)
    stream: BinaryIO,
    indptr: npt.ArrayLike,
    indices: npt.ArrayLike,
    values: npt.ArrayLike,
    labels: npt.ArrayLike,
    feature_dim: int,
    *,
    chunk_rows: int = 65536,
) -> int:
    """Write the rows of a CSR matrix with their labels as RecordIO-protobuf records; return the row count.

    Row i has keys ``indices[indptr[i]:indptr[i+1]]`` (written in that order, explicit zeros included) with
    ``values`` alongside; values and labels are written as float32 and every record carries shape
    [feature_dim]. The inputs are checked before anything is written (except for a row too large for one
    RecordIO record, over 2**29 bytes or about 100 million nonzeros, found when its chunk is encoded);
    then chunk_rows rows at a time are encoded and written, so the working memory follows chunk_rows, not
    the matrix.
    """
    feature_dim = _positive_int("feature_dim", feature_dim)
    chunk_rows = _positive_int("chunk_rows", chunk_rows)
    indptr_a = _array("indptr", indptr, "iu")
    indices_a = _array("indices", indices, "iu")
    values_a = _array("values", values, "iuf")
    labels_a = _array("labels", labels, "iuf")
    if indptr_a.shape[0] == 0:
        raise ValueError("indptr must have one entry more than there are rows, got an empty array")
    n = int(indptr_a.shape[0]) - 1
    if labels_a.shape[0] != n:
        raise ValueError(f"labels has {labels_a.shape[0]} entries but indptr describes {n} rows")
    if values_a.shape[0] != indices_a.shape[0]:
        raise ValueError(f"values has {values_a.shape[0]} entries but indices has {indices_a.shape[0]}")
    if int(indptr_a[0]) != 0 or int(indptr_a[-1]) != indices_a.shape[0]:
        raise ValueError(
            f"indptr must run from 0 to len(indices) = {indices_a.shape[0]}, "
            f"got {int(indptr_a[0])} to {int(indptr_a[-1])}"
        )
    for lo in range(0, n, chunk_rows):
        part = indptr_a[lo : lo + chunk_rows + 1]
        if bool(np.any(part[1:] < part[:-1])):
            row = lo + int(np.argmax(part[1:] < part[:-1]))
            raise ValueError(f"indptr must not decrease, but row {row} ends before it starts")
    if indices_a.shape[0]:
        low, high = int(indices_a.min()), int(indices_a.max())
        if low < 0:
            raise ValueError(f"indices holds the negative key {low}")
        if high >= feature_dim:
            raise ValueError(f"indices holds the key {high}, not below feature_dim = {feature_dim}")

    dim_varint = _encode_varint(feature_dim)
    shape_field = bytes([_SHAPE_TAG, len(dim_varint)]) + dim_varint
    key_dtype = np.uint32 if feature_dim <= 1 << 32 else np.uint64
    for lo in range(0, n, chunk_rows):
        hi = min(lo + chunk_rows, n)
        start, stop = int(indptr_a[lo]), int(indptr_a[hi])
        chunk = _encode_rows(
            indptr_a[lo : hi + 1].astype(np.int64) - start,
            indices_a[start:stop].astype(key_dtype),
            np.ascontiguousarray(values_a[start:stop], dtype="<f4"),
            np.ascontiguousarray(labels_a[lo:hi], dtype="<f4"),
            shape_field,
        )
        stream.write(chunk.data)
    return n


# --------------------------------------------------------------------------------------------- reader


class _Chunk:
    """Complete records found at the front of a buffer: where each payload starts and how long it is."""

    def __init__(self, starts: I64, lengths: I64, consumed: int) -> None:
        self.starts = starts
        self.lengths = lengths
        self.consumed = consumed


def _frame(buf: U8, max_records: int, offset: int) -> _Chunk:
    """Find up to max_records complete records at the front of buf (which starts at a record boundary).

    Records start on 4-byte boundaries. Every aligned magic word is a candidate; following the lengths from
    the first record picks the true starts, stepping over a magic word that merely occurs inside a payload.
    offset is buf's position in the stream, for error messages.
    """
    words = buf[: buf.shape[0] // 4 * 4].view("<u4")
    none = _Chunk(np.empty(0, np.int64), np.empty(0, np.int64), 0)
    if words.shape[0] == 0:
        return none
    if int(words[0]) != _MAGIC:
        raise ValueError(f"bad RecordIO magic number at byte {offset}: 0x{int(words[0]):08x}")
    cand = np.flatnonzero(words[:-1] == _MAGIC)
    if cand.shape[0] == 0:
        return none
    header = words[cand + 1].astype(np.int64)
    following = cand + 2 + ((header & _MAX_RECORD_BYTES) + 3) // 4  # word index of the next record
    breaks = np.flatnonzero(following[:-1] != cand[1:])
    runs: list[I64] = []
    found = 0
    first = 0
    complete = True
    while True:
        at = int(np.searchsorted(breaks, first))
        last = int(breaks[at]) if at < breaks.shape[0] else cand.shape[0] - 1
        runs.append(np.arange(first, last + 1))
        found += last + 1 - first
        nxt = int(following[last])
        if nxt * 4 > buf.shape[0]:
            complete = False  # the last record of this run is still being read
            break
        if found >= max_records or nxt == words.shape[0]:
            break
        first = int(np.searchsorted(cand, nxt))
        if first < cand.shape[0] and int(cand[first]) == nxt:
            continue
        if nxt < words.shape[0] and int(words[nxt]) != _MAGIC:
            raise ValueError(f"bad RecordIO magic number at byte {offset + 4 * nxt}: 0x{int(words[nxt]):08x}")
        break  # the next record's header is still being read
    chosen = np.concatenate(runs)
    if not complete:
        chosen = chosen[:-1]
    chosen = chosen[:max_records]
    if chosen.shape[0] == 0:
        return none
    flags = header[chosen] >> _LENGTH_BITS
    if bool(flags.any()):
        bad = int(cand[chosen[int(np.argmax(flags != 0))]]) * 4
        raise ValueError(
            f"the RecordIO record at byte {offset + bad} is part of a multi-part record "
            "(continuation flag set), which sparse records never use"
        )
    return _Chunk(cand[chosen] * 4 + 8, header[chosen] & _MAX_RECORD_BYTES, int(following[chosen[-1]]) * 4)


class _Payloads:
    """Vectorized reading of the payloads of a chunk of records, failing with the record named."""

    def __init__(self, buf: U8, chunk: _Chunk, first_record: int, offset: int) -> None:
        self.buf = buf
        self.starts = chunk.starts
        self.ends = chunk.starts + chunk.lengths
        self.first_record = first_record
        self.offset = offset

    def check(self, ok: Bool, problem: str) -> None:
        if not bool(ok.all()):
            i = int(np.argmin(ok))
            at = self.offset + int(self.starts[i]) - 8
            raise ValueError(
                f"record {self.first_record + i} (RecordIO header at byte {at}) "
                f"is not a float32 sparse record: {problem}"
            )

    def gather(self, pos: I64, width: int) -> U8:
        """The width bytes at each position (clipped to the buffer: callers check positions separately)."""
        at = np.minimum(pos[:, None] + np.arange(width), self.buf.shape[0] - 1)  # positions are >= 0
        out: U8 = np.take(self.buf, at)
        return out

    def expect(self, pos: I64, data: bytes, what: str) -> I64:
        """Check the bytes at pos are data; return the position after them."""
        self.check(pos + len(data) <= self.ends, f"it ends before {what}")
        same = self.gather(pos, len(data)) == np.frombuffer(data, np.uint8)
        self.check(np.logical_and.reduce(same, axis=1), f"expected {what}")
        return pos + len(data)

    def varint(self, pos: I64, what: str, present: Bool | None = None) -> tuple[I64, I64]:
        """The varint at each position (capped at 2**62) and its byte count (0, 0 where present is False)."""
        first = self.gather(pos, 1)[:, 0]
        if bool((first < 0x80).all()):  # the usual case: every one of them is a single byte
            single = first.astype(np.int64)
            lengths = np.ones(pos.shape[0], np.int64)
            if present is not None:
                single[~present] = 0
                lengths[~present] = 0
            self.check(pos + lengths <= self.ends, f"it ends inside the varint for {what}")
            return single, lengths
        raw = self.gather(pos, _MAX_VARINT_BYTES)
        last = raw < 0x80
        ok: Bool = np.logical_or.reduce(last, axis=1)
        if present is not None:
            ok |= ~present
        self.check(ok, f"malformed varint for {what}")
        lengths = np.argmax(last, axis=1).astype(np.int64) + 1
        if present is not None:
            lengths[~present] = 0
        self.check(pos + lengths <= self.ends, f"it ends inside the varint for {what}")
        value = np.zeros(pos.shape[0], np.uint64)
        for j in range(int(lengths.max(initial=0))):
            byte = (raw[:, j] & 0x7F).astype(np.uint64) << np.uint64(7 * j)
            value |= np.where(lengths > j, byte, np.uint64(0))
        return np.minimum(value, np.uint64(_VARINT_CAP)).astype(np.int64), lengths

    def sized(self, pos: I64, what: str) -> tuple[I64, I64]:
        """A length varint at pos: (position after it, position after the bytes it counts)."""
        size, used = self.varint(pos, what)
        body = pos + used
        end = body + size
        self.check(end <= self.ends, f"{what} runs past the end of the record")
        return body, end


def _segments(starts: I64, lengths: I64) -> I64:
    """Positions start[i], ..., start[i] + lengths[i] - 1 for every i, concatenated."""
    total = int(lengths.sum())
    ends = np.cumsum(lengths)
    shift: I64 = np.repeat(starts - (ends - lengths), lengths)
    return np.arange(total, dtype=np.int64) + shift


def _decode_key_stream(data: U8) -> tuple[U64, I64]:
    """Decode back-to-back varints: their values and the index in data of each one's last byte."""
    last = np.flatnonzero(data < 0x80)
    if last.shape[0] == 0:
        return np.empty(0, np.uint64), last
    first = np.empty_like(last)
    first[0] = 0
    first[1:] = last[:-1] + 1
    used = int(last[-1]) + 1  # bytes after the last varint's end belong to no key (the caller checks)
    within = np.arange(used, dtype=np.int64) - np.repeat(first, last - first + 1)
    parts = (data[:used] & 0x7F).astype(np.uint64) << (7 * within.clip(0, 9)).astype(np.uint64)
    return np.bitwise_or.reduceat(parts, first), last


def _parse(buf: U8, chunk: _Chunk, first_record: int, offset: int, feature_dim: int | None) -> SparseRecords:
    p = _Payloads(buf, chunk, first_record, offset)
    n = chunk.starts.shape[0]
    pos = p.expect(chunk.starts, bytes([_FEATURES_TAG]), "the features field")
    pos, features_end = p.sized(pos, "the features entry")
    pos = p.expect(pos, _ENTRY_KEY_AND_VALUE_TAG, "the 'values' feature")
    pos, value_end = p.sized(pos, "the feature value")
    p.check(value_end == features_end, "the feature value and its entry disagree in length")
    pos = p.expect(pos, bytes([_FLOAT32_TENSOR_TAG]), "a float32 tensor")
    pos, tensor_end = p.sized(pos, "the float32 tensor")
    p.check(tensor_end == value_end, "the tensor and its value disagree in length")

    has_values = p.gather(pos, 1)[:, 0] == _VALUES_TAG
    value_size, used = p.varint(pos + 1, "the values length", has_values)
    values_at = pos + 1 + used
    pos = np.where(has_values, values_at + value_size, pos)
    p.check(pos <= tensor_end, "the values run past the tensor")
    p.check(value_size % 4 == 0, "the values are not whole float32s")
    has_keys = (p.gather(pos, 1)[:, 0] == _KEYS_TAG) & (pos < tensor_end)
    p.check(has_keys == has_values, "values without keys (a dense tensor) or keys without values")
    key_size, used = p.varint(pos + 1, "the keys length", has_keys)
    keys_at = pos + 1 + used
    pos = np.where(has_keys, keys_at + key_size, pos)
    p.check(pos <= tensor_end, "the keys run past the tensor")
    pos = p.expect(pos, bytes([_SHAPE_TAG]), "the shape")
    pos, shape_end = p.sized(pos, "the shape")
    dims, used = p.varint(pos, "the shape")
    p.check(
        (pos + used == shape_end) & (shape_end == tensor_end), "the shape does not hold exactly one dimension"
    )
    if feature_dim is None:
        feature_dim = int(dims[0])
        if not 0 < feature_dim < _VARINT_CAP:
            raise ValueError(f"record {first_record} has shape [{feature_dim}], not a usable feature_dim")
    p.check(dims == feature_dim, f"its shape disagrees with the first record's shape [{feature_dim}]")
    pos = p.expect(shape_end, _LABEL_PREFIX, "a float32 label")
    labels = p.gather(pos, 4).reshape(-1).view("<f4")
    p.check(pos + 4 == p.ends, "unexpected bytes after the label")

    counts = value_size // 4
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    values = np.take(buf, _segments(values_at, 4 * counts)).view("<f4")

    indices = _read_keys(p, keys_at, key_size, counts, feature_dim)
    return SparseRecords(indptr, indices, values, labels, feature_dim)


def _read_keys(p: _Payloads, keys_at: I64, key_size: I64, counts: I64, feature_dim: int) -> I64:
    """Decode every row's packed key varints, checking each row holds counts[row] keys below feature_dim."""
    n = counts.shape[0]
    key_data = np.take(p.buf, _segments(keys_at, key_size))
    keys, last = _decode_key_stream(key_data)
    key_ends = np.cumsum(key_size)
    closed = np.ones(n, np.bool_)
    nonempty = key_size > 0
    closed[nonempty] = key_data[key_ends[nonempty] - 1] < 0x80
    p.check(closed, "its last key varint is cut off")
    # Every key varint now ends inside its row's bytes: count them per row.
    keys_per_row = np.diff(np.searchsorted(last, key_ends - 1, side="right"), prepend=0)
    p.check(keys_per_row == counts, "it has a different number of keys than values")
    row_of_key = np.repeat(np.arange(n), counts)
    too_long = np.diff(last, prepend=-1) > _MAX_VARINT_BYTES
    p.check(np.bincount(row_of_key[too_long], minlength=n) == 0, "a key varint is longer than 10 bytes")
    out_of_range = keys >= np.uint64(feature_dim)
    p.check(
        np.bincount(row_of_key[out_of_range], minlength=n) == 0, f"a key is not below the shape {feature_dim}"
    )
    return keys.astype(np.int64)


def iter_sparse_record_chunks(stream: BinaryIO, chunk_rows: int = 65536) -> Iterator[SparseRecords]:
    """Read RecordIO-protobuf sparse records chunk_rows at a time (the last chunk may be shorter).

    Each chunk's indptr starts at 0. Memory follows chunk_rows: the stream is read in blocks sized from
    the records seen so far. A bad magic number, a truncated record or a record that is not a float32
    sparse row with the first record's shape raises ValueError naming the record.
    """
    chunk_rows = _positive_int("chunk_rows", chunk_rows)
    pending = np.empty(0, np.uint8)
    offset = 0  # stream position of pending[0]
    record = 0  # index of the first pending record
    feature_dim: int | None = None
    read_size = 1 << 20
    eof = False
    while True:
        chunk = _frame(pending, chunk_rows, offset)
        found = chunk.starts.shape[0]
        if found < chunk_rows and not eof:
            if found:  # aim the next read at the bytes the missing records will take
                read_size = max(read_size, (chunk_rows - found) * (chunk.consumed // found) + (1 << 16))
            data = stream.read(read_size)
            if data:
                pending = np.concatenate([pending, np.frombuffer(data, np.uint8)])
            else:
                eof = True
            continue
        if found == 0:
            if pending.shape[0]:
                raise ValueError(
                    f"truncated RecordIO record at byte {offset}: the stream ends {pending.shape[0]} bytes "
                    "into it"
                )
            return
        records = _parse(pending, chunk, record, offset, feature_dim)
        feature_dim = records.feature_dim
        yield records
        pending = pending[chunk.consumed :]
        offset += chunk.consumed
        record += found


def read_sparse_records(stream: BinaryIO) -> SparseRecords:
    """Read every RecordIO-protobuf sparse record of a stream as one set of CSR parts with labels."""
    chunks = list(iter_sparse_record_chunks(stream))
    if not chunks:
        return SparseRecords(
            np.zeros(1, np.int64), np.empty(0, np.int64), np.empty(0, np.float32), np.empty(0, np.float32), 0
        )
    indptr = [chunks[0].indptr]
    done = int(chunks[0].indptr[-1])
    for chunk in chunks[1:]:
        indptr.append(chunk.indptr[1:] + done)
        done += int(chunk.indptr[-1])
    return SparseRecords(
        np.concatenate(indptr),
        np.concatenate([c.indices for c in chunks]),
        np.concatenate([c.values for c in chunks]),
        np.concatenate([c.labels for c in chunks]),
        chunks[0].feature_dim,
    )
