"""The "Export FM factors" step: what top-N and the cold start load besides the index and the title table.

`export_serving_data` is the step, pure (sources in, files out through a writer or into a folder): the state
machine's Lambda (`handler`, which fetches from and uploads to the run's URI) and the local twin both call
it. From FM's model.tar.gz, the run's index, its prep shards and its title table it writes, under serving/:

- fm/ (contract.layout.SERVING_FACTORS, fm.factors): FM's factors laid out for top-N. The reviewed products
  (excluded from a customer's top-N) and the popularity (review counts: the fallback's order and the
  blend's log(1 + reviews) term) come from every prep row of the run, train, validation and test: every
  review the run knows of. The shim's POST /recommendations and the batch job (jobs/recommend) both load
  these factors, so both leave out what a customer reviewed in any of the three, and neither shows a
  customer a product they have already reviewed.
- ranking.json (contract.layout.RANKING, fm.ranking.choose_popularity_weight): the popularity weight of
  the top-N ranking, chosen on the validation rows. Each validation row's product is ranked for its
  customer among the products the customer did not review in train (FM was trained without the
  validation rows: they are held out), with popularity counted on the train rows only; grid
  fm.ranking.POPULARITY_WEIGHTS, metric NDCG@10; at most `ranking_customers` customers, a seeded sample.
  Its "test" object is the ranking table on the test rows, the final figure (nothing is chosen on it): each
  customer's test product ranked among the products the customer did not review in train + validation
  (the test product among them), popularity counted on train + validation; Recall@10 and NDCG@10 of FM's
  top-N alone, FM + the validation-chosen weight, most-popular and random, each with its 95 % bootstrap
  interval and the paired intervals of the differences (the same resampled customers for every ranking).
  The quality gate copies it into gate.json's "ranking".
- fm/customer_base.npy (fm.biases.customer_base): the cold start's base, mu + b_u of the bias model fitted
  on the train rows with prep's BiasSettings: the prep job's user-bias baseline before clipping.
- cold_start.json (contract.layout.COLD_START, fm.coldstart.choose_shrinkage): the cold start's shrinkage,
  chosen on the validation rows of the products whose titles the corpus left out (contract.index.
  held_out_title). Each such product is treated as new: its title's vector, built from its n-grams as a new
  title's is (the held-out titles' table, serving/held_out_titles.*), finds its `neighbours` nearest known
  titles, its own title left out; the user-bias base plus the neighbours' item difference, shrunk by their
  similarity mass, predicts the row's rating (clipped to the rating range). The choice is the user-bias
  answer (alpha NEVER) unless a shrinkage of the grid beats it on these rows by a paired 95 % interval
  (lambdas.pipeline.paired) wholly below 0; beside it the grid with every RMSE (and the intervals of those
  below the base's) and the base's RMSE on the same rows. Without a held-out table (a BlazingText model
  without subwords) the choice is the user-bias answer. FM still trained on these products' other reviews,
  which the cold start does not use; the local twin measures the real thing on products held out of
  training entirely (local/pipeline/cold_start.py).

cold_start.json and ranking.json go first, then fm/ with factors.json last: a reader that finds
factors.json finds every file of the step complete. Bad input is a ServingDataError naming the file.

The Lambda needs numpy (the layer the shims use). At the notebook's scale (120k customers x 58k products x
256 factors, 4M train rows) bench/export_factors.py measures its time and memory.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

import numpy as np
import numpy.typing as npt

from contract import layout
from contract.index import INDEX_FILES, ServingIndex, parse_index
from fm.artifact import read_fm_artifact
from fm.factors import (
    FACTORS_MANIFEST,
    Named,
    ServingFactors,
    Source,
    base_of,
    build_factors,
    combine_reviewed,
    factors_files,
    rated_pairs,
    reviewed_of,
    reviewed_products,
)
from fm.ranking import (
    DEFAULT_CUTOFF,
    RANKING_CUSTOMERS,
    PopularityWeightChoice,
)
from fm.recordio import SparseRecords, read_sparse_records
from lambdas.kit import settings as kit_settings
from lambdas.kit import storage
from lambdas.kit.errors import ServingDataError, ServingError, StorageNotFoundError
from lambdas.kit.invocation import lambda_handler
from lambdas.kit.logs import LOGGER
from lambdas.kit.settings import integer, variable
from lambdas.pipeline.serving_choices import (
    choose_cold_start,
    choose_ranking,
    ranking_on_test,
)
from lambdas.serving.vectors import TitleTable, parse_title_table

__all__ = [
    "DEFAULT_NEIGHBOURS",
    "ExportSettings",
    "Writer",
    "export_serving_data",
    "folder_writer",
    "handler",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

Writer = Callable[[str, bytes | bytearray], None]
"""Writes one file: (path inside the run, e.g. "serving/fm/items.npy", contents)."""
Input = Source | Named
DEFAULT_NEIGHBOURS = 10
"""The shims' serving_neighbours default (cdk.json)."""
SAMPLE_SEED = 0


