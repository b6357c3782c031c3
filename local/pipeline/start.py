"""A local run before its steps, as the cloud's "Start run" state: its folder (runs/<run-id>/ under the output
root, with the deployed-run record beside runs/ as in the bucket) and what it is told, checked before any
work: cdk.json's configuration with the run's overrides, the input and output folders."""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract import layout
from contract.hyperparameters import HyperparameterError as ContractHyperparameterError
from contract.hyperparameters import check_blazingtext, check_fm
from jobs.prep.failure import PrepError
from jobs.prep.job import PrepConfig
from jobs.prep.prepare import Thresholds
from jobs.prep.read import find_input_files
from local.embeddings import gensim_kwargs
from local.fm import fm_hyperparameters
from local.hyperparameters import HyperparameterError as LocalHyperparameterError
from local.pipeline import PipelineError
from stacks.config import Config, ConfigError, default_context, load_config

__all__ = [
    "BLAZINGTEXT_OPTION",
    "BUNDLED",
    "COLD_START_OPTION",
    "FM_OPTION",
    "INPUT_OPTION",
    "OUTPUT_OPTION",
    "ROOT",
    "Run",
    "blazingtext_table",
    "check_cold_start_fraction",
    "check_input",
    "check_output",
    "fm_table",
    "load_defaults",
    "new_run",
    "prep_defaults",
]

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "data" / "movielens-latest-small"
SHIMS_RECORD = "shims_record.json"
# The command line's names for what a run is told (python -m local.pipeline), which its errors name.
INPUT_OPTION = "--input"
OUTPUT_OPTION = "--output"
FM_OPTION = "--fm-hyperparameters"
BLAZINGTEXT_OPTION = "--blazingtext-hyperparameters"
COLD_START_OPTION = "--cold-start-fraction"


@dataclass
class Run:
    """One local run: its folder (the same layout as runs/<run-id>/ in S3) and what it measured."""

    root: Path  # the output root: runs/ and serving/ beside each other, as in the bucket
    run_id: str
    timings: dict[str, float] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def folder(self) -> Path:
        return self.root / layout.run_prefix(self.run_id)

    @property
    def record_path(self) -> Path:
        """The deployed-run record (serving/current.json): written only when the gate deploys the run."""
        return self.root / layout.RUN_RECORD_KEY

    @property
    def shims_record_path(self) -> Path:
        """The record the shims read while the run measures them: the run's own, deployed or not, so that
        a rejected run never touches what the deployed serving reads."""
        return self.folder / SHIMS_RECORD

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """A step of the run, timed (a step entered twice adds up)."""
        if name not in self.timings:
            print(f"== {name}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        yield
        self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - started, 2)


def _fresh_run(output_root: Path) -> Run:
    """A run whose folder does not exist yet: local-<UTC time>, with a suffix when that folder exists."""
    stamp = f"local-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}"
    run = Run(output_root, stamp)
    for attempt in range(2, 100):  # two runs in one second get their own folders
        if not run.folder.exists():
            break
        run = Run(output_root, f"{stamp}-{attempt}")
    return run


def _missing(folder: Path) -> list[Path]:
    """`folder` and those of its parents that do not exist, deepest first."""
    missing = []
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    return missing


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # deepest first; a folder that is not empty stays
        with contextlib.suppress(OSError):
            folder.rmdir()


