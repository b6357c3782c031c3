"""How the prep job fails: one exception type, one line, written where SageMaker shows it."""

from __future__ import annotations

import errno
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


def name_list(names: list[str], limit: int = 10) -> str:
    """Names for a message, comma-separated, at most `limit` of them."""
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {fmt_count(len(names) - limit)} more"


_OS_CAUSES = {
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for the file system or the process's file-size limit (ulimit -f)",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EEXIST: "a file or folder of that name is in the way",
    errno.ENOTEMPTY: "the folder is not empty",
    errno.ENAMETOOLONG: "the path is too long",
}


def os_cause(error: OSError) -> str:
    """What the operating system refused, in words, with errno's name: "read-only file system (EROFS)"."""
    code = error.errno
    if code is None:
        return str(error)
    cause = _OS_CAUSES.get(code, error.strerror or str(error))
    name = errno.errorcode.get(code)
    return f"{cause} ({name})" if name else cause
