"""Progress: a tqdm bar on a terminal, one plain line per milestone anywhere else."""

from __future__ import annotations

import io
import re

import pytest

from local.embeddings import EmbeddingsProgress, embeddings_display
from local.fm import FmProgress, fm_display
from local.progress import Progress, is_terminal


class Terminal(io.StringIO):
    """What tqdm writes to a terminal, kept."""

    def isatty(self) -> bool:
        return True


def test_off_a_terminal_each_milestone_is_one_line_with_its_figures() -> None:
    stream = io.StringIO()
    with Progress("FM", unit="batch", stream=stream) as progress:
        report = fm_display(progress)
        for epoch in (1, 2):
            for batch in (1, 2, 3):
                report(FmProgress(epoch, 2, batch, 3))
            report(FmProgress(epoch, 2, 3, 3, train_rmse=0.5 / epoch, test_rmse=0.75 / epoch))
    assert stream.getvalue().splitlines() == [
        "FM: epoch 1/2, train_rmse 0.5000, test_rmse 0.7500",
        "FM: epoch 2/2, train_rmse 0.2500, test_rmse 0.3750",
    ]
    assert (progress.done, progress.total) == (6, 6)


def test_off_a_terminal_a_step_without_milestones_says_once_what_it_did() -> None:
    stream = io.StringIO()
    with Progress("cold-start requests", unit="request", total=3, stream=stream) as progress:
        for _ in range(3):
            progress.advance()
    assert re.fullmatch(r"cold-start requests: 3 requests in \d+\.\d s\n", stream.getvalue())
    progress.close()  # closing again writes nothing more
    assert stream.getvalue().count("\n") == 1
    single = io.StringIO()
    with Progress("x", unit="request", stream=single) as one:
        one.advance()
    assert single.getvalue().startswith("x: 1 request in ")
    batches = io.StringIO()
    with Progress("FM", unit="batch", stream=batches) as several:
        several.advance(2)
    assert batches.getvalue().startswith("FM: 2 batches in ")


def test_a_step_left_by_an_error_writes_nothing_more() -> None:
    stream = io.StringIO()
    with pytest.raises(ValueError, match="bad"), Progress("FM", unit="batch", stream=stream) as progress:
        progress.advance()
        raise ValueError("bad")
    assert stream.getvalue() == ""


def test_a_milestone_leaves_out_figures_that_are_not_known() -> None:
    stream = io.StringIO()
    with Progress("FM", unit="batch", stream=stream) as progress:
        progress.milestone("epoch 1/1", train_rmse=0.25, test_rmse=None)
    assert stream.getvalue() == "FM: epoch 1/1, train_rmse 0.2500\n"


def test_on_a_terminal_a_bar_is_drawn_and_no_plain_line_is_written() -> None:
    stream = Terminal()
    with Progress("BlazingText", unit="epoch", stream=stream) as progress:
        report = embeddings_display(progress)
        for epoch in (1, 2, 3):
            report(EmbeddingsProgress(epoch, 3))
        progress.milestone("epoch 3/3", loss=0.125)
    drawn = stream.getvalue()
    assert "\r" in drawn  # tqdm redraws in place
    assert "BlazingText" in drawn and "3/3" in drawn and "loss=0.1250" in drawn
    assert "BlazingText: epoch" not in drawn
    assert (progress.done, progress.total) == (3, 3)


def test_embeddings_progress_off_a_terminal() -> None:
    stream = io.StringIO()
    with Progress("BlazingText", unit="epoch", stream=stream) as progress:
        report = embeddings_display(progress)
        for epoch in (1, 2):
            report(EmbeddingsProgress(epoch, 2))
    assert stream.getvalue() == "BlazingText: epoch 1/2\nBlazingText: epoch 2/2\n"


def test_what_counts_as_a_terminal() -> None:
    assert is_terminal(Terminal())
    assert not is_terminal(io.StringIO())
    closed = io.StringIO()
    closed.close()
    assert not is_terminal(closed)  # isatty raises ValueError on a closed stream

    class NoIsatty:
        def write(self, text: str) -> int:
            return len(text)

    assert not is_terminal(NoIsatty())  # type: ignore[arg-type]  # a stream-like object without isatty
