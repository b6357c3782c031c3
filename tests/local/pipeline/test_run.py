"""The whole local pipeline, end to end, on a slice of the bundled MovieLens data: real prep, real
training, the real shims against the local runtime server, and the report's numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from local.movielens import convert
from local.pipeline.cli import main
from local.pipeline.run import BUNDLED, run_pipeline

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def slice_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ratings of the first 200 MovieLens users, in the Amazon reviews schema."""
    source = tmp_path_factory.mktemp("movielens")
    ratings = (BUNDLED / "ratings.csv").read_text().splitlines()
    kept = [ratings[0]] + [line for line in ratings[1:] if int(line.split(",")[0]) <= 200]
    (source / "ratings.csv").write_text("\n".join(kept) + "\n")
    (source / "movies.csv").write_text((BUNDLED / "movies.csv").read_text())
    folder = tmp_path_factory.mktemp("input")
    convert(source, folder / "reviews.tsv")
    return folder


@pytest.fixture(scope="module")
def results(slice_input: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    run = run_pipeline(
        input_dir=slice_input,
        output_root=tmp_path_factory.mktemp("runs"),
        fm_overrides={"epochs": 10, "linear_lr": 0.01, "factors_lr": 0.001, "num_factors": 32},
        cold_start_fraction=0.2,
    )
    return run.results


def test_fm_beats_the_global_mean(results: dict[str, object]) -> None:
    rmse = results["rmse"]
    assert isinstance(rmse, dict)
    assert rmse["FM"]["rmse"] < rmse["global mean"]["rmse"]
    assert rmse["FM"]["low"] <= rmse["FM"]["rmse"] <= rmse["FM"]["high"]
    assert rmse["FM"]["n"] == 200  # one test row per customer


def test_every_served_prediction_is_inside_the_rating_range(results: dict[str, object]) -> None:
    samples = results["samples"]
    assert isinstance(samples, dict)
    ratings = [p["rating"] for p in samples["known_pairs"]] + [p["rating"] for p in samples["cold_start"]]
    assert all(1.0 <= r <= 5.0 for r in ratings)
    assert {p["status"] for p in samples["known_pairs"]} == {"known"}
    assert samples["cold_start"][0]["status"] == "cold_start"
    assert samples["similar_titles"][0]["similar"]


def test_cold_start_blend_is_answered_and_finite(results: dict[str, object]) -> None:
    cold = results["cold_start"]
    assert isinstance(cold, dict)
    assert cold["held_out_products"] > 0
    assert cold["answered"] > 0
    blend = cold["rmse"]["title-neighbour blend (cold start)"]
    assert np.isfinite(blend["rmse"]) and blend["n"] == cold["answered"]


def test_report_and_plots_exist(results: dict[str, object]) -> None:
    report = Path(str(results["report"]))
    text = report.read_text()
    for heading in ("## Test RMSE", "## Quality gate", "## Cold start, measured", "## Counts and timings"):
        assert heading in text
    for name in ("rmse.png", "training_curves.png", "cold_start.png", "title_map.png"):
        png = (report.parent / name).read_bytes()
        assert png.startswith(PNG_MAGIC) and len(png) > 2000, name


def test_run_record_points_at_the_run(results: dict[str, object]) -> None:
    report = Path(str(results["report"]))
    run_folder = report.parent.parent
    record = json.loads((run_folder.parent.parent / "serving" / "current.json").read_text())
    assert record["run_id"] == results["run_id"]
    assert record["index_uri"] == run_folder.resolve().as_uri() + "/prep/index/"


def test_missing_input_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--input", str(tmp_path / "nowhere"), "--output", str(tmp_path / "runs")]) == 2
    assert capsys.readouterr().err.strip() == f"loftrec: --input {tmp_path / 'nowhere'}: no such folder"
    assert not (tmp_path / "runs").exists()


def test_empty_file_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "reviews.tsv").write_text("")
    assert main(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("loftrec: ") and "reviews.tsv" in err


def test_thresholds_that_leave_nothing(
    slice_input: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    small = tmp_path / "in"
    small.mkdir()
    lines = (slice_input / "reviews.tsv").read_text().splitlines()[:30]
    (small / "reviews.tsv").write_text("\n".join(lines) + "\n")
    assert main(["--input", str(small), "--output", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("loftrec: ") and "nothing survives the filters" in err
