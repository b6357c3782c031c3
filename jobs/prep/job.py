"""The prep job as one function: input folder in, a run's prep/ folder out.

The container's entrypoint (python -m jobs.prep) and the local pipeline both call `run_prep`.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from contract import layout
from contract.documents import BASELINE_COLUMNS, MANIFEST_SCHEMA_VERSION, Baselines, Manifest
from contract.features import RATING_RANGE
from jobs.prep import split
from jobs.prep.baselines import BiasSettings, Rows, compute_baselines
from jobs.prep.destination import Destination
from jobs.prep.failure import PrepError, fmt_count, name_list
from jobs.prep.outputs import (
    Corpus,
    shard_name,
    train_shards,
    write_corpus,
    write_json_atomically,
    write_predictions,
    write_records,
    write_serving_index,
)
from jobs.prep.prepare import Prepared, Thresholds, prepare
from jobs.prep.read import Reviews, find_input_files, read_reviews


@dataclass(frozen=True)
class PrepConfig:
    """Everything that changes what the job writes. Defaults: the notebook's thresholds, cdk.json's FM
    instance count."""

    thresholds: Thresholds = field(default_factory=Thresholds)
    max_bad_row_fraction: float = 0.01
    fm_instance_count: int = 4
    # One file per FM host: ShardedByS3Key hands each host whole files, so more files per host would
    # only add objects. Raise it to keep files small when a host's share is large.
    shards_per_instance: int = 1
    seed: int = 42
    """The train shuffle's seed and the split hash's key (jobs.prep.split)."""
    bias: BiasSettings = field(default_factory=BiasSettings)

    @property
    def train_shards(self) -> int:
        return self.fm_instance_count * self.shards_per_instance

    def validate(self) -> None:
        checks = (
            (self.thresholds.min_customer_reviews >= 1, "min_customer_reviews must be >= 1"),
            (self.thresholds.min_product_reviews >= 1, "min_product_reviews must be >= 1"),
            (0.0 <= self.max_bad_row_fraction <= 1.0, "max_bad_row_fraction must be within 0..1"),
            (self.fm_instance_count >= 1, "fm_instance_count must be >= 1"),
            (self.shards_per_instance >= 1, "shards_per_instance must be >= 1"),
            (
                split.SEED_RANGE[0] <= self.seed <= split.SEED_RANGE[1],
                f"seed must be within {split.SEED_RANGE[0]}..{split.SEED_RANGE[1]} (--seed)",
            ),
        )
        for ok, message in checks:
            if not ok:
                raise PrepError(f"invalid configuration: {message}")


class _Timer:
    def __init__(self, log: Callable[[str], None]) -> None:
        self.seconds: dict[str, float] = {}
        self._log = log

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 3)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024  # Linux: kilobytes
        self._log(f"{name}: {self.seconds[name]:.2f} s (peak RSS so far {peak_mb} MB)")


# How long jemalloc keeps freed pages before returning them to the system. On the full-size file: 0 ms gave
# the lowest peak RSS (~370-410 MB) but twice the system time (~3.3 s: every block's pages faulted in anew);
# jemalloc's default 1 s held ~510 MB; 50 ms holds ~410-430 MB for ~1.7 s of system time.
JEMALLOC_DECAY_MS = 50


def release_memory_promptly() -> None:
    """Have jemalloc return freed memory to the system soon (JEMALLOC_DECAY_MS) when it is pyarrow's
    allocator.

    The entrypoint selects jemalloc before pyarrow loads (ARROW_DEFAULT_MEMORY_POOL): pyarrow's default,
    mimalloc, keeps the blocks freed by the reader's threads, which held the peak RSS on the full-size file
    at ~560 MB. Process-wide, so only the entrypoint calls it."""
    if pa.default_memory_pool().backend_name == "jemalloc":
        pa.jemalloc_set_decay_ms(JEMALLOC_DECAY_MS)


def _stderr(message: str) -> None:
    print(f"prep: {message}", file=sys.stderr, flush=True)


def check_bad_rows(reviews: Reviews, max_fraction: float) -> None:
    """Fail when too many rows are bad or none is usable; the message names the counts by reason."""
    read, bad = reviews.rows_read, reviews.bad_rows
    n_bad = sum(bad.values())
    by_reason = ", ".join(f"{reason} {fmt_count(n)}" for reason, n in bad.items()) or "none"
    files = name_list([f.name for f in reviews.files])
    if reviews.rows_usable == 0:
        skipped = f"; empty files skipped: {name_list(reviews.empty_files)}" if reviews.empty_files else ""
        raise PrepError(
            f"no usable rows: {fmt_count(read)} rows read from {files}, {fmt_count(n_bad)} bad ({by_reason})"
            f"{skipped}"
        )
    if n_bad > max_fraction * read:
        raise PrepError(
            f"too many bad rows: {fmt_count(n_bad)} of {fmt_count(read)} rows read ({n_bad / read:.2%}) "
            f"are bad ({by_reason}), above the limit of {max_fraction:.2%} (--max-bad-row-fraction)"
        )


MIN_TRAIN_ROWS = 1_000
"""Below this many train rows the job warns that the run means little: it is one of FM's mini-batches at
the default mini_batch_size (1,000, cdk.json), so an epoch is a single update, and the quality gate
would compare models fitted to almost nothing."""


def training_set_warnings(*, train_rows: int, num_customers: int, validation_rows: int) -> list[str]:
    """One line per reason the training set is too small to mean anything, or the validation set empty;
    empty when none applies."""
    warnings = []
    if train_rows < MIN_TRAIN_ROWS:
        warnings.append(
            f"small training set: {fmt_count(train_rows)} train rows, fewer than {fmt_count(MIN_TRAIN_ROWS)} "
            "(one FM mini-batch at the default mini_batch_size): the run's figures mean little"
        )
    if train_rows < num_customers:
        warnings.append(
            f"fewer train rows than customers: {fmt_count(train_rows)} train rows for "
            f"{fmt_count(num_customers)} customers (each customer's latest review is a test row): most "
            "customers have no training row; raise --min-customer-reviews"
        )
    if validation_rows == 0:
        warnings.append(
            f"no validation rows: no customer has {split.VALIDATION_MIN_PRODUCTS} distinct products outside "
            "its test pair, so every choice made on validation (tuning, early stopping, shrinkage) has "
            "nothing to go on; raise --min-customer-reviews"
        )
    return warnings


def run_prep(
    input_dir: Path,
    output_dir: Path,
    config: PrepConfig,
    log: Callable[[str], None] = _stderr,
    *,
    in_place: bool = False,
) -> Manifest:
    """Read every .tsv/.tsv.gz under input_dir, write prep/'s layout into output_dir, return the manifest.

    The output folder is checked, and a file written there, before any input is read. `in_place`: write
    straight into output_dir (the Processing job's folder) rather than beside it and rename
    (jobs.prep.destination). Raises PrepError, with one line naming the cause and the counts, when the
    input cannot make a run or the output cannot be written; a failed run leaves no output folder (in
    place: an empty one)."""
    config.validate()
    destination = Destination.open(output_dir, in_place=in_place)
    try:
        manifest = _run(input_dir, destination, config, log)
        destination.commit()
    except BaseException:
        destination.discard()
        raise
    return manifest


def _run(
    input_dir: Path, destination: Destination, config: PrepConfig, log: Callable[[str], None]
) -> Manifest:
    timer = _Timer(log)
    started = time.perf_counter()

    with timer.step("read"):
        reviews = read_reviews(find_input_files(input_dir), root=input_dir)
    if reviews.empty_files:
        log(f"skipped {len(reviews.empty_files)} empty input file(s): {name_list(reviews.empty_files)}")
    log(f"{fmt_count(reviews.rows_read)} rows read, {fmt_count(reviews.rows_usable)} usable")
    log(f"bad rows by reason: {reviews.bad_rows}")
    check_bad_rows(reviews, config.max_bad_row_fraction)

    with timer.step("prepare"):
        prepared = prepare(reviews, config.thresholds, config.seed)
    train_rows = np.flatnonzero(prepared.is_train)
    validation_rows = np.flatnonzero(prepared.is_validation)
    test_rows = np.flatnonzero(prepared.is_test)
    n_shards = config.train_shards
    if len(train_rows) < n_shards:
        raise PrepError(
            f"too few training rows: {fmt_count(len(train_rows))} train rows for {n_shards} shards "
            f"(--fm-instance-count {config.fm_instance_count} "
            f"x --shards-per-instance {config.shards_per_instance})"
        )

    def rows_at(positions: np.ndarray) -> Rows:
        return Rows(prepared.user[positions], prepared.item[positions], prepared.rating[positions])

    with timer.step("baselines"):
        baselines, on_test, on_validation = compute_baselines(
            train=rows_at(train_rows),
            test=rows_at(test_rows),
            validation=rows_at(validation_rows),
            num_users=prepared.num_customers,
            num_items=prepared.num_products,
            settings=config.bias,
        )

    out = destination.work
    with timer.step("write_train"):
        shard_rows = []
        for i, rows in enumerate(train_shards(train_rows, n_shards, config.seed)):
            with destination.writing(out / layout.in_prep(layout.TRAIN) / shard_name(i)) as path:
                shard_rows.append(write_records(path, prepared, rows))
    with timer.step("write_validation_test"):
        for shard, positions in ((layout.VALIDATION_SHARD, validation_rows), (layout.TEST_SHARD, test_rows)):
            with destination.writing(out / layout.in_prep(shard)) as path:
                write_records(path, prepared, positions)
        for name, predictions in (
            (layout.BASELINES_TEST, on_test),
            (layout.BASELINES_VALIDATION, on_validation),
        ):
            with destination.writing(out / layout.in_prep(name)) as path:
                write_predictions(path, predictions)
    with timer.step("write_corpus"), destination.writing(out / layout.in_prep(layout.CORPUS_FILE)) as path:
        corpus = write_corpus(path, prepared)
    with timer.step("write_index"), destination.writing(out / layout.in_prep(layout.INDEX)) as path:
        write_serving_index(path, prepared, baselines["global_mean"]["value"])
    timer.seconds["total"] = round(time.perf_counter() - started, 3)
    warnings = training_set_warnings(
        train_rows=len(train_rows), num_customers=prepared.num_customers, validation_rows=len(validation_rows)
    )
    for warning in warnings:
        log(f"warning: {warning}")
    manifest = _manifest(
        reviews=reviews,
        prepared=prepared,
        config=config,
        baselines=baselines,
        shard_rows=shard_rows,
        corpus=corpus,
        timings=timer.seconds,
        warnings=warnings,
    )
    # Last, and atomically: the manifest is what makes the folder a run.
    with destination.writing(out / layout.in_prep(layout.MANIFEST)) as path:
        write_json_atomically(path, manifest)
    log(
        f"done: N={prepared.num_customers} M={prepared.num_products} feature_dim={prepared.feature_dim} "
        f"train={len(train_rows)} validation={len(validation_rows)} test={len(test_rows)} "
        f"in {timer.seconds['total']:.1f} s"
    )
    return manifest


def _manifest(
    *,
    reviews: Reviews,
    prepared: Prepared,
    config: PrepConfig,
    baselines: Baselines,
    shard_rows: list[int],
    corpus: Corpus,
    timings: dict[str, float],
    warnings: list[str],
) -> Manifest:
    train_rows, test_rows = int(prepared.is_train.sum()), int(prepared.is_test.sum())
    validation_rows = int(prepared.is_validation.sum())
    n_shards = config.train_shards
    manifest: Manifest = {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "inputs": [f.to_json() for f in reviews.files],
        "empty_inputs": reviews.empty_files,
        "warnings": warnings,
        "counts": {
            "rows_read": reviews.rows_read,
            "bad_rows": reviews.bad_rows,
            "rows_usable": reviews.rows_usable,
            "rows_kept": prepared.rows_kept,
            "train_rows": train_rows,
            "validation_rows": validation_rows,
            "test_rows": test_rows,
            "corpus_lines": corpus.lines,
            "empty_files": len(reviews.empty_files),
        },
        "num_customers": prepared.num_customers,
        "num_products": prepared.num_products,
        "feature_dim": prepared.feature_dim,
        "time_transform": prepared.time_transform.to_json(),
        "held_out_titles": corpus.to_json(),
        "baselines": baselines,
        "baseline_predictions": {
            "format": "numpy .npy, float32, shape (rows, len(columns)): row i predicts the shard's row i",
            "columns": list(BASELINE_COLUMNS),
            "test": {"path": layout.BASELINES_TEST, "shard": layout.TEST_SHARD, "rows": test_rows},
            "validation": {
                "path": layout.BASELINES_VALIDATION,
                "shard": layout.VALIDATION_SHARD,
                "rows": validation_rows,
            },
        },
        "thresholds": {**asdict(config.thresholds), "max_bad_row_fraction": config.max_bad_row_fraction},
        "shards": {
            "train": n_shards,
            "validation": 1,
            "test": 1,
            "fm_instance_count": config.fm_instance_count,
            "shards_per_instance": config.shards_per_instance,
            "train_rows_per_shard": shard_rows,
        },
        "split": {
            "test": split.TEST_RULE,
            "validation": split.VALIDATION_RULE,
            "train": split.TRAIN_RULE,
            "hash": split.HASH_RULE,
            "seed": config.seed,
            "validation_min_products": split.VALIDATION_MIN_PRODUCTS,
        },
        "seed": config.seed,
        "rating_range": list(RATING_RANGE),
        "timings_s": timings,
    }
    return manifest
