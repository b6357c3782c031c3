"""How the prep job fails: one exception type, one line, written where SageMaker shows it."""

from __future__ import annotations

from pathlib import Path

# SageMaker Processing copies the first 1 KB of the failure-message file (contract.layout), UTF-8, into
# DescribeProcessingJob's ExitMessage once the job ends (docs: "Save and Access Metadata Information About
# Your Processing Job").
MESSAGE_LIMIT_BYTES = 1024


class PrepError(Exception):
    """The input cannot be turned into a run; the message names the cause and the counts, on one line."""


def write_failure_message(path: Path, message: str) -> None:
    """Write `message` to `path`, cut to SageMaker's 1 KB at a character boundary."""
    data = message.encode("utf-8")
    if len(data) > MESSAGE_LIMIT_BYTES:
        data = data[: MESSAGE_LIMIT_BYTES - 3].decode("utf-8", errors="ignore").encode("utf-8") + b"..."
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def fmt_count(n: int) -> str:
    return f"{n:,}"
