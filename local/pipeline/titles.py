"""The title embeddings, looked at: the most reviewed titles for the report's t-SNE map, a similarity probe
in the spirit of the notebook's "sherlock" table, and a measurement of what the title space encodes: how often
a title's nearest other title shares its release year, its decade or a word, against random pairs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from contract import layout
from contract.index import load_index, title_token
from fm.recordio import SparseRecords
from local.embeddings import VECTORS_BIN, SubwordVectors
from local.pipeline.records import row_keys

__all__ = ["MAP_TITLES", "find_sequel", "title_map", "title_space", "year_of"]

MAP_TITLES = 100
RANDOM_PAIRS = 20_000
_YEAR = re.compile(r"\((\d{4})\)\s*$")
_WORD = re.compile(r"[a-z]{4,}")


def year_of(title: str) -> int | None:
    """The release year a title ends with, "(1995)", as MovieLens writes it; None when there is none."""
    found = _YEAR.search(title)
    return int(found.group(1)) if found else None


def _words(title: str) -> set[str]:
    """The title's words of four letters or more, its year left out: what a sequel shares with its
    original."""
    return set(_WORD.findall(_YEAR.sub("", title).lower()))


def title_space(titles: list[str], matrix: npt.NDArray[np.float64], seed: int) -> dict[str, Any]:
    """What the title vectors encode, measured: for each title, its nearest other title by cosine; the share
    of those pairs with the same release year, the same decade, a shared word, and their mean year gap,
    against the same figures over seeded random pairs of titles (chance). `matrix` holds one vector per
    title. A property that nearest neighbours share far more often than random pairs is in the space."""
    count = len(titles)
    if count < 3:
        return {"titles": count}
    unit = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    nearest = np.empty(count, np.int64)
    for lo in range(0, count, 512):
        block = unit[lo : lo + 512] @ unit.T
        block[np.arange(block.shape[0]), np.arange(lo, lo + block.shape[0])] = -np.inf
        nearest[lo : lo + 512] = np.argmax(block, axis=1)
    rng = np.random.default_rng(seed)
    a = rng.integers(0, count, RANDOM_PAIRS)
    b = (a + rng.integers(1, count, RANDOM_PAIRS)) % count  # never a title with itself
    years = [year_of(t) for t in titles]
    words = [_words(t) for t in titles]

    def shares(left: npt.NDArray[np.int64], right: npt.NDArray[np.int64]) -> dict[str, float | int | None]:
        dated = [(years[i], years[j]) for i, j in zip(left.tolist(), right.tolist(), strict=True)]
        dated = [(x, y) for x, y in dated if x is not None and y is not None]
        worded = [bool(words[i] & words[j]) for i, j in zip(left.tolist(), right.tolist(), strict=True)]
        return {
            "pairs": len(worded),
            "dated_pairs": len(dated),
            "same_year": float(np.mean([x == y for x, y in dated])) if dated else None,
            "same_decade": float(np.mean([x // 10 == y // 10 for x, y in dated])) if dated else None,
            "mean_year_gap": float(np.mean([abs(x - y) for x, y in dated])) if dated else None,
            "shared_word": float(np.mean(worded)),
        }

    return {
        "titles": count,
        "nearest_neighbours": shares(np.arange(count), nearest),
        "random_pairs": shares(a, b),
        "random_seed": seed,
    }


def title_map(run_folder: Path, train: SparseRecords, seed: int = 0) -> dict[str, Any]:
    """The MAP_TITLES most reviewed titles with vectors, for the t-SNE map; a similarity probe in the
    notebook's spirit: a title, its real sequel, a made-up sequel, a related title, an unrelated one, a random
    string; and what the title space encodes (title_space) over every known title with a vector."""
    index = load_index(run_folder / layout.INDEX)
    vectors = SubwordVectors.load(run_folder / layout.BLAZINGTEXT_OUTPUT / VECTORS_BIN)
    counts = np.bincount(row_keys(train, index.features).product, minlength=index.num_products)
    order = np.argsort(-counts, kind="stable")
    tokens: list[str] = []
    for i in order:
        token = title_token(index.product_titles[int(i)])
        if token in vectors and token not in tokens:
            tokens.append(token)
        if len(tokens) == MAP_TITLES:
            break
    probe = find_sequel(index.product_titles, order, vectors)
    known = {title_token(t): t for t in index.product_titles}
    with_vectors = [token for token in known if token in vectors]
    space = title_space(
        [known[token] for token in with_vectors],
        vectors.vectors(with_vectors).astype(np.float64),
        seed,
    )
    return {"tokens": tokens, "vectors": vectors.vectors(tokens).tolist(), "probe": probe, "space": space}


def find_sequel(
    titles: list[str], order: npt.NDArray[np.int64], vectors: SubwordVectors
) -> dict[str, Any] | None:
    """The most reviewed title whose sequel ("<title> 2 (year)") is also known, with its probe rows."""
    known = {title_token(t): t for t in titles}
    for i in order[:2000]:
        title = titles[int(i)]
        base, _, year = title.rpartition(" (")
        if not base or not year.endswith(")"):
            continue
        sequels = [t for t in known.values() if t.startswith(f"{base} 2 (") or t.startswith(f"{base} II (")]
        if not sequels:
            continue
        tokens = {
            "title": title_token(title),
            "real sequel": title_token(sequels[0]),
            "made-up sequel": title_token(f"{base} 5 (2031)"),
            "random string": "abcdefghijklmn",
        }
        if not all(t in vectors for t in (tokens["title"], tokens["real sequel"])):
            continue
        all_tokens = [t for t in known if t in vectors]
        matrix = vectors.vectors(all_tokens)
        matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        query = vectors.vectors([tokens["title"]])[0]
        similarity = matrix @ (query / np.linalg.norm(query))
        ranked = [all_tokens[j] for j in np.argsort(-similarity)]
        related = next(t for t in ranked if t not in (tokens["title"], tokens["real sequel"]))
        tokens = {
            **tokens,
            "related title (its nearest other known title)": related,
            "unrelated title": ranked[-1],
        }
        probe = vectors.vectors([tokens["title"]])[0]
        rows = []
        for role, token in tokens.items():
            vector = vectors.vectors([token])[0]
            denominator = float(np.linalg.norm(probe) * np.linalg.norm(vector)) or 1.0
            rows.append({"role": role, "token": token, "cosine": float(probe @ vector) / denominator})
        return {"title": title, "rows": rows}
    return None