# ---------------------------------------------------------------------------------------------- inputs


@contextlib.contextmanager
def _naming(name: str | None) -> Iterator[None]:
    """ValueError (and the shims' RunUnreadableError) inside -> ServingDataError naming the file: `name`
    unless the message names it (None: the messages name their shards)."""
    try:
        yield
    except ServingDataError:
        raise
    except (ValueError, ServingError) as exc:
        message = str(exc)
        named = name is None or name in message
        raise ServingDataError(message if named else f"{name}: {message}") from None


def _named(entry: Input, group: str, number: int) -> tuple[str, Source]:
    if isinstance(entry, tuple):
        return entry
    return (str(entry) if isinstance(entry, Path | str) else f"{group} shard {number}"), entry


def _read_whole(source: Source) -> bytes:
    if isinstance(source, bytes):
        return source
    if isinstance(source, Path | str):
        return Path(source).read_bytes()
    return source.read()


def _small_shards(shards: Iterable[Input], group: str) -> list[tuple[str, bytes]]:
    """A small group of shards (validation, test) read whole: each is used twice."""
    out = []
    for number, entry in enumerate(shards):
        name, source = _named(entry, group, number)
        with _naming(name):
            out.append((name, _read_whole(source)))
    return out


def _records(shards: Sequence[tuple[str, bytes]], feature_dim: int) -> SparseRecords:
    """The rows of several shards as one set (a shard's errors name it)."""
    parts = []
    for name, data in shards:
        with _naming(name):
            part = read_sparse_records(io.BytesIO(data))
            if part.labels.shape[0] and part.feature_dim != feature_dim:
                raise ValueError(f"feature_dim {part.feature_dim:,}, the index's is {feature_dim:,}")
        parts.append(part)
    offsets = np.cumsum([0] + [int(p.indptr[-1]) for p in parts])[: len(parts)]  # none for no shard
    return SparseRecords(
        indptr=np.concatenate(
            [np.zeros(1, np.int64)] + [p.indptr[1:] + o for p, o in zip(parts, offsets, strict=True)]
        ),
        indices=np.concatenate([np.zeros(0, np.int64)] + [p.indices for p in parts]),
        values=np.concatenate([np.zeros(0, np.float32)] + [p.values for p in parts]),
        labels=np.concatenate([np.zeros(0, np.float32)] + [p.labels for p in parts]),
        feature_dim=feature_dim,
    )


# ---------------------------------------------------------------------------------------------- the step


def folder_writer(run_folder: Path) -> Writer:
    """A Writer into a local run folder: each file replaced atomically (written beside, then renamed)."""

    def write(path: str, data: bytes | bytearray) -> None:
        target = run_folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        partial.write_bytes(data)
        os.replace(partial, target)

    return write


