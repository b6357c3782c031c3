"""The run that serves now: the deployed-run record, re-read at most every TTL seconds, and the run's index
and title table, loaded once per run_id and kept warm for as long as that run is deployed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from contract import layout
from contract.documents import RecordFormatError, RunRecord, parse_run_record
from contract.index import INDEX_FILES, IndexFormatError, parse_index
from lambdas.kit import storage
from lambdas.kit.errors import NotDeployedError, RunUnreadableError, StorageNotFoundError
from lambdas.kit.logs import LOGGER

from .logic import DeployedRun
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


def load_run(record: RunRecord) -> DeployedRun:
    """Read and parse the run's index and title table (the slow part: done once per run_id)."""
    try:
        index = parse_index(*(_read(layout.under(record["index_uri"], name)) for name in INDEX_FILES))
    except IndexFormatError as exc:
        raise RunUnreadableError(f"the deployed run's index: {exc}") from None
    titles = parse_title_table(
        *(_read(layout.under(record["title_table_uri"], name)) for name in layout.TITLE_TABLE_FILES)
    )
    return DeployedRun(run_id=record["run_id"], endpoints=record["endpoints"], index=index, titles=titles)


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
                        },
                    },
                )
            elif self._run.endpoints != record["endpoints"]:
                self._run = DeployedRun(
                    run_id=record["run_id"],
                    endpoints=record["endpoints"],
                    index=self._run.index,
                    titles=self._run.titles,
                )
            self._checked_at = now
            return self._run
