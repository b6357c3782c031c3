"""The run that serves now: the deployed-run record, re-read at most every TTL seconds, and the run's index
and title table, loaded once per run_id and kept warm for as long as that run is deployed."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import storage
from .errors import NotDeployedError, RunUnreadableError
from .index import parse_index
from .logic import BLAZINGTEXT, FM, DeployedRun
from .vectors import parse_title_table

LOGGER = logging.getLogger("loftrec.serving")


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    endpoints: dict[str, str]
    index_uri: str
    title_table_uri: str


def parse_run_record(raw: bytes, uri: str) -> RunRecord:
    """The deployed-run record's JSON -> RunRecord; RunUnreadableError names the record and the bad field."""
    try:
        record: Any = json.loads(raw)
    except ValueError as exc:
        raise RunUnreadableError(f"run record at {uri}: not JSON ({exc})") from None
    if not isinstance(record, dict):
        raise RunUnreadableError(f"run record at {uri}: not a JSON object")
    if record.get("schema_version") != 1:
        raise RunUnreadableError(
            f"run record at {uri}: schema_version {record.get('schema_version')!r}, expected 1"
        )
    fields: dict[str, str] = {}
    for name in ("run_id", "index_uri", "title_table_uri"):
        value = record.get(name)
        if not isinstance(value, str) or not value:
            raise RunUnreadableError(f"run record at {uri}: {name} is {value!r}, not a non-empty string")
        fields[name] = value
    endpoints = record.get("endpoints")
    if not isinstance(endpoints, dict) or not all(
        isinstance(endpoints.get(model), str) and endpoints[model] for model in (FM, BLAZINGTEXT)
    ):
        raise RunUnreadableError(
            f"run record at {uri}: endpoints is {endpoints!r}, not {{fm: name, blazingtext: name}}"
        )
    return RunRecord(
        run_id=fields["run_id"],
        endpoints={FM: endpoints[FM], BLAZINGTEXT: endpoints[BLAZINGTEXT]},
        index_uri=fields["index_uri"],
        title_table_uri=fields["title_table_uri"],
    )


def _read(uri: str) -> bytes:
    try:
        return storage.read_bytes(uri)
    except storage.StorageNotFoundError:
        raise RunUnreadableError(f"the deployed run has no {uri}") from None


def load_run(record: RunRecord) -> DeployedRun:
    """Read and parse the run's index and title table (the slow part: done once per run_id)."""
    index = parse_index(
        _read(storage.join(record.index_uri, "index.json")),
        _read(storage.join(record.index_uri, "customers.tsv")),
        _read(storage.join(record.index_uri, "products.tsv")),
    )
    titles = parse_title_table(
        _read(storage.join(record.title_table_uri, "titles.txt")),
        _read(storage.join(record.title_table_uri, "titles.f32")),
        _read(storage.join(record.title_table_uri, "titles.json")),
    )
    return DeployedRun(run_id=record.run_id, endpoints=record.endpoints, index=index, titles=titles)


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
            except storage.StorageNotFoundError:
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
            record = parse_run_record(raw, self._record_uri)
            if self._run is None or self._run.run_id != record.run_id:
                started = time.perf_counter()
                self._run = load_run(record)
                LOGGER.info(
                    "loaded the deployed run",
                    extra={
                        "run_id": record.run_id,
                        "latency_ms": round((time.perf_counter() - started) * 1000, 1),
                        "counts": {
                            "customers": self._run.index.num_customers,
                            "products": self._run.index.num_products,
                            "titles": len(self._run.titles.tokens),
                        },
                    },
                )
            elif self._run.endpoints != record.endpoints:
                self._run = DeployedRun(
                    run_id=record.run_id,
                    endpoints=record.endpoints,
                    index=self._run.index,
                    titles=self._run.titles,
                )
            self._checked_at = now
            return self._run
