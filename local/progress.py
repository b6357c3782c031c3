"""How far a long step has come: a tqdm bar on a terminal, plain lines anywhere else.

A bar redraws itself with carriage returns, which a terminal shows as one moving line and a file or a CI log
keeps as a heap of fragments. So the bar is drawn only when the stream is a terminal; elsewhere each milestone
(an epoch, with its figures) is one line, and a step without milestones says once, at its end, how much it
did.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any, TextIO

from tqdm import tqdm

__all__ = ["Progress", "is_terminal"]


def is_terminal(stream: TextIO) -> bool:
    """Whether the stream is a terminal (a stream without isatty is not)."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # a closed stream
        return False


def _plural(unit: str) -> str:
    return f"{unit}es" if unit.endswith(("s", "sh", "ch", "x")) else f"{unit}s"


def _figure(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


class Progress:
    """One step's progress on `stream` (default: sys.stderr at construction).

    advance() counts units done (a mini-batch, a request); milestone() marks a named point with its figures
    (an epoch's RMSEs): on a terminal they become the bar's postfix, elsewhere one line
    ``<label>: <name>, <figure> <value>, ...``. close() (or leaving the with block) removes the bar, or, if no
    milestone was written, writes ``<label>: <done> <units> in <seconds> s``; a step left by an exception
    writes nothing more, so that the error is the last line.
    """

    def __init__(
        self, label: str, *, unit: str, total: int | None = None, stream: TextIO | None = None
    ) -> None:
        self.label = label
        self.unit = unit
        self.total = total
        self.done = 0
        self._stream = stream if stream is not None else sys.stderr
        self._terminal = is_terminal(self._stream)
        self._bar: tqdm[Any] | None = None
        self._lines = 0
        self._began = time.perf_counter()

    def _drawn(self) -> tqdm[Any]:
        if self._bar is None:
            self._bar = tqdm(
                total=self.total, desc=self.label, unit=self.unit, leave=False, file=self._stream
            )
        return self._bar

    def advance(self, count: int = 1, *, total: int | None = None) -> None:
        """count more units done; total sets the number expected (a trainer knows it at its first report)."""
        if total is not None and total != self.total:
            self.total = total
            if self._bar is not None:
                self._bar.total = total
        self.done += count
        if self._terminal:
            self._drawn().update(count)

    def milestone(self, name: str, **figures: object) -> None:
        shown = {key: _figure(value) for key, value in figures.items() if value is not None}
        if self._terminal:
            self._drawn().set_postfix(shown, refresh=True)
            return
        parts = [name, *(f"{key} {value}" for key, value in shown.items())]
        print(f"{self.label}: {', '.join(parts)}", file=self._stream, flush=True)
        self._lines += 1

    def close(self, *, finished: bool = True) -> None:
        """Remove the bar; off a terminal, a finished step without milestones says what it did."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif finished and not self._terminal and self._lines == 0:
            seconds = time.perf_counter() - self._began
            units = self.unit if self.done == 1 else _plural(self.unit)
            print(f"{self.label}: {self.done:,} {units} in {seconds:.1f} s", file=self._stream, flush=True)
            self._lines += 1

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(finished=exc_type is None)
