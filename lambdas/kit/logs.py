"""Structured logs with Powertools for AWS Lambda's Logger: one JSON object per line on stdout, which Lambda
sends to the function's CloudWatch Logs group. https://docs.aws.amazon.com/powertools/python/latest/core/logger/

Every line has level, location, message, timestamp (UTC, RFC 3339), service, and the keys of the invocation
it belongs to (invocation.py: cold_start, function_request_id, correlation_id, ...); a failure's formatted
exception is under "traceback".

Environment (Powertools' own variables):
- POWERTOOLS_SERVICE_NAME: the "service" key (default "loftrec").
- POWERTOOLS_LOG_LEVEL: DEBUG, INFO (default), WARNING, ERROR. Read when the logger is created and again
  by `apply_log_level` (a handler module calls it at import, i.e. at its cold start). Lambda's own log-level
  control (AWS_LAMBDA_LOG_LEVEL) wins over it.
- POWERTOOLS_DEV must stay unset: it indents the JSON over several lines.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

from aws_lambda_powertools import Logger

SERVICE_DEFAULT = "loftrec"


class _CurrentStdout(logging.Handler):
    """Writes each record as one line to whatever sys.stdout is when the record is emitted (Lambda's stdout,
    or the stream a test or a local run put there), not the stream there was at import."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stdout.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


def _serialize(line: dict[str, Any]) -> str:
    # Operators' Logs Insights queries read the formatted exception from "traceback".
    if "exception" in line:
        line["traceback"] = line.pop("exception")
    return json.dumps(line, default=str, separators=(",", ":"), ensure_ascii=False)


def service_name() -> str:
    return os.environ.get("POWERTOOLS_SERVICE_NAME", "").strip() or SERVICE_DEFAULT


LOGGER = Logger(
    service=service_name(),
    logger_handler=_CurrentStdout(),
    json_serializer=_serialize,
    utc=True,
    use_rfc3339=True,
    serialize_stacktrace=False,  # the traceback text says it all; the frame list would double each line
)
# Lines go to stdout once, through the handler above; not again through handlers on the root logger.
logging.getLogger(LOGGER.service).propagate = False


def apply_log_level() -> None:
    """Set the level from POWERTOOLS_LOG_LEVEL as it is now (INFO when unset)."""
    LOGGER.setLevel(None)
