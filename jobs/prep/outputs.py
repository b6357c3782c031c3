"""Writing a run's prep/ folder: RecordIO shards, the baselines' predictions, the BlazingText corpus, the
serving index, the manifest."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from contract.features import NONZEROS_PER_ROW
from contract.index import HELD_OUT_TITLE_SHARE, held_out_title, title_token, write_index
from fm.recordio import write_sparse_records
from jobs.prep.prepare import Prepared


def shard_name(i: int) -> str:
    return f"part-{i:05d}.rio"


def _sparse_parts(
    prepared: Prepared, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """CSR parts of the given rows: keys (user, item, time) of contract.features in ascending order, values
    (1, 1, time).

    Every row stores all three entries, a time value of 0 included, as the notebook's matrix did."""
    n = len(rows)
    layout = prepared.features
    indices = np.empty((n, NONZEROS_PER_ROW), dtype=np.int64)
    indices[:, 0] = layout.user_key(0) + prepared.user[rows]
    indices[:, 1] = layout.item_key(0) + prepared.item[rows]
    indices[:, 2] = layout.time_key
    values = np.ones((n, NONZEROS_PER_ROW), dtype=np.float32)
    values[:, 2] = prepared.time_value[rows]
    indptr = np.arange(0, NONZEROS_PER_ROW * n + 1, NONZEROS_PER_ROW, dtype=np.int64)
    labels = prepared.rating[rows].astype(np.float32)
    return indptr, indices.ravel(), values.ravel(), labels


def write_records(path: Path, prepared: Prepared, rows: np.ndarray) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    indptr, indices, values, labels = _sparse_parts(prepared, rows)
    with path.open("wb") as f:
        return write_sparse_records(f, indptr, indices, values, labels, prepared.feature_dim)


def write_predictions(path: Path, predictions: np.ndarray) -> None:
    """A (rows, columns) array as a float32 .npy file (numpy's format: np.load reads it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        np.save(f, np.ascontiguousarray(predictions, dtype=np.float32), allow_pickle=False)


def train_shards(train_rows: np.ndarray, num_shards: int, seed: int) -> list[np.ndarray]:
    """Split the train rows into `num_shards` parts whose sizes differ by at most one.

    The rows are shuffled first (seeded: the same input and seed give the same files) because the kept rows
    come in customer order: without the shuffle each FM host would see its own slice of the customers
    (ShardedByS3Key gives each host whole files) and the others' user columns would never be trained there."""
    shuffled = np.random.default_rng(seed).permutation(train_rows)
    return np.array_split(shuffled, num_shards)


@dataclass(frozen=True)
class Corpus:
    lines: int
    held_out_titles: int
    """Distinct title tokens left out (contract.index.held_out_title)."""
    held_out_products: int
    """Products whose title is one of them."""

    def to_json(self) -> dict[str, Any]:
        """The manifest's "held_out_titles"."""
        return {
            "titles": self.held_out_titles,
            "products": self.held_out_products,
            "share": HELD_OUT_TITLE_SHARE,
            "rule": (
                "title tokens whose keyed blake2b hash falls below the share (contract.index.held_out_title)"
                " are left out of the corpus; the cold start's shrinkage is chosen on their products'"
                " validation rows, with their vectors built from n-grams as a new title's are"
            ),
        }


def write_corpus(path: Path, prepared: Prepared) -> Corpus:
    """One line per customer (in feature-key order): the title tokens of the customer's kept reviews in
    review-date order (one date's reviews by product id), space-separated, leaving out the held-out titles
    (contract.index.held_out_title; a line may then be empty). Each review contributes its product's title,
    the most frequent one, so that a product has exactly one word, the one the serving index names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    titles = [title_token(t) for t in prepared.product_titles]
    held = np.array([held_out_title(t) for t in titles], dtype=bool)
    tokens = np.array(titles, dtype=object)
    kept = ~held[prepared.item]
    words: list[str] = tokens[prepared.item[kept]].tolist()
    ends = np.cumsum(np.bincount(prepared.user[kept], minlength=prepared.num_customers)).tolist()
    with path.open("w", encoding="utf-8", newline="\n") as f:
        start = 0
        for end in ends:
            f.write(" ".join(words[start:end]))
            f.write("\n")
            start = end
    return Corpus(
        lines=len(ends),
        held_out_titles=len({t for t, h in zip(titles, held, strict=True) if h}),
        held_out_products=int(held.sum()),
    )


def write_serving_index(folder: Path, prepared: Prepared, global_mean: float) -> None:
    write_index(
        folder,
        customer_ids=prepared.customer_ids,
        first_review_days=prepared.first_review_day.tolist(),
        product_ids=prepared.product_ids,
        titles=prepared.product_titles,
        time_transform=prepared.time_transform,
        global_mean=global_mean,
    )


def write_json_atomically(path: Path, data: Mapping[str, Any]) -> None:
    """Write JSON to a temporary name and rename it: readers see the whole file or none."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
