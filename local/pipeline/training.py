"""The training jobs on a run folder, as the state machine runs them: FM (local.fm's train_from_prep, which
writes fm/model.tar.gz and fm/metrics.json) and the title embeddings (local.embeddings, which writes
blazingtext/vectors.txt and vectors.bin), then the title table the shims load (serving/)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from contract import layout
from fm.recordio import read_sparse_records
from lambdas.serving.title_table import export_title_table
from local.embeddings import embeddings_display, train_embeddings
from local.fm import fm_display, train_from_prep
from local.hyperparameters import HyperparameterError
from local.pipeline import PipelineError
from local.progress import Progress

__all__ = [
    "FM_SEED",
    "channel_rows",
    "export_titles",
    "folder_uri",
    "train_fm_job",
    "train_title_embeddings_job",
]

FM_SEED = 0
EMBEDDINGS_SEED = 1
EMBEDDINGS_WORKERS = 1
"""gensim's FastText is deterministic for a seed with one worker thread only (with several, the threads'
scheduling changes the vectors from run to run); the report's figures must reproduce."""


def folder_uri(folder: Path) -> str:
    """A local folder as the file:// URI of a folder (with its trailing slash), as the shims name folders."""
    return folder.resolve().as_uri() + "/"


def channel_rows(folder: Path) -> int:
    """The rows of a prep channel folder (every non-hidden file a RecordIO shard); 0 when it has none."""
    if not folder.is_dir():
        return 0
    rows = 0
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        with path.open("rb") as f:
            rows += read_sparse_records(f).labels.shape[0]
    return rows


def train_fm_job(run_folder: Path, hyperparameters: Mapping[str, object], label: str) -> dict[str, object]:
    """The FM training job on the run's prep/train/, its "test" channel the validation shard (as the state
    machine sends it); its metrics (fm/metrics.json), whose test_rmse is the validation RMSE. A validation
    shard without a row (the prep manifest warns of it) gives no test channel and no validation curve."""
    with_validation = channel_rows(run_folder / layout.VALIDATION) > 0
    with Progress(label, unit="batch") as progress:
        try:
            result = train_from_prep(
                run_folder / layout.PREP,
                run_folder / layout.FM_OUTPUT,
                hyperparameters,
                seed=FM_SEED,
                progress=fm_display(progress),
                test_channel=layout.VALIDATION if with_validation else None,
            )
        except HyperparameterError as error:
            raise PipelineError(str(error)) from None
    return result.metrics()


def train_title_embeddings_job(run_folder: Path, hyperparameters: Mapping[str, object], label: str) -> None:
    """The BlazingText training job (gensim's FastText) on the run's prep/corpus/corpus.txt."""
    with Progress(label, unit="epoch") as progress:
        try:
            train_embeddings(
                run_folder / layout.CORPUS_FILE,
                run_folder / layout.BLAZINGTEXT_OUTPUT,
                hyperparameters,
                workers=EMBEDDINGS_WORKERS,
                seed=EMBEDDINGS_SEED,
                progress=embeddings_display(progress),
            )
        except ValueError as error:  # a HyperparameterError, or a corpus without a token to learn
            raise PipelineError(str(error)) from None


def export_titles(run_folder: Path) -> dict[str, Any]:
    """The title table of the run's vectors and index, under serving/ (the Export title table state)."""
    return export_title_table(
        folder_uri(run_folder / layout.BLAZINGTEXT_OUTPUT),
        folder_uri(run_folder / layout.INDEX),
        folder_uri(run_folder / layout.SERVING),
    )
