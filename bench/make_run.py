"""What `make run` trains FM with, for the benchmarks that compare against it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

__all__ = ["local_fm_overrides"]

ROOT = Path(__file__).resolve().parents[1]


def local_fm_overrides() -> dict[str, Any] | None:
    """The Makefile's LOCAL_FM (what `make run` sets on top of cdk.json's table), or None without one."""
    found = re.search(r"^LOCAL_FM \?= (\{.*\})$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    if found is None:
        return None
    overrides: dict[str, Any] = json.loads(found.group(1))
    return overrides
