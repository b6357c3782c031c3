"""recommendations/: gzipped JSON Lines shards, one line per customer, and the manifest, written last.

A line (UTF-8, keys in this order):

    {"customer_id": "C1", "recommendations": [{"product_id": "P9", "title": "...", "score": 4.52}, ...],
     "fallback": false}

best first; score is FM's (the rating the FM endpoint predicts for the customer, the product and the job's
date), rounded to 6 decimals; fallback is true for a customer the model does not know (most popular
products instead). A customer who reviewed all but fewer than k products has fewer entries.

Shards are part-00000.jsonl.gz, part-00001.jsonl.gz, ..., each up to `lines_per_shard` lines, each written
under a hidden temporary name and renamed when complete; the gzip headers carry no name and no time, so the
same recommendations give the same bytes.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from contract.index import ServingIndex
from fm.topn import BatchTopN

SHARD_PATTERN = "part-{:05d}.jsonl.gz"
_GZIP_LEVEL = 6


@dataclass(frozen=True)
class ShardInfo:
    name: str
    lines: int
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "lines": self.lines, "bytes": self.bytes}


class LineFormat:
    """Turns top-N arrays into lines; each product's JSON prefix is built once."""

    def __init__(self, index: ServingIndex) -> None:
        self._index = index
        self._products = [
            '{"product_id": ' + json.dumps(p, ensure_ascii=False) + ', "title": '
            + json.dumps(t, ensure_ascii=False) + ', "score": '
            for p, t in zip(index.product_ids, index.product_titles, strict=True)
        ]  # fmt: skip

    def lines(self, batch: BatchTopN, *, fallback: bool = False) -> list[str]:
        ids = self._index.customer_ids
        flag = "true" if fallback else "false"
        out: list[str] = []
        rows = batch.rows.tolist()
        scores = np.round(batch.scores, 6).tolist()
        for customer, row, score, count in zip(
            batch.customers.tolist(), rows, scores, batch.counts.tolist(), strict=True
        ):
            entries = ", ".join(
                f"{self._products[r]}{s!r}}}" for r, s in zip(row[:count], score[:count], strict=True)
            )
            customer_id = json.dumps(ids[customer], ensure_ascii=False)
            out.append(
                f'{{"customer_id": {customer_id}, "recommendations": [{entries}], "fallback": {flag}}}\n'
            )
        return out


class ShardWriter:
    """Writes lines into numbered gzip shards of at most lines_per_shard lines each."""

    def __init__(self, folder: Path, *, lines_per_shard: int) -> None:
        if lines_per_shard < 1:
            raise ValueError(f"lines_per_shard must be >= 1, got {lines_per_shard}")
        self.folder = folder
        self.lines_per_shard = lines_per_shard
        self.shards: list[ShardInfo] = []
        self._raw: IO[bytes] | None = None
        self._gzip: gzip.GzipFile | None = None
        self._text: io.TextIOWrapper | None = None
        self._lines = 0

    def _partial(self, number: int) -> Path:
        return self.folder / f".{SHARD_PATTERN.format(number)}.partial"

    def _open(self) -> io.TextIOWrapper:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._raw = self._partial(len(self.shards)).open("wb")
        self._gzip = gzip.GzipFile(
            filename="", mode="wb", fileobj=self._raw, compresslevel=_GZIP_LEVEL, mtime=0
        )
        self._text = io.TextIOWrapper(self._gzip, encoding="utf-8", newline="\n")
        self._lines = 0
        return self._text

    def _finish(self) -> None:
        if self._text is None or self._gzip is None or self._raw is None:
            return
        self._text.flush()
        self._text.detach()
        self._gzip.close()
        self._raw.close()
        number = len(self.shards)
        name = SHARD_PATTERN.format(number)
        os.replace(self._partial(number), self.folder / name)
        self.shards.append(ShardInfo(name, self._lines, (self.folder / name).stat().st_size))
        self._text = self._gzip = self._raw = None

    def write(self, lines: list[str]) -> None:
        start = 0
        while start < len(lines):
            text = self._text or self._open()
            room = self.lines_per_shard - self._lines
            part = lines[start : start + room]
            text.writelines(part)
            self._lines += len(part)
            start += len(part)
            if self._lines == self.lines_per_shard:
                self._finish()

    def close(self) -> list[ShardInfo]:
        """Finish the last shard; the shards written, in order."""
        self._finish()
        return list(self.shards)


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """manifest.json, atomically (a temporary name, then a rename): the job's last write."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    os.replace(partial, path)
