"""python -m local.fm: prep shards in, model.tar.gz and metrics.json out; bad input as one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local.fm import load_model
from local.fm.cli import main
from tests.local.fm.fm_support import FAST, planted_ratings, write_shards


def test_the_command_line_trains_and_writes_the_artifact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train, test, dim = planted_ratings()
    write_shards(tmp_path / "prep" / "train", train, parts=2)
    write_shards(tmp_path / "prep" / "validation", test, parts=1)
    hyperparameters = json.dumps({**FAST, "feature_dim": dim, "epochs": 2})

    code = main(
        [
            "--prep",
            str(tmp_path / "prep"),
            "--output",
            str(tmp_path / "fm"),
            "--hyperparameters",
            hyperparameters,
        ]
    )

    assert code == 0
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert [e["epoch"] for e in summary["epochs"]] == [1, 2]
    assert summary["train_rows"] == 750 and "hyperparameters" not in summary
    assert err.splitlines()[-1].startswith("FM: epoch 2/2, train_rmse ")  # not a terminal: one line an epoch
    assert load_model(tmp_path / "fm").feature_dim == dim


def test_bad_hyperparameters_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train, test, dim = planted_ratings()
    write_shards(tmp_path / "prep" / "train", train, parts=1)
    write_shards(tmp_path / "prep" / "validation", test, parts=1)
    bad = json.dumps({**FAST, "feature_dim": dim, "num_factor": 3})
    assert (
        main(["--prep", str(tmp_path / "prep"), "--output", str(tmp_path / "fm"), "--hyperparameters", bad])
        == 2
    )
    assert (
        capsys.readouterr()
        .err.strip()
        .startswith("local.fm: unknown Factorization Machines hyperparameter 'num_factor'")
    )
    assert not (tmp_path / "fm").exists()
