"""The batch recommendations job as one function: the factors and the index in, recommendations/ out.

The container's entrypoint (python -m jobs.recommend) and the local twin both call `run_recommend`.
"""

from __future__ import annotations

import datetime as dt
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from contract import layout
from contract.index import IndexFormatError, load_index
from fm.factors import FactorsFormatError, load_factors
from fm.topn import DEFAULT_CHUNK_CUSTOMERS, epoch_day, iter_top_n, time_values
from jobs.recommend.output import LineFormat, ShardWriter, write_manifest

RECOMMENDATIONS_SCHEMA_VERSION = 1
MANIFEST_FILE = layout.RECOMMENDATIONS_MANIFEST.removeprefix(layout.RECOMMENDATIONS)
LINE_FORMAT = (
    '{"customer_id", "recommendations": [{"product_id", "title", "score"}, ...] best first, "fallback"}; '
    "score: FM's predicted rating on the job's date, 6 decimals"
)


class RecommendError(Exception):
    """The job cannot run on these inputs; the message names the cause on one line."""


@dataclass(frozen=True)
class RecommendConfig:
    """Everything that changes what the job writes, and how it spreads the work."""

    k: int = 10
    date: dt.date | None = None
    """The date the recommendations are for (the time feature); None: today, UTC."""
    exclude_reviewed: bool = True
    popularity_weight: float = 0.0
    """Ranking key = FM's score + this x log(1 + reviews) (fm.topn); 0: FM's score alone."""
    chunk_customers: int = DEFAULT_CHUNK_CUSTOMERS
    lines_per_shard: int = 50_000
    workers: int = 1

    def validate(self) -> None:
        checks = (
            (self.k >= 1, f"k must be >= 1, got {self.k}"),
            (self.popularity_weight >= 0.0, f"popularity_weight must be >= 0, got {self.popularity_weight}"),
            (self.chunk_customers >= 1, f"chunk_customers must be >= 1, got {self.chunk_customers}"),
            (self.lines_per_shard >= 1, f"lines_per_shard must be >= 1, got {self.lines_per_shard}"),
            (self.workers >= 1, f"workers must be >= 1, got {self.workers}"),
        )
        for ok, message in checks:
            if not ok:
                raise RecommendError(f"invalid configuration: {message}")


def _stderr(message: str) -> None:
    print(f"recommend: {message}", file=sys.stderr, flush=True)


def _peak_rss_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024  # Linux: kilobytes


def _check_output(folder: Path) -> None:
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise RecommendError(f"output folder {folder} is not an empty folder: give a new folder for each run")


def run_recommend(
    factors_dir: Path,
    index_dir: Path,
    output_dir: Path,
    config: RecommendConfig,
    log: Callable[[str], None] = _stderr,
) -> dict[str, Any]:
    """Write the top-k of every customer of the index into output_dir; return the manifest (written last).

    Raises RecommendError, one line naming the cause, when the inputs are missing, malformed or from
    different runs, or the output folder is not empty."""
    config.validate()
    _check_output(output_dir)
    date = config.date or dt.datetime.now(dt.UTC).date()
    started = time.perf_counter()
    try:
        index = load_index(index_dir)
    except (OSError, IndexFormatError) as e:
        raise RecommendError(f"index at {index_dir}: {e}") from None
    try:
        factors = load_factors(factors_dir, features=index.features)
    except FactorsFormatError as e:
        raise RecommendError(f"serving factors at {factors_dir}: {e}") from None
    loaded = time.perf_counter()
    n = index.num_customers
    log(
        f"loaded {n:,} customers, {index.num_products:,} products, {factors.num_factors} factors in "
        f"{loaded - started:.2f} s; top {config.k} for {date.isoformat()}, "
        f"{'excluding' if config.exclude_reviewed else 'including'} reviewed products, "
        f"popularity weight {config.popularity_weight:g}, {config.workers} worker(s)"
    )

    customers = np.arange(n, dtype=np.int64)
    times = time_values(index, customers, epoch_day(date))
    lines = LineFormat(index)
    writer = ShardWriter(output_dir, lines_per_shard=config.lines_per_shard)
    chunks = -(-n // config.chunk_customers)
    done = short = 0
    for number, batch in enumerate(
        iter_top_n(
            factors,
            customers,
            times,
            k=config.k,
            exclude_reviewed=config.exclude_reviewed,
            popularity_weight=config.popularity_weight,
            chunk_customers=config.chunk_customers,
            workers=config.workers,
        ),
        start=1,
    ):
        writer.write(lines.lines(batch))
        done += batch.customers.shape[0]
        short += int((batch.counts < min(config.k, index.num_products)).sum())
        elapsed = time.perf_counter() - loaded
        log(
            f"chunk {number}/{chunks}: {done:,}/{n:,} customers, {done / elapsed:,.0f} customers/s, "
            f"{elapsed:.1f} s, peak RSS {_peak_rss_mb():,} MB"
        )
    shards = writer.close()
    finished = time.perf_counter()
    manifest: dict[str, Any] = {
        "schema_version": RECOMMENDATIONS_SCHEMA_VERSION,
        "line_format": LINE_FORMAT,
        "date": date.isoformat(),
        "k": config.k,
        "exclude_reviewed": config.exclude_reviewed,
        "popularity_weight": config.popularity_weight,
        "counts": {
            "customers": n,
            "lines": done,
            "fallback_lines": 0,  # every customer of the index is known to the model
            "short_lines": short,
            "products": index.num_products,
        },
        "num_factors": factors.num_factors,
        "shards": [s.to_json() for s in shards],
        "timings_s": {
            "load": round(loaded - started, 3),
            "score_and_write": round(finished - loaded, 3),
            "total": round(finished - started, 3),
        },
        "customers_per_second": round(done / max(finished - loaded, 1e-9), 1),
        "peak_rss_mb": _peak_rss_mb(),
        "settings": {"chunk_customers": config.chunk_customers, "workers": config.workers},
    }
    write_manifest(output_dir / MANIFEST_FILE, manifest)
    log(f"done: {done:,} customers in {len(shards)} shard(s), {finished - started:.1f} s")
    return manifest
