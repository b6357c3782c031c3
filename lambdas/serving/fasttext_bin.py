"""Vectors of tokens a BlazingText model never saw, from its vectors.bin (fastText's binary model format).

Trained with subwords, BlazingText's Word2Vec writes vectors.bin, the model fastText itself saves: a header
(the training arguments: dim, bucket, minn, maxn, ...), the dictionary (the vocabulary's words), then the
input matrix of nwords + bucket rows, the words' rows followed by the hash buckets of the character n-grams.
A token outside the vocabulary gets what fastText's getWordVector (and BlazingText's endpoint) answers: the
average of the rows of its n-grams, the n-grams of "<token>" of minn..maxn characters, each hashed with
32-bit FNV-1a over its UTF-8 bytes (each byte sign-extended first, as fastText's int8 char does) modulo
bucket; a token with no n-gram has no vector. A vocabulary word gets its own row averaged with its n-grams'.

`read_vectors` reads the model once, as a stream (the member of a model.tar.gz as it is unpacked): it parses
the header and the dictionary, works out which rows the wanted tokens need, and keeps only those while the
matrix streams past, so memory stays at the wanted rows whatever the bucket count (2,000,000 x 100 floats,
800 MB, by default). The stdlib only: it runs in the title-table Lambda, which has no numpy.

fastText's layout (src/fasttext.cc saveModel, src/args.cc save, src/dictionary.cc save, src/densematrix.cc
save): int32 magic 793712314, int32 version; 12 int32 args and a double; int32 size, nwords, nlabels, int64
ntokens, pruneidx_size (-1 when never pruned); size entries of (NUL-terminated word, int64 count, int8
type); pruneidx_size int32 pairs; a bool quant flag; int64 rows, int64 columns, then rows x columns
float32, little-endian on x86.
"""

from __future__ import annotations

import math
import struct
import sys
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO

MAGIC = 793712314
VERSION = 12
# dim ws epoch minCount neg wordNgrams loss model bucket minn maxn lrUpdateRate, then t
_ARGS = struct.Struct("<12id")
_DICTIONARY = struct.Struct("<3iqq")  # size nwords nlabels ntokens pruneidx_size
_ENTRY = struct.Struct("<qb")  # count type
_MATRIX = struct.Struct("<?qq")  # quantized rows columns
_CHUNK_ROWS = 8192
"""Matrix rows read at once while streaming: 3.3 MB at 100 dimensions."""


class FastTextFormatError(ValueError):
    """vectors.bin is not a fastText model as fastText saves it; the message says where."""


@dataclass(frozen=True)
class FastTextHeader:
    dim: int
    bucket: int
    minn: int
    maxn: int
    nwords: int
    """Rows of the vocabulary's words, before the buckets."""
    words: dict[str, int]
    """Vocabulary word -> its row."""


def fnv1a(data: bytes) -> int:
    """fastText's Dictionary::hash: FNV-1a over the bytes, each one sign-extended to 32 bits."""
    h = 2166136261
    for byte in data:
        h ^= (byte | 0xFFFFFF00) if byte >= 0x80 else byte
        h = (h * 16777619) & 0xFFFFFFFF
    return h


def ngram_buckets(token: str, minn: int, maxn: int, bucket: int) -> list[int]:
    """The bucket of each character n-gram of "<token>" fastText computes (Dictionary::computeSubwords):
    n from minn to maxn characters, counted in code points, every start, the one-character n-grams "<" and
    ">" excepted; none when maxn is 0 or bucket is 0."""
    if maxn <= 0 or bucket <= 0:
        return []
    chars = [c.encode("utf-8") for c in f"<{token}>"]
    out: list[int] = []
    for start in range(len(chars)):
        for n in range(minn, maxn + 1):
            end = start + n
            if end > len(chars):
                break
            if n == 1 and (start == 0 or end == len(chars)):
                continue
            out.append(fnv1a(b"".join(chars[start:end])) % bucket)
    return out


def _read(stream: IO[bytes], size: int, what: str) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise FastTextFormatError(f"vectors.bin ends inside {what}")
    return data


def _word(stream: IO[bytes], number: int) -> str:
    raw = bytearray()
    while (byte := stream.read(1)) != b"\0":
        if not byte:
            raise FastTextFormatError(f"vectors.bin ends inside dictionary word {number}")
        raw += byte
    return raw.decode("utf-8", errors="replace")


