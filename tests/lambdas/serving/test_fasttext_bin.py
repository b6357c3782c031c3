"""vectors.bin (fastText's binary model) -> the vectors fastText gives tokens, in the vocabulary or not."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest

from lambdas.serving.fasttext_bin import (
    MAGIC,
    FastTextFormatError,
    fnv1a,
    ngram_buckets,
    read_header,
    read_vectors,
)
from tests.lambdas.serving.support import trained_blazingtext

TOKENS = [
    "sherlock-season-1",  # in the vocabulary: its row and its n-grams
    "sherlock-season-23",  # unseen: n-grams only
    "héros-über-(2001)",  # multi-byte characters: bytes above 0x7f are sign-extended in the hash
    "日本語のタイトル",
    "!!!",
]


def test_every_vector_is_the_one_gensims_reader_rebuilds_from_the_same_file() -> None:
    from gensim.models.fasttext import load_facebook_vectors  # noqa: PLC0415 (slow import)

    path = trained_blazingtext() / "vectors.bin"
    reference = load_facebook_vectors(str(path))
    with path.open("rb") as f:
        header, vectors = read_vectors(f, TOKENS)

    assert (header.dim, header.minn, header.maxn) == (reference.vector_size, reference.min_n, reference.max_n)
    assert header.bucket == reference.bucket
    assert "sherlock-season-1" in header.words and "sherlock-season-23" not in header.words
    assert sorted(vectors) == sorted(TOKENS)
    for token in TOKENS:
        assert np.asarray(vectors[token]) == pytest.approx(reference[token], abs=1e-6), token


def test_fnv1a_and_the_n_grams_as_fasttext_computes_them() -> None:
    assert fnv1a(b"") == 2166136261
    assert fnv1a(b"a") == 0xE40C292C  # FNV-1a's published value for "a"
    assert fnv1a(b"\xc3") == ((2166136261 ^ 0xFFFFFFC3) * 16777619) & 0xFFFFFFFF  # sign-extended
    # "<ab>" with n-grams of 2..3 characters: every start, "<" and ">" alone never.
    grams = ["<a", "<ab", "ab", "ab>", "b>"]
    assert ngram_buckets("ab", 2, 3, 1 << 32) == [fnv1a(g.encode()) for g in grams]  # fastText's order
    assert ngram_buckets("é", 1, 1, 1000) == [fnv1a("é".encode()) % 1000]  # counted in characters
    assert ngram_buckets("ab", 2, 3, 0) == [] and ngram_buckets("ab", 0, 0, 10) == []


def _model(
    words: list[str], dim: int, bucket: int, *, quantized: bool = False, rows: int | None = None
) -> bytes:
    out = io.BytesIO()
    out.write(struct.pack("<2i", MAGIC, 12))
    out.write(struct.pack("<12id", dim, 5, 5, 1, 5, 1, 1, 1, bucket, 2, 3, 100, 1e-4))
    out.write(struct.pack("<3iqq", len(words), len(words), 0, 10, -1))
    for word in words:
        out.write(word.encode() + b"\0" + struct.pack("<qb", 1, 0))
    count = len(words) + bucket if rows is None else rows
    out.write(struct.pack("<?qq", quantized, count, dim))
    out.write(np.arange(count * dim, dtype="<f4").tobytes())
    return out.getvalue()


def test_a_hand_made_model_gives_the_averages_of_the_right_rows() -> None:
    data = _model(["ab"], dim=2, bucket=7)
    header, vectors = read_vectors(io.BytesIO(data), ["ab", "zz"])

    assert (header.nwords, header.words) == (1, {"ab": 0})
    rows_ab = [0] + [1 + b for b in ngram_buckets("ab", 2, 3, 7)]
    rows_zz = [1 + b for b in ngram_buckets("zz", 2, 3, 7)]
    matrix = np.arange(8 * 2, dtype=np.float64).reshape(8, 2)
    assert vectors["ab"] == pytest.approx(matrix[rows_ab].mean(axis=0))
    assert vectors["zz"] == pytest.approx(matrix[rows_zz].mean(axis=0))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "vectors.bin ends inside the magic number"),
        (struct.pack("<2i", 123, 12), "vectors.bin: magic 123, not fastText's 793712314"),
        (struct.pack("<2i", MAGIC, 99), "vectors.bin: format version 99, newer than 12"),
        (_model(["ab"], 2, 7)[:60], "vectors.bin ends inside the arguments"),
        (
            _model(["ab"], 2, 7, quantized=True),
            "vectors.bin: a quantized model (.ftz), not the model BlazingText",
        ),
        (
            _model(["ab"], 2, 7, rows=5),
            "vectors.bin: a 5 x 2 input matrix, expected at least 1 words + 7 buckets",
        ),
        (_model(["ab"], 2, 7)[:-8], "vectors.bin ends inside matrix rows 0..7"),
    ],
)
def test_what_is_not_a_fasttext_model_is_named(data: bytes, message: str) -> None:
    with pytest.raises(FastTextFormatError) as raised:
        read_vectors(io.BytesIO(data), ["ab"])
    assert str(raised.value).startswith(message)


def test_the_header_leaves_the_stream_at_the_matrix() -> None:
    data = _model(["ab", "cd"], dim=2, bucket=3)
    stream = io.BytesIO(data)
    header = read_header(stream)
    assert header.words == {"ab": 0, "cd": 1}
    assert struct.unpack("<?qq", stream.read(17)) == (False, 5, 2)