def export_serving_data(
    *,
    model: Input,
    index: ServingIndex,
    train: Iterable[Input],
    validation: Iterable[Input],
    test: Iterable[Input],
    titles: TitleTable,
    held_out_titles: TitleTable | None,
    output: Path | Writer,
    neighbours: int = DEFAULT_NEIGHBOURS,
    ranking_customers: int | None = RANKING_CUSTOMERS,
    seed: int = SAMPLE_SEED,
) -> dict[str, Any]:
    """The step (see the module docstring). Sources are paths, bytes or binary streams, each alone or as
    (name, source): the name is what an error says. `train` is read once, in order (an iterator may open
    each shard as it is reached); validation and test are read whole. `output` is the run's folder, or a
    Writer taking paths inside the run. Returns the step's summary (the choices, counts, files, timings)."""
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str) -> None:
        timings[name] = round(time.perf_counter() - started - sum(timings.values()), 3)

    features = index.features
    model_name, model_source = _named(model, "model", 0)
    with _naming(model_name):
        params = read_fm_artifact(model_source)
    lap("read_model")
    with _naming(None):
        train_pairs = rated_pairs(
            (_named(entry, "train", number) for number, entry in enumerate(train)), features
        )
        train_reviewed = reviewed_of(train_pairs, features)
    with _naming("the train shards"):
        base = base_of(train_pairs, features)
    del train_pairs
    validation_shards = _small_shards(validation, "validation")
    test_shards = _small_shards(test, "test")
    validation_name = ", ".join(name for name, _ in validation_shards) or layout.VALIDATION
    test_name = ", ".join(name for name, _ in test_shards) or layout.TEST
    with _naming(validation_name):
        validation_reviewed = reviewed_products(validation_shards, features)
    with _naming(None):
        test_reviewed = reviewed_products(test_shards, features)
    validation_rows = _records(validation_shards, features.feature_dim)
    with _naming(None):
        test_rows = _records(test_shards, features.feature_dim)
    del validation_shards, test_shards
    lap("read_shards")
    every = combine_reviewed([train_reviewed, validation_reviewed, test_reviewed], features)
    with _naming(model_name):
        factors = build_factors(params, features, every, base)
    del params, every
    lap("build_factors")
    with _naming(validation_name):
        ranking, ranking_choice = choose_ranking(
            factors, train_reviewed, validation_rows, ranking_customers, seed
        )
    lap("choose_popularity_weight")
    with _naming(test_name):
        ranking["test"] = ranking_on_test(
            factors,
            combine_reviewed([train_reviewed, validation_reviewed], features),
            test_rows,
            float(ranking["popularity_weight"]),
            customers=ranking_customers,
            seed=seed,
        )
    del test_rows
    lap("ranking_on_test")
    with _naming(validation_name):
        cold_start = choose_cold_start(
            factors, index, titles, validation_rows, held_out_titles=held_out_titles, neighbours=neighbours
        )
    lap("choose_shrinkage")

    written, manifest = _write_serving(output, cold_start, ranking, factors)
    lap("write")
    return {
        "customers": factors.num_customers,
        "products": factors.num_products,
        "factors": factors.num_factors,
        "reviewed_rows": {
            "train": train_reviewed.rows,
            "validation": validation_reviewed.rows,
            "test": test_reviewed.rows,
        },
        "reviewed_pairs": manifest["reviewed_pairs"],
        "ranking": _ranking_summary(ranking, ranking_choice),
        "ranking_test": {
            name: figures[f"ndcg@{DEFAULT_CUTOFF}"]["mean"]
            for name, figures in ranking["test"]["rankings"].items()
        },
        "cold_start": {
            name: cold_start[name]
            for name in ("alpha", "min_similarity", "rows", "rmse", "base_rmse", "chosen_on")
            if name in cold_start
        },
        "files": written,
        "timings_s": timings,
    }


def _write_serving(
    output: Path | Writer, cold_start: dict[str, Any], ranking: dict[str, Any], factors: ServingFactors
) -> tuple[list[str], dict[str, Any]]:
    """The step's files in order, factors.json last; (the paths written, factors.json's document)."""
    write = folder_writer(output) if isinstance(output, Path) else output
    if isinstance(output, Path):
        (output / layout.SERVING_FACTORS_MANIFEST).unlink(missing_ok=True)  # first out, last in
    written: list[str] = []
    for path, document in ((layout.COLD_START, cold_start), (layout.RANKING, ranking)):
        write(path, (json.dumps(document, indent=1, allow_nan=False) + "\n").encode("utf-8"))
        written.append(path)
    manifest: dict[str, Any] = {}
    for name, data in factors_files(factors):
        write(layout.SERVING_FACTORS + name, data)
        written.append(layout.SERVING_FACTORS + name)
        if name == FACTORS_MANIFEST:
            manifest = json.loads(data)
    return written, manifest


def _ranking_summary(document: dict[str, Any], choice: PopularityWeightChoice | None) -> dict[str, Any]:
    summary = {"popularity_weight": document["popularity_weight"], "rows": document["rows"]}
    if choice is not None:
        summary[choice.metric] = choice.table[choice.weight][choice.metric]
        if 0.0 in choice.table:
            summary["fm_alone"] = choice.table[0.0][choice.metric]
        summary["most_popular"] = choice.most_popular[choice.metric]
    return summary


# ---------------------------------------------------------------------------------------------- the Lambda


@dataclass(frozen=True)
class ExportSettings:
    """The function's environment."""

    neighbours: int = variable("NEIGHBOURS", integer(1, 100), default=str(DEFAULT_NEIGHBOURS))
    """Title neighbours of a cold start: the shims' serving_neighbours."""
    ranking_customers: int = variable(
        "RANKING_CUSTOMERS", integer(1, 10_000_000), default=str(RANKING_CUSTOMERS)
    )
    """Validation customers the popularity weight is chosen on (a seeded sample when there are more)."""


