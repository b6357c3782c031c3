"""The title embeddings, looked at: the most reviewed titles for the report's t-SNE map, and a similarity
probe in the spirit of the notebook's "sherlock" table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from contract import layout
from contract.index import load_index, title_token
from fm.recordio import SparseRecords
from local.embeddings import VECTORS_BIN, SubwordVectors
from local.pipeline.records import row_keys

__all__ = ["MAP_TITLES", "find_sequel", "title_map"]

MAP_TITLES = 100


def title_map(run_folder: Path, train: SparseRecords) -> dict[str, Any]:
    """The MAP_TITLES most reviewed titles with vectors, for the t-SNE map; and a similarity probe in the
    notebook's spirit: a title, its real sequel, a made-up sequel, a related title, an unrelated one, a random
    string."""
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
    return {"tokens": tokens, "vectors": vectors.vectors(tokens).tolist(), "probe": probe}


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
