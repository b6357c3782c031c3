"""python -m local.pipeline: its help under its real name, and bad arguments as one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from local.pipeline import cli
from local.pipeline.cli import main

ROOT = Path(__file__).resolve().parents[3]


def test_help_prints_the_whole_description_under_the_real_program_name() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "local.pipeline", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert done.stdout.startswith("usage: python -m local.pipeline [-h] [--input INPUT]")
    assert cli.__doc__ is not None
    paragraphs = [" ".join(p.split()) for p in cli.__doc__.strip().split("\n\n")]
    assert len(paragraphs) == 3
    flowing = " ".join(done.stdout.split())
    for paragraph in paragraphs:  # every paragraph, its line breaks kept
        assert paragraph in flowing
    assert cli.__doc__.strip().split("\n")[2] in done.stdout.split("\n")
    for option in ("--output", "--fm-hyperparameters", "--cold-start-fraction"):
        assert option in done.stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--fm-hyperparameters", "[1]"], "loftrec: --fm-hyperparameters must be a JSON object"),
        (["--fm-hyperparameters", "{nope"], "loftrec: Expecting property name enclosed in double quotes"),
        (["--cold-start-fraction", "1"], "loftrec: --cold-start-fraction must be at least 0 and below 1"),
    ],
)
def test_bad_arguments_are_one_line(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--output", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().startswith(message)
    assert not list(tmp_path.iterdir())  # nothing was run
