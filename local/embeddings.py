"""Title embeddings: gensim's FastText standing in for SageMaker BlazingText in Word2Vec mode.

    python -m local.embeddings --corpus runs/x/prep/corpus/corpus.txt --output runs/x/blazingtext \\
        --hyperparameters '{"mode": "skipgram", "subwords": true, "min_char": 5, "max_char": 10}'

BlazingText's Word2Vec hyperparameters (their names, defaults and ranges as SageMaker documents them) map to
gensim's FastText arguments through ``gensim_kwargs``, a pure function:

    mode               skipgram -> sg=1; cbow -> sg=0; batch_skipgram -> sg=1 (BlazingText's batched
                       skip-gram for GPUs and several hosts; gensim trains plain skip-gram); supervised (text
                       classification) is rejected: it gives no word vectors to stand in for
    vector_dim         vector_size            window_size         window
    negative_samples   negative               min_count           min_count
    sampling_threshold sample                 epochs              epochs
    learning_rate      alpha (decayed linearly over training, as in BlazingText and fastText)
    subwords           True: character n-grams of min_char..max_char characters (min_n, max_n), hashed
                       into `buckets` rows, so a token outside the vocabulary gets a vector from its
                       n-grams (the cold start needs this). False (BlazingText's default): max_n=0 and
                       bucket=0, no n-gram vectors, and a token outside the vocabulary has no vector.
    min_char, max_char min_n, max_n (only with subwords)
    buckets            bucket (only with subwords; default LOCAL_BUCKETS, see below)
    batch_size         checked, no gensim equivalent (it sizes batch_skipgram's GPU batches)
    evaluation         checked, ignored: BlazingText scores the vectors on WordSimilarity-353, an English
                       word list that says nothing about title tokens; the local run does not evaluate
    word_ngrams        unknown: a text-classification (supervised) hyperparameter, not a Word2Vec one

Training reads the corpus file (one line per customer, space-separated tokens) with gensim's corpus_file
mode, on every CPU core, from a fixed seed (with several workers, thread scheduling still makes runs differ
slightly; workers=1 is reproducible). The outputs are BlazingText's two artifacts: vectors.txt (word2vec text
format, one line per vocabulary token) and vectors.bin (fastText's binary format, from which
``load_facebook_model`` / ``load_facebook_vectors`` rebuild subword vectors for unseen tokens).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from contract.algorithms import BLAZINGTEXT_HYPERPARAMETERS
from local.hyperparameters import HyperparameterError, HyperparameterReader, hyperparameters_argument
from local.progress import Progress

__all__ = [
    "LOCAL_BUCKETS",
    "MODES",
    "VECTORS_BIN",
    "VECTORS_TXT",
    "EmbeddingsProgress",
    "EmbeddingsResult",
    "SubwordVectors",
    "embeddings_display",
    "gensim_kwargs",
    "token_vectors",
    "train_embeddings",
]

F32 = npt.NDArray[np.float32]

ALGORITHM = "BlazingText"
# The n-gram hash table: a (buckets, vector_dim) float32 matrix, allocated whole before training and written
# whole into vectors.bin, whatever the vocabulary. BlazingText's (and fastText's, and gensim's) default of
# 2,000,000 buckets costs 2,000,000 x 100 x 4 bytes = 800 MB at vector_dim 100: in RAM while training (peak
# RSS 1.7 GB measured on a full-scale synthetic corpus), on disk in vectors.bin (783 MB), and again in the
# server that loads that file. 200,000 buckets cost 80 MB (peak RSS 0.34 GB, vectors.bin 97 MB), in the same
# training time. The price is hash collisions: a vocabulary of ~18,000 titles with 5..10-character n-grams
# (100 to 300 distinct n-grams a title) fills every one of 200,000 buckets several times over, so the
# n-grams of an unrelated string land in trained buckets. Measured on that synthetic corpus, an unseen
# season of a known show keeps its similarity (cosine 0.91 with either table) while random strings move
# from 0.14 to 0.29 towards known titles. Set `buckets` to train with BlazingText's table.
LOCAL_BUCKETS = 200_000
VECTORS_TXT = "vectors.txt"
VECTORS_BIN = "vectors.bin"
"""BlazingText's two artifacts in its output folder: word2vec text format, and fastText's binary model."""
MODES = ("skipgram", "cbow", "batch_skipgram", "supervised")
"""The modes the reader knows: contract.algorithms.BLAZINGTEXT_MODES, which give word vectors, and supervised,
rejected with its own message; in the order the error message lists them."""


def gensim_kwargs(
    hyperparameters: Mapping[str, object],
    *,
    default_buckets: int = LOCAL_BUCKETS,
    workers: int = 1,
    seed: int = 1,
) -> dict[str, Any]:
    """gensim FastText keyword arguments for a BlazingText Word2Vec hyperparameter dictionary.

    Defaults are BlazingText's, except buckets (default_buckets when `buckets` is not given). Values have
    JSON types (int, int or float, bool, str). Raises HyperparameterError naming the key for an unknown key,
    a wrong type, a value out of range, or a mode or key the local stand-in cannot honour.
    """
    r = HyperparameterReader(ALGORITHM, hyperparameters, BLAZINGTEXT_HYPERPARAMETERS)
    mode = r.choice("mode", None, MODES)
    if mode == "supervised":
        raise HyperparameterError(
            f"{ALGORITHM} hyperparameter 'mode' is 'supervised' (text classification): the local stand-in "
            "trains word vectors only (skipgram, cbow or batch_skipgram)"
        )
    if default_buckets < 1:
        raise ValueError(f"default_buckets must be positive, got {default_buckets}")
    r.integer("batch_size", 11, minimum=1)
    r.boolean("evaluation", True)
    subwords = r.boolean("subwords", False)
    min_char = r.integer("min_char", 3, minimum=1)
    max_char = r.integer("max_char", 6, minimum=1)
    buckets = r.integer("buckets", default_buckets, minimum=1)
    if subwords and min_char > max_char:
        raise HyperparameterError(
            f"{ALGORITHM} hyperparameter 'min_char' ({min_char}) must not exceed 'max_char' ({max_char})"
        )
    return {
        "sg": 0 if mode == "cbow" else 1,
        "hs": 0,
        "vector_size": r.integer("vector_dim", 100, minimum=1),
        "window": r.integer("window_size", 5, minimum=1),
        "negative": r.integer("negative_samples", 5, minimum=1),
        "min_count": r.integer("min_count", 5, minimum=0),
        "sample": r.number("sampling_threshold", 0.0001, above=0.0, below=1.0),
        "epochs": r.integer("epochs", 5, minimum=1),
        "alpha": r.number("learning_rate", 0.05, above=0.0),
        "min_n": min_char,
        "max_n": max_char if subwords else 0,
        "bucket": buckets if subwords else 0,
        "word_ngrams": 1,
        "workers": workers,
        "seed": seed,
    }


@dataclass(frozen=True)
class EmbeddingsProgress:
    epoch: int  # epochs finished, 1-based
    epochs: int


def embeddings_display(progress: Progress) -> Callable[[EmbeddingsProgress], None]:
    """Training's reports shown on a Progress: one unit and one milestone per epoch."""

    def report(p: EmbeddingsProgress) -> None:
        progress.advance(p.epoch - progress.done, total=p.epochs)
        progress.milestone(f"epoch {p.epoch}/{p.epochs}")

    return report