@functools.cache
def settings() -> ExportSettings:
    """Read once per container; ConfigError names a missing or malformed variable."""
    return kit_settings.load(ExportSettings)


def _uri_event(event: object) -> tuple[str, str]:
    names = ("model_artifact_uri", "run_uri")
    if not isinstance(event, dict):
        raise ServingDataError(f"event must be an object with {' and '.join(names)}")
    values = []
    for name in names:
        value = event.get(name)
        if not isinstance(value, str) or not _is_uri(value):
            raise ServingDataError(
                f"event.{name} is {value!r}: an s3://bucket/key or file:///path URI is required"
            )
        values.append(value)
    return values[0], values[1]


def _is_uri(text: str) -> bool:
    try:
        storage.split_uri(text)
    except ValueError:
        return False
    return True


def _read(uri: str) -> bytes:
    try:
        return storage.read_bytes(uri)
    except StorageNotFoundError:
        raise ServingDataError(f"{uri}: missing") from None


def shard_uris(run_uri: str, folder: str) -> list[str]:
    """The shards of one prep channel: every file directly in the folder whose name does not start with
    "." (as the local trainer reads a channel), by name; ServingDataError when there is none."""
    prefix = layout.under(run_uri, folder)
    uris = [uri for uri in storage.list_files(prefix) if not uri.rsplit("/", 1)[-1].startswith(".")]
    if not uris:
        raise ServingDataError(f"{prefix}: no shards (expected the prep job's RecordIO files)")
    return uris


def _streams(uris: Sequence[str]) -> Iterator[tuple[str, BinaryIO]]:
    """Each shard opened when it is reached and closed when the reader moves on."""
    for uri in uris:
        with contextlib.closing(storage.open_stream(uri)) as stream:
            yield uri, cast(BinaryIO, stream)


def _upload(run_uri: str) -> Writer:
    def write(path: str, data: bytes | bytearray) -> None:
        kind = "application/json" if path.endswith(".json") else "application/octet-stream"
        storage.write_bytes(layout.under(run_uri, path), data, content_type=kind)

    return write


def export_run(model_artifact_uri: str, run_uri: str, config: ExportSettings) -> dict[str, Any]:
    """The step on a run's URI (s3:// or file://): inputs fetched, serving/ uploaded."""
    index_uri = layout.under(run_uri, layout.INDEX)
    with _naming(index_uri):
        index = parse_index(*(_read(layout.under(index_uri, name)) for name in INDEX_FILES))
    serving_uri = layout.under(run_uri, layout.SERVING)
    with _naming(serving_uri):
        titles = parse_title_table(
            *(_read(layout.under(serving_uri, name)) for name in layout.TITLE_TABLE_FILES)
        )
        held_out_titles = parse_title_table(
            *(_read(layout.under(serving_uri, name)) for name in layout.HELD_OUT_TITLE_FILES)
        )
    shards = {
        folder: shard_uris(run_uri, folder) for folder in (layout.TRAIN, layout.VALIDATION, layout.TEST)
    }
    try:
        model_stream = storage.open_stream(model_artifact_uri)
    except StorageNotFoundError:
        raise ServingDataError(f"{model_artifact_uri}: missing") from None
    try:
        summary = export_serving_data(
            model=(model_artifact_uri, cast(BinaryIO, model_stream)),
            index=index,
            train=_streams(shards[layout.TRAIN]),
            validation=_streams(shards[layout.VALIDATION]),
            test=_streams(shards[layout.TEST]),
            titles=titles,
            held_out_titles=held_out_titles,
            output=_upload(run_uri),
            neighbours=config.neighbours,
            ranking_customers=config.ranking_customers,
        )
    except StorageNotFoundError as exc:  # a shard listed a moment ago is gone
        raise ServingDataError(str(exc)) from None
    finally:
        model_stream.close()
    return {"serving_uri": serving_uri, **summary}


@lambda_handler
def handler(event: Any, _context: object) -> dict[str, Any]:
    """Pipeline Lambda: {"model_artifact_uri", "run_uri"} -> the step's summary; every other path is the
    run's (contract.layout): prep/index/, prep/train/, prep/validation/, prep/test/ and serving/'s title
    table in, serving/fm/, serving/ranking.json and serving/cold_start.json out."""
    model_artifact_uri, run_uri = _uri_event(event)
    summary = export_run(model_artifact_uri, run_uri, settings())
    LOGGER.info(
        "exported the serving data",
        extra={
            "run_uri": run_uri,
            "popularity_weight": summary["ranking"]["popularity_weight"],
            "cold_start": summary["cold_start"],
            "timings_s": summary["timings_s"],
        },
    )
    return summary
