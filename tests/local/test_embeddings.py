"""Title embeddings: BlazingText hyperparameters mapped to gensim, real training, BlazingText's artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from contract.algorithms import BLAZINGTEXT_HYPERPARAMETERS, BLAZINGTEXT_MODES
from local.embeddings import (
    LOCAL_BUCKETS,
    MODES,
    EmbeddingsProgress,
    SubwordVectors,
    gensim_kwargs,
    token_vectors,
    train_embeddings,
)
from local.hyperparameters import HyperparameterError

# ----------------------------------------------------------------------------------------------- mapping


def test_defaults_are_blazingtexts_with_the_local_bucket_count() -> None:
    assert gensim_kwargs({"mode": "skipgram"}) == {
        "sg": 1,
        "hs": 0,
        "vector_size": 100,
        "window": 5,
        "negative": 5,
        "min_count": 5,
        "sample": 0.0001,
        "epochs": 5,
        "alpha": 0.05,
        "min_n": 3,
        "max_n": 0,  # subwords defaults to False: no character n-grams
        "bucket": 0,
        "word_ngrams": 1,
        "workers": 1,
        "seed": 1,
    }
    assert LOCAL_BUCKETS == 200_000


NOTEBOOK = {
    "mode": "skipgram",
    "epochs": 10,
    "min_count": 5,
    "sampling_threshold": 0.0001,
    "learning_rate": 0.05,
    "window_size": 5,
    "vector_dim": 100,
    "negative_samples": 5,
    "min_char": 5,
    "max_char": 10,
    "subwords": True,
    "evaluation": False,
}


def test_the_notebooks_hyperparameters() -> None:
    kwargs = gensim_kwargs(NOTEBOOK, workers=2, seed=7)
    assert kwargs == {
        "sg": 1,
        "hs": 0,
        "vector_size": 100,
        "window": 5,
        "negative": 5,
        "min_count": 5,
        "sample": 0.0001,
        "epochs": 10,
        "alpha": 0.05,
        "min_n": 5,
        "max_n": 10,
        "bucket": 200_000,
        "word_ngrams": 1,
        "workers": 2,
        "seed": 7,
    }


@pytest.mark.parametrize(
    ("key", "value", "gensim_key", "gensim_value"),
    [
        ("mode", "skipgram", "sg", 1),
        ("mode", "cbow", "sg", 0),
        ("mode", "batch_skipgram", "sg", 1),
        ("vector_dim", 16, "vector_size", 16),
        ("window_size", 3, "window", 3),
        ("negative_samples", 10, "negative", 10),
        ("min_count", 0, "min_count", 0),
        ("min_char", 2, "min_n", 2),
        ("max_char", 8, "max_n", 8),
        ("sampling_threshold", 0.001, "sample", 0.001),
        ("epochs", 3, "epochs", 3),
        ("learning_rate", 0.1, "alpha", 0.1),
        ("learning_rate", 1, "alpha", 1.0),
        ("buckets", 5000, "bucket", 5000),
        ("subwords", True, "max_n", 6),
        ("subwords", True, "bucket", 200_000),
        ("subwords", False, "max_n", 0),
        ("subwords", False, "bucket", 0),
    ],
)
def test_each_key_maps_to_gensim(key: str, value: object, gensim_key: str, gensim_value: object) -> None:
    base: dict[str, object] = {"mode": "skipgram", "subwords": True}
    assert gensim_kwargs({**base, key: value})[gensim_key] == gensim_value


@pytest.mark.parametrize(("key", "value"), [("evaluation", True), ("evaluation", False), ("batch_size", 15)])
def test_keys_without_a_gensim_counterpart_are_checked_and_ignored(key: str, value: object) -> None:
    assert gensim_kwargs({"mode": "batch_skipgram", key: value}) == gensim_kwargs({"mode": "batch_skipgram"})


def test_min_and_max_char_only_count_with_subwords() -> None:
    assert gensim_kwargs({"mode": "cbow", "min_char": 7, "max_char": 4})["max_n"] == 0
    with pytest.raises(HyperparameterError, match=r"'min_char' \(7\) must not exceed 'max_char' \(4\)"):
        gensim_kwargs({"mode": "cbow", "subwords": True, "min_char": 7, "max_char": 4})


def test_the_default_bucket_count_is_configurable() -> None:
    assert (
        gensim_kwargs({"mode": "skipgram", "subwords": True}, default_buckets=2_000_000)["bucket"]
        == 2_000_000
    )
    assert (
        gensim_kwargs({"mode": "skipgram", "subwords": True, "buckets": 10}, default_buckets=99)["bucket"]
        == 10
    )


def test_the_reader_knows_the_contracts_names_and_modes() -> None:
    assert set(MODES) - {"supervised"} == BLAZINGTEXT_MODES
    for name in BLAZINGTEXT_HYPERPARAMETERS - {"mode"}:
        with pytest.raises(HyperparameterError) as raised:
            gensim_kwargs({"mode": "skipgram", name: [name]})  # known, but of no type any key takes
        assert "unknown" not in str(raised.value), name


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "'mode' is required"),
        ({"mode": "fasttext"}, "'mode' must be one of skipgram, cbow, batch_skipgram, supervised"),
        ({"mode": "supervised"}, "'mode' is 'supervised' \\(text classification\\)"),
        ({"mode": "skipgram", "word_ngrams": 2}, "unknown BlazingText hyperparameter 'word_ngrams'"),
        ({"mode": "skipgram", "vector_size": 100}, "unknown BlazingText hyperparameter 'vector_size'"),
        ({"mode": "skipgram", "vector_dim": "100"}, "'vector_dim' must be an integer, got '100' \\(str\\)"),
        ({"mode": "skipgram", "vector_dim": 0}, "'vector_dim' must be at least 1, got 0"),
        ({"mode": "skipgram", "min_count": -1}, "'min_count' must be at least 0"),
        ({"mode": "skipgram", "subwords": "true"}, "'subwords' must be true or false, got 'true'"),
        ({"mode": "skipgram", "evaluation": 1}, "'evaluation' must be true or false, got 1 \\(int\\)"),
        ({"mode": "skipgram", "sampling_threshold": 0}, "'sampling_threshold' must be greater than 0.0"),
        ({"mode": "skipgram", "sampling_threshold": 1.5}, "'sampling_threshold' must be less than 1.0"),
        ({"mode": "skipgram", "learning_rate": 0.0}, "'learning_rate' must be greater than 0.0"),
        ({"mode": "skipgram", "buckets": 0}, "'buckets' must be at least 1"),
        ({"mode": "skipgram", "batch_size": 0}, "'batch_size' must be at least 1"),
        ({"mode": "skipgram", "window_size": 2.5}, "'window_size' must be an integer"),
    ],
)
def test_bad_hyperparameters_are_named(values: dict[str, object], message: str) -> None:
    with pytest.raises(HyperparameterError, match=message):
        gensim_kwargs(values)


# ---------------------------------------------------------------------------------------------- training

SHERLOCK = ["sherlock-season-1", "sherlock-season-2", "sherlock-season-3", "sherlock-season-4"]
KIDS = ["peppa-pig", "paw-patrol", "bubble-guppies", "dora-the-explorer"]
WAR = ["band-of-brothers", "the-pacific", "saving-private-ryan", "dunkirk"]


def tiny_corpus() -> str:
    """Sixty customers, each watching four titles of one of three groups, in a rotating order."""
    lines = []
    for n in range(60):
        group = (SHERLOCK, KIDS, WAR)[n % 3]
        shift = n // 3 % 4
        lines.append(" ".join(group[shift:] + group[:shift]))
    return "\n".join(lines) + "\n"


SMALL: dict[str, Any] = {
    "mode": "skipgram",
    "vector_dim": 16,
    "epochs": 40,
    "min_count": 2,
    "window_size": 3,
    "negative_samples": 3,
    "learning_rate": 0.05,
    "sampling_threshold": 0.5,  # every token is 1/12 of this corpus: keep them all (no down-sampling)
    "subwords": True,
    "min_char": 3,
    "max_char": 6,
    "buckets": 5000,
}


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bt")
    (folder / "corpus.txt").write_text(tiny_corpus(), encoding="utf-8")
    reports: list[EmbeddingsProgress] = []
    result = train_embeddings(
        folder / "corpus.txt", folder / "blazingtext", SMALL, workers=1, seed=3, progress=reports.append
    )
    assert result.vocabulary_size == 12
    assert result.vector_dim == 16
    assert result.corpus_words == 240
    assert result.subwords
    assert reports == [EmbeddingsProgress(e, 40) for e in range(1, 41)]
    return folder / "blazingtext"


def read_vectors_txt(path: Path) -> tuple[tuple[int, int], dict[str, np.ndarray]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    count, dim = (int(x) for x in lines[0].split())
    table = {}
    for line in lines[1:]:
        token, *numbers = line.split(" ")
        assert len(numbers) == dim, line
        table[token] = np.array([float(x) for x in numbers])
    return (count, dim), table


def test_vectors_txt_is_word2vec_text_format_with_one_line_per_title(trained: Path) -> None:
    (count, dim), table = read_vectors_txt(trained / "vectors.txt")
    assert (count, dim) == (12, 16)
    assert sorted(table) == sorted(SHERLOCK + KIDS + WAR)
    assert len((trained / "vectors.txt").read_text(encoding="utf-8").splitlines()) == 13


def test_titles_watched_together_are_closer_than_unrelated_ones(trained: Path) -> None:
    _, table = read_vectors_txt(trained / "vectors.txt")
    related = cosine(table["sherlock-season-1"], table["sherlock-season-2"])
    assert related > cosine(table["sherlock-season-1"], table["peppa-pig"])
    assert related > cosine(table["sherlock-season-1"], table["band-of-brothers"])
    assert cosine(table["peppa-pig"], table["paw-patrol"]) > cosine(table["peppa-pig"], table["dunkirk"])


def test_vectors_bin_gives_an_unseen_title_a_vector_from_its_subwords(trained: Path) -> None:
    vectors = SubwordVectors.load(trained / "vectors.bin")
    assert vectors.dim == 16 and vectors.has_subwords
    assert "sherlock-season-5" not in vectors and "sherlock-season-1" in vectors
    s1, s5, noise = vectors.vectors(["sherlock-season-1", "sherlock-season-5", "qzxwvkjhgfpt"])
    assert np.linalg.norm(s5) > 0
    assert cosine(s5, s1) > cosine(noise, s1)
    assert cosine(s5, s1) > 0.5
    # Vocabulary tokens come back as vectors.txt has them.
    _, table = read_vectors_txt(trained / "vectors.txt")
    np.testing.assert_allclose(s1, table["sherlock-season-1"], rtol=1e-5, atol=1e-6)
    # The one-call form, as used for a handful of tokens.
    np.testing.assert_array_equal(token_vectors(trained / "vectors.bin", ["sherlock-season-5"])[0], s5)


def test_the_runtime_servers_loader_reads_vectors_bin(trained: Path) -> None:
    from gensim.models.fasttext import load_facebook_model  # noqa: PLC0415 (slow import)

    model = load_facebook_model(str(trained / "vectors.bin"))
    assert model.wv.vector_size == 16
    expected = SubwordVectors.load(trained / "vectors.bin").vectors(["sherlock-season-5"])[0]
    np.testing.assert_allclose(model.wv["sherlock-season-5"], expected, rtol=1e-6)


def test_without_subwords_an_unseen_token_has_no_vector(tmp_path: Path) -> None:
    (tmp_path / "corpus.txt").write_text(tiny_corpus(), encoding="utf-8")
    result = train_embeddings(
        tmp_path / "corpus.txt", tmp_path / "bt", {**SMALL, "subwords": False, "epochs": 2}, workers=1
    )
    assert not result.subwords
    vectors = SubwordVectors.load(tmp_path / "bt" / "vectors.bin")
    assert not vectors.has_subwords
    assert vectors.vectors(["peppa-pig"]).shape == (1, 16)
    with pytest.raises(KeyError, match=r"'sherlock-season-5' is not in the vocabulary .* subwords=False"):
        vectors.vectors(["sherlock-season-5"])


def test_a_corpus_without_frequent_tokens_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "corpus.txt").write_text("a b c\nd e f\n", encoding="utf-8")
    with pytest.raises(ValueError, match="has no token that occurs min_count=5 times"):
        train_embeddings(tmp_path / "corpus.txt", tmp_path / "bt", {"mode": "skipgram"}, workers=1)
    with pytest.raises(ValueError, match="no corpus file at"):
        train_embeddings(tmp_path / "missing.txt", tmp_path / "bt", {"mode": "skipgram"}, workers=1)
    assert not (tmp_path / "bt").exists()