@dataclass(frozen=True)
class EmbeddingsResult:
    vocabulary_size: int
    vector_dim: int
    corpus_words: int
    subwords: bool
    seconds: float
    vectors_txt: Path
    vectors_bin: Path


def _epoch_callback(progress: Callable[[EmbeddingsProgress], None], epochs: int) -> Any:
    from gensim.models.callbacks import CallbackAny2Vec  # noqa: PLC0415 (gensim imports slowly)

    class _Report(CallbackAny2Vec):  # type: ignore[misc]  # gensim is untyped
        def __init__(self) -> None:
            self.done = 0

        def on_epoch_end(self, model: Any) -> None:
            self.done += 1
            progress(EmbeddingsProgress(self.done, epochs))

    return _Report()


def train_embeddings(
    corpus: Path,
    output_dir: Path,
    hyperparameters: Mapping[str, object],
    *,
    default_buckets: int = LOCAL_BUCKETS,
    workers: int | None = None,
    seed: int = 1,
    progress: Callable[[EmbeddingsProgress], None] | None = None,
) -> EmbeddingsResult:
    """Train token vectors on a corpus file and write output_dir/vectors.txt and output_dir/vectors.bin.

    workers defaults to the number of CPUs. Raises HyperparameterError for bad hyperparameters and
    ValueError when the corpus is missing, empty, or has no token occurring min_count times.
    """
    kwargs = gensim_kwargs(
        hyperparameters, default_buckets=default_buckets, workers=workers or os.cpu_count() or 1, seed=seed
    )
    if not corpus.is_file():
        raise ValueError(f"no corpus file at {corpus}")
    if corpus.stat().st_size == 0:
        raise ValueError(f"the corpus {corpus} is empty")
    from gensim.models.fasttext import FastText, save_facebook_model  # noqa: PLC0415 (gensim imports slowly)

    began = time.perf_counter()
    model = FastText(**kwargs)
    model.build_vocab(corpus_file=str(corpus))
    if not model.wv.index_to_key:
        raise ValueError(
            f"the corpus {corpus} has no token that occurs min_count={kwargs['min_count']} times"
        )
    callbacks = [] if progress is None else [_epoch_callback(progress, kwargs["epochs"])]
    model.train(
        corpus_file=str(corpus),
        total_words=model.corpus_total_words,
        epochs=model.epochs,
        callbacks=callbacks,
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    vectors_txt = output_dir / VECTORS_TXT
    vectors_bin = output_dir / VECTORS_BIN
    partial_txt = output_dir / f"{VECTORS_TXT}.partial"
    partial_bin = output_dir / f"{VECTORS_BIN}.partial"
    model.wv.save_word2vec_format(str(partial_txt), binary=False)
    save_facebook_model(model, str(partial_bin))
    os.replace(partial_txt, vectors_txt)
    os.replace(partial_bin, vectors_bin)
    return EmbeddingsResult(
        vocabulary_size=len(model.wv.index_to_key),
        vector_dim=int(model.wv.vector_size),
        corpus_words=int(model.corpus_total_words),
        subwords=bool(kwargs["bucket"]),
        seconds=time.perf_counter() - began,
        vectors_txt=vectors_txt,
        vectors_bin=vectors_bin,
    )


class SubwordVectors:
    """Token vectors from a fastText binary (vectors.bin): vocabulary tokens as trained; other tokens from
    their character n-grams when the model has them."""

    def __init__(self, keyed_vectors: Any) -> None:
        self._wv = keyed_vectors  # gensim FastTextKeyedVectors

    @classmethod
    def load(cls, path: Path) -> SubwordVectors:
        if not path.is_file():
            raise FileNotFoundError(f"no fastText model at {path}")
        from gensim.models.fasttext import load_facebook_vectors  # noqa: PLC0415 (gensim imports slowly)

        return cls(load_facebook_vectors(str(path)))

    @property
    def dim(self) -> int:
        return int(self._wv.vector_size)

    @property
    def has_subwords(self) -> bool:
        return bool(self._wv.bucket)

    def __contains__(self, token: object) -> bool:
        """Whether the token is in the trained vocabulary (not whether it can get a vector)."""
        return token in self._wv.key_to_index

    def vectors(self, tokens: Sequence[str]) -> F32:
        """A (len(tokens), dim) float32 array. A token outside the vocabulary gets the mean of its n-gram
        vectors (zeros if it is too short to have any n-gram); without subwords it raises KeyError."""
        out = np.empty((len(tokens), self.dim), np.float32)
        for row, token in enumerate(tokens):
            if not isinstance(token, str):
                raise TypeError(f"tokens must be strings, got {token!r}")
            if not self.has_subwords and token not in self._wv.key_to_index:
                raise KeyError(
                    f"{token!r} is not in the vocabulary and the model has no subword vectors "
                    "(it was trained with subwords=False)"
                )
            out[row] = self._wv.get_vector(token)
        return out


def token_vectors(vectors_bin: Path, tokens: Sequence[str]) -> F32:
    """Load vectors.bin and return the vectors of the tokens (see SubwordVectors.vectors)."""
    return SubwordVectors.load(vectors_bin).vectors(tokens)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local.embeddings",
        description="Train title vectors the way BlazingText does, with gensim.",
    )
    parser.add_argument("--corpus", type=Path, required=True, help="prep/corpus/corpus.txt")
    parser.add_argument("--output", type=Path, required=True, help="where vectors.txt and vectors.bin go")
    parser.add_argument(
        "--hyperparameters", required=True, help="a JSON object of BlazingText hyperparameters, or @file.json"
    )
    parser.add_argument("--workers", type=int, default=None, help="default: the number of CPUs")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        hyperparameters = hyperparameters_argument(args.hyperparameters)
    except (OSError, json.JSONDecodeError) as e:
        parser.error(f"--hyperparameters: {e}")

    try:
        with Progress("BlazingText (gensim)", unit="epoch") as progress:
            result = train_embeddings(
                args.corpus,
                args.output,
                hyperparameters,
                workers=args.workers,
                seed=args.seed,
                progress=embeddings_display(progress),
            )
    except ValueError as e:  # HyperparameterError included
        print(f"local.embeddings: {e}", file=sys.stderr)
        return 2
    summary = {
        "vocabulary_size": result.vocabulary_size,
        "vector_dim": result.vector_dim,
        "corpus_words": result.corpus_words,
        "subwords": result.subwords,
        "seconds": round(result.seconds, 3),
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