@contextlib.contextmanager
def new_run(output_root: Path) -> Iterator[Run]:
    """A run with a fresh folder, for the time of the run.

    A run that fails (an exception, Ctrl-C) leaves nothing behind: its folder is removed with the folders
    made for it, and the deployed-run record (serving/current.json) is put back as it was, or removed when
    there was none. A half-written run folder would pass for a run with whatever lists runs/, and the record
    must never name a run that is gone; the error line says why the run failed, and the inputs are
    untouched, so running again shows the failure again.
    """
    run = _fresh_run(output_root)
    made = _missing(run.folder)
    serving_made = _missing(run.record_path.parent)
    record = run.record_path.read_bytes() if run.record_path.is_file() else None
    try:
        run.folder.mkdir(parents=True)
    except OSError as error:
        _remove_empty(made[1:])
        raise PipelineError(
            f"{OUTPUT_OPTION} {output_root}: cannot make a run folder there ({error.strerror})"
        ) from None
    try:
        yield run
    except BaseException:
        shutil.rmtree(run.folder, ignore_errors=True)
        if record is not None:
            run.record_path.write_bytes(record)
        else:
            run.record_path.unlink(missing_ok=True)
        _remove_empty(serving_made)
        _remove_empty(made[1:])
        raise


# ---------------------------------------------------------------------------------------------------------
# What a run is told, checked before it starts


def load_defaults() -> Config:
    """cdk.json's configuration: the local run's defaults, as they are the cloud's."""
    try:
        return load_config(default_context())
    except ConfigError as error:
        raise PipelineError(f"cdk.json: {error}") from None


def prep_defaults(config: Config) -> PrepConfig:
    """The prep job's settings from cdk.json (the thresholds, the bad-row limit, the FM instance count), its
    own defaults for the rest."""
    return PrepConfig(
        thresholds=Thresholds(config.min_customer_reviews, config.min_product_reviews),
        max_bad_row_fraction=config.max_bad_row_fraction,
        fm_instance_count=config.fm_instance_count,
    )


def fm_table(config: Config, overrides: Mapping[str, object]) -> dict[str, object]:
    """cdk.json's FM hyperparameters with the run's overrides, key by key, checked before any work: by the
    contract's rules (what the cloud's training job would be sent) and by the local trainer's reader (what
    it trains; feature_dim, known after prep, is read as a stand-in here)."""
    table = {**config.fm_hyperparameters, **overrides}
    try:
        check_fm(table)
        fm_hyperparameters({**table, "feature_dim": 1, "predictor_type": "regressor"})
    except (ContractHyperparameterError, LocalHyperparameterError) as error:
        raise PipelineError(f"{FM_OPTION}: {error}") from None
    return table


def blazingtext_table(config: Config, overrides: Mapping[str, object]) -> dict[str, object]:
    """cdk.json's BlazingText hyperparameters with the run's overrides, key by key, checked before any work
    by the contract's rules and by the local stand-in's reader (local.embeddings.gensim_kwargs)."""
    try:
        table: dict[str, object] = dict(
            check_blazingtext({**config.blazingtext_hyperparameters, **overrides})
        )
        gensim_kwargs(table)
    except (ContractHyperparameterError, LocalHyperparameterError) as error:
        raise PipelineError(f"{BLAZINGTEXT_OPTION}: {error}") from None
    return table


def check_cold_start_fraction(fraction: float) -> float:
    if not 0 <= fraction < 1:
        raise PipelineError(f"{COLD_START_OPTION}: must be at least 0 and below 1, got {fraction}")
    return fraction


def check_input(folder: Path) -> Path:
    """The input folder exists and holds raw files (the prep job's find_input_files)."""
    if not folder.exists():
        raise PipelineError(f"{INPUT_OPTION} {folder}: no such folder")
    if not folder.is_dir():
        raise PipelineError(f"{INPUT_OPTION} {folder}: not a folder")
    try:
        find_input_files(folder)
    except PrepError as error:
        raise PipelineError(f"{INPUT_OPTION} {folder}: {error}") from None
    return folder


def check_output(root: Path) -> Path:
    """The output root is a folder, or a folder can be made there (whether it may, new_run finds out)."""
    for folder in (root, *root.parents):
        if folder.exists():
            if not folder.is_dir():
                where = "a file" if folder == root else f"under {folder}, a file"
                raise PipelineError(f"{OUTPUT_OPTION} {root}: {where}, not a folder")
            break
    return root