def read_header(stream: IO[bytes]) -> FastTextHeader:
    """The arguments and the dictionary; the stream is left at the input matrix."""
    magic, version = struct.unpack("<2i", _read(stream, 8, "the magic number"))
    if magic != MAGIC:
        raise FastTextFormatError(f"vectors.bin: magic {magic}, not fastText's {MAGIC}")
    if version > VERSION:
        raise FastTextFormatError(f"vectors.bin: format version {version}, newer than {VERSION}")
    dim, _ws, _epoch, _count, _neg, _ngrams, _loss, _model, bucket, minn, maxn, _rate, _t = _ARGS.unpack(
        _read(stream, _ARGS.size, "the arguments")
    )
    dictionary = _read(stream, _DICTIONARY.size, "the dictionary")
    size, nwords, nlabels, _ntokens, pruned = _DICTIONARY.unpack(dictionary)
    if dim < 1 or bucket < 0 or size < 0 or nwords < 0 or nlabels < 0:
        raise FastTextFormatError(f"vectors.bin: dim {dim}, bucket {bucket}, {size} entries: not a model")
    words: dict[str, int] = {}
    for number in range(size):
        word = _word(stream, number)
        _read(stream, _ENTRY.size, f"dictionary entry {number}")
        if number < nwords:
            words.setdefault(word, number)
    _read(stream, 8 * max(0, pruned), "the pruned index")  # -1: never pruned
    return FastTextHeader(dim=dim, bucket=bucket, minn=minn, maxn=maxn, nwords=nwords, words=words)


def read_vectors(stream: IO[bytes], tokens: Iterable[str]) -> tuple[FastTextHeader, dict[str, list[float]]]:
    """The vector fastText gives each token (see the module docstring), for the tokens that have one, read
    from vectors.bin in one pass. FastTextFormatError says what is not as fastText writes it."""
    header = read_header(stream)
    quantized, rows, columns = _MATRIX.unpack(_read(stream, _MATRIX.size, "the matrix header"))
    if quantized:
        raise FastTextFormatError("vectors.bin: a quantized model (.ftz), not the model BlazingText saves")
    nwords = header.nwords
    if columns != header.dim or rows < nwords + header.bucket:
        raise FastTextFormatError(
            f"vectors.bin: a {rows} x {columns} input matrix, expected at least {nwords} words + "
            f"{header.bucket} buckets by {header.dim}"
        )
    wanted: dict[str, list[int]] = {}
    for token in tokens:
        own = [header.words[token]] if token in header.words else []
        subwords = [nwords + b for b in ngram_buckets(token, header.minn, header.maxn, header.bucket)]
        if own or subwords:
            wanted[token] = own + subwords
    needed = sorted({row for rows_of in wanted.values() for row in rows_of})
    found: dict[int, array[float]] = {}
    width = 4 * columns
    position = 0  # the stream's row
    at = 0  # the next needed row not yet found
    while at < len(needed):  # skip to the next needed row's chunk, keep the needed rows in it
        start = needed[at] - needed[at] % _CHUNK_ROWS
        if start > position:
            _skip(stream, (start - position) * width)
            position = start
        count = min(_CHUNK_ROWS, rows - position)
        chunk = _read(stream, count * width, f"matrix rows {position}..{position + count - 1}")
        while at < len(needed) and needed[at] < position + count:
            offset = (needed[at] - position) * width
            values = array("f", chunk[offset : offset + width])
            if sys.byteorder == "big":
                values.byteswap()
            found[needed[at]] = values
            at += 1
        position += count
    vectors: dict[str, list[float]] = {}
    for token, rows_of in wanted.items():
        total = [0.0] * columns
        for r in rows_of:
            for j, v in enumerate(found[r]):
                total[j] += v
        vector = [v / len(rows_of) for v in total]
        if not all(math.isfinite(v) for v in vector):
            raise FastTextFormatError(f"vectors.bin: the vector of {token!r} is not finite")
        vectors[token] = vector
    return header, vectors


def _skip(stream: IO[bytes], size: int, chunk: int = 1 << 22) -> None:
    """Read past size bytes (a tar member streamed from S3 does not seek)."""
    while size > 0:
        data = stream.read(min(chunk, size))
        if not data:
            raise FastTextFormatError("vectors.bin ends inside the input matrix")
        size -= len(data)
