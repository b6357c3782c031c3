"""The known-title vector table (serving/ of a run) and cosine nearest neighbours against it.

The one module of the shims that imports numpy (shipped to Lambda as a layer that `make install` unpacks
from the pinned wheel): the best pure-stdlib scan of 40k x 100 floats took 70 to 130 ms per title on a busy
2-core machine, against the 50 ms target; numpy's product takes 0.2 to 0.3 ms there (bench/serving.py
prints both).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lambdas.kit.errors import RunUnreadableError

FloatMatrix = npt.NDArray[np.float32]


def unit_vector(values: Sequence[float]) -> FloatMatrix | None:
    """values / ||values|| as float32, or None when the vector is zero or not finite (no direction)."""
    vector = np.asarray(values, dtype=np.float64)
    norm = float(np.sqrt(np.dot(vector, vector)))
    if not math.isfinite(norm) or norm == 0.0:
        return None
    return (vector / norm).astype(np.float32)


@dataclass(frozen=True)
class TitleTable:
    """Known-title tokens and their L2-normalized vectors, row-aligned."""

    tokens: list[str]
    matrix: FloatMatrix
    """(len(tokens), dim) float32, every row of unit length."""
    rows: dict[str, int]

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def vector(self, token: str) -> FloatMatrix | None:
        row = self.rows.get(token)
        return None if row is None else self.matrix[row]

    def nearest(
        self, queries: Sequence[FloatMatrix], k: int, *, exclude: Sequence[str | None] = ()
    ) -> list[list[tuple[str, float]]]:
        """For each unit query vector, its k most similar known titles as (token, cosine), best first.

        Ties are broken by table row (the order of titles.txt). exclude[i], when a token, is left out of the
        answer of query i (a known title is not its own neighbour).
        """
        if not queries:
            return []
        scores = self.matrix @ np.stack(queries).T  # (count, len(queries))
        count = scores.shape[0]
        answers: list[list[tuple[str, float]]] = []
        for q in range(len(queries)):
            column = scores[:, q]
            token = exclude[q] if q < len(exclude) else None
            skip = None if token is None else self.rows.get(token)
            wanted = min(count, k + (skip is not None))
            # The k best without sorting the whole column: partition, then sort the few by (-score, row).
            candidates = np.argpartition(-column, wanted - 1)[:wanted] if wanted < count else np.arange(count)
            order = candidates[np.lexsort((candidates, -column[candidates]))]
            answer = [(self.tokens[int(row)], float(column[row])) for row in order if int(row) != skip]
            answers.append(answer[:k])
        return answers


def parse_title_table(titles_txt: bytes, titles_f32: bytes, titles_json: bytes) -> TitleTable:
    """The three files of serving/ -> TitleTable; RunUnreadableError names the file and the problem."""
    try:
        meta = json.loads(titles_json)
        dim, count = int(meta["dim"]), int(meta["count"])
    except (ValueError, KeyError, TypeError) as exc:
        raise RunUnreadableError(f"titles.json: not {{dim, count}} ({exc!r})") from None
    text = titles_txt.decode("utf-8")
    tokens = text[:-1].split("\n") if text.endswith("\n") else (text.split("\n") if text else [])
    if len(tokens) != count:
        raise RunUnreadableError(f"titles.txt: {len(tokens)} titles, titles.json says {count}")
    if dim < 1 or len(titles_f32) != 4 * dim * count:
        raise RunUnreadableError(
            f"titles.f32: {len(titles_f32)} bytes, titles.json says {count} x {dim} float32"
        )
    matrix = np.frombuffer(titles_f32, dtype="<f4").reshape(count, dim).astype(np.float32, copy=False)
    rows = {token: row for row, token in enumerate(tokens)}
    if len(rows) != count:
        raise RunUnreadableError("titles.txt: a title appears twice")
    return TitleTable(tokens=tokens, matrix=matrix, rows=rows)
