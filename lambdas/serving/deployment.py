"""The run that serves now: the deployed-run record, re-read at most every TTL seconds, and what the run
serves from, loaded once per run_id and kept warm for as long as that run is deployed: its index, its title
table, FM's factors (serving/fm/), the cold start's shrinkage (serving/cold_start.json) and the ranking's
popularity weight (serving/ranking.json). A run that lacks one of them, or holds one that is malformed or
belongs to another run, is unreadable (503 run_unreadable, naming the file).

FM's factors are read into memory from S3 (each file in byte ranges fetched side by side, the arrays views of
the bytes), or mapped from a local run's files (file://, the local twin: pages load as they are used).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from pathlib import Path

from contract import layout
from contract.documents import RecordFormatError, RunRecord, parse_run_record
from contract.index import INDEX_FILES, IndexFormatError, ServingIndex, parse_index
from fm.coldstart import ColdStartFormatError, Shrinkage
from fm.factors import FACTORS_FILES, FactorsFormatError, ServingFactors, load_factors, parse_factors
from fm.ranking import Ranking, RankingFormatError
from lambdas.kit import storage
from lambdas.kit.errors import NotDeployedError, RunUnreadableError, StorageNotFoundError
from lambdas.kit.logs import LOGGER

from .deployed import DeployedRun
from .vectors import parse_title_table


def parse_record(raw: bytes, uri: str) -> RunRecord:
    """The deployed-run record, checked; RunUnreadableError names the record and the bad field."""
    try:
        return parse_run_record(raw, uri)
    except RecordFormatError as exc:
        raise RunUnreadableError(str(exc)) from None


def _read(uri: str) -> bytes:
    try:
        return storage.read_bytes(uri)
    except StorageNotFoundError:
        raise RunUnreadableError(f"the deployed run has no {uri}") from None


def _read_large(uri: str) -> memoryview:
    """A large file's bytes, read-only (the arrays that view them must not change)."""
    try:
        return memoryview(storage.read_large(uri)).toreadonly()
    except StorageNotFoundError:
        raise RunUnreadableError(f"the deployed run has no {uri}") from None


def load_factors_at(folder_uri: str, index: ServingIndex) -> ServingFactors:
    """serving/fm/ of a run, checked against its index: mapped from a local folder, or read into memory."""
    uris = [layout.under(folder_uri, name) for name in FACTORS_FILES]
    scheme, _, path = storage.split_uri(folder_uri)
    try:
        if scheme == "file":
            for uri in uris:
                if not Path(storage.split_uri(uri)[2]).is_file():
                    raise RunUnreadableError(f"the deployed run has no {uri}")
            return load_factors(Path(path), features=index.features, mmap=True)
        # One file after the other, each in byte ranges side by side (storage.read_large).
        files = {name: _read_large(uri) for name, uri in zip(FACTORS_FILES, uris, strict=True)}
        return parse_factors(files, features=index.features)
    except FactorsFormatError as exc:
        raise RunUnreadableError(f"the deployed run's FM factors ({folder_uri}): {exc}") from None


def load_run(record: RunRecord) -> DeployedRun:
    """Read and parse what the run serves from (the slow part: done once per run_id)."""
    try:
        index = parse_index(*(_read(layout.under(record["index_uri"], name)) for name in INDEX_FILES))
    except IndexFormatError as exc:
        raise RunUnreadableError(f"the deployed run's index: {exc}") from None
    titles = parse_title_table(
        *(_read(layout.under(record["title_table_uri"], name)) for name in layout.TITLE_TABLE_FILES)
    )
    run_uri = record["run_uri"]
    factors = load_factors_at(layout.under(run_uri, layout.SERVING_FACTORS), index)
    _ = factors.log_popularity, factors.popular_rows  # computed once here, not in a request
    try:
        shrinkage = Shrinkage.from_json(_read(layout.under(run_uri, layout.COLD_START)))
        ranking = Ranking.from_json(_read(layout.under(run_uri, layout.RANKING)))
    except (ColdStartFormatError, RankingFormatError) as exc:
        raise RunUnreadableError(f"the deployed run's {exc}") from None
    return DeployedRun(
        run_id=record["run_id"],
        endpoints=record["endpoints"],
        index=index,
        titles=titles,
        factors=factors,
        shrinkage=shrinkage,
        popularity_weight=ranking.popularity_weight,
    )


class CurrentRun:
    """The deployed run, as of at most ttl_seconds ago."""

    def __init__(
        self, record_uri: str, ttl_seconds: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._record_uri = record_uri
        self._ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._run: DeployedRun | None = None
        self._checked_at = -float("inf")
        self._missing = False  # no record at the last check: that answer is cached for the TTL too

    def _not_deployed(self) -> NotDeployedError:
        return NotDeployedError(f"no model is deployed yet: no run record at {self._record_uri}")

    def get(self) -> DeployedRun:
        """The current run. NotDeployedError: there is no run record; RunUnreadableError: it or its files
        are malformed or missing.

        If the record cannot be read for another reason (S3 unreachable), the run already loaded goes on
        serving until the record can be read again.
        """
        with self._lock:
            now = self._clock()
            if now - self._checked_at < self._ttl:
                if self._missing:
                    raise self._not_deployed()
                if self._run is not None:
                    return self._run
            try:
                raw = storage.read_bytes(self._record_uri)
            except StorageNotFoundError:
                self._run, self._missing, self._checked_at = None, True, now
                raise self._not_deployed() from None
            except Exception:
                if self._run is None:
                    raise
                LOGGER.warning(
                    "run record unreadable, serving the loaded run",
                    exc_info=True,
                    extra={"run_id": self._run.run_id, "record_uri": self._record_uri},
                )
                self._checked_at = now
                return self._run
            self._missing = False
            record = parse_record(raw, self._record_uri)
            if self._run is None or self._run.run_id != record["run_id"]:
                started = time.perf_counter()
                self._run = load_run(record)
                LOGGER.info(
                    "loaded the deployed run",
                    extra={
                        "run_id": record["run_id"],
                        "latency_ms": round((time.perf_counter() - started) * 1000, 1),
                        "counts": {
                            "customers": self._run.index.num_customers,
                            "products": self._run.index.num_products,
                            "titles": len(self._run.titles.tokens),
                            "factors": self._run.factors.num_factors,
                        },
                    },
                )
            elif self._run.endpoints != record["endpoints"]:
                self._run = dataclasses.replace(self._run, endpoints=record["endpoints"])
            self._checked_at = now
            return self._run
