"""The whole local pipeline, end to end, on a slice of the bundled MovieLens data: real prep, real
training, the real shims against the local runtime server, and the report's numbers."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from contract import layout
from contract.index import held_out_title
from jobs.prep.job import PrepConfig
from jobs.prep.prepare import Thresholds
from lambdas.serving.vectors import parse_title_table
from local.movielens import AMAZON_COLUMNS, convert
from local.pipeline.cli import main
from local.pipeline.run import run_pipeline
from local.pipeline.start import BUNDLED

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


SLICE_FM = {"epochs": 10, "linear_lr": 0.01, "factors_lr": 0.001, "num_factors": 32}
GOOD_FM = {"epochs": 20, "mini_batch_size": 50, "linear_lr": 0.01, "factors_lr": 0.02, "num_factors": 8}
BAD_FM = {"epochs": 1, "bias_lr": 1e-6, "linear_lr": 1e-6, "factors_lr": 1e-6, "num_factors": 4}
SMALL_BLAZINGTEXT = {"epochs": 5, "min_count": 1}


def record_of(root: Path) -> Path:
    return root / "serving" / "current.json"


@pytest.fixture(scope="module")
def results(slice_input: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    run = run_pipeline(
        input_dir=slice_input,
        output_root=tmp_path_factory.mktemp("runs"),
        fm_overrides=SLICE_FM,
        cold_start_fraction=0.2,
    )
    return run.results


@pytest.fixture(scope="module")
def interacting_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Reviews with an interaction that biases cannot express and FM can: 150 customers of two kinds, 60
    products of two kinds, 25 reviews each; a customer rates a product of its own kind 4..5 and the other
    kind 1..3 (a seeded draw), so every customer's and every product's mean is about the same."""
    rng = np.random.default_rng(0)
    lines = ["\t".join(AMAZON_COLUMNS)]
    for c in range(150):
        for p in rng.choice(60, size=25, replace=False).tolist():
            stars = int(np.clip((5 if c % 2 == p % 2 else 2) + rng.integers(-1, 2), 1, 5))
            day = dt.date(2015, 1, 1) + dt.timedelta(days=int(rng.integers(0, 400)))
            row = dict.fromkeys(AMAZON_COLUMNS, "x") | {
                "customer_id": f"C{c}",
                "product_id": f"P{p}",
                "product_title": f"{'Comedy' if p % 2 else 'Drama'} number {p} ({1980 + p % 20})",
                "star_rating": str(stars),
                "review_date": day.isoformat(),
            }
            lines.append("\t".join(row[name] for name in AMAZON_COLUMNS))
    folder = tmp_path_factory.mktemp("interacting")
    (folder / "reviews.tsv").write_text("\n".join(lines) + "\n")
    return folder


def interacting_run(folder: Path, root: Path, fm: dict[str, Any], cold_start: float) -> dict[str, Any]:
    return run_pipeline(
        input_dir=folder,
        output_root=root,
        fm_overrides=fm,
        blazingtext_overrides=SMALL_BLAZINGTEXT,
        cold_start_fraction=cold_start,
    ).results


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("root")


@pytest.fixture(scope="module")
def first(interacting_input: Path, root: Path) -> dict[str, Any]:
    """The first run into an empty output root: nothing deployed yet."""
    return interacting_run(interacting_input, root, GOOD_FM, 0.2)


@pytest.fixture(scope="module")
def twin(interacting_input: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same run into another empty output root."""
    return interacting_run(interacting_input, tmp_path_factory.mktemp("twin"), GOOD_FM, 0.2)


@pytest.fixture(scope="module")
def second(interacting_input: Path, root: Path, first: dict[str, Any]) -> dict[str, Any]:
    """The same run again into the first run's root, after the first was deployed."""
    assert first["deployed"]
    return interacting_run(interacting_input, root, GOOD_FM, 0)


@pytest.fixture(scope="module")
def rejected(
    interacting_input: Path, root: Path, second: dict[str, Any]
) -> tuple[dict[str, Any], bytes, bytes]:
    """A run that cannot pass the gate, after the second: (its results, the record before, after)."""
    before = record_of(root).read_bytes()
    results = interacting_run(interacting_input, root, BAD_FM, 0)
    return results, before, record_of(root).read_bytes()


def test_fm_beats_the_global_mean_on_validation_and_test(results: dict[str, Any]) -> None:
    for split in ("validation", "test"):
        table = results["rmse_by_split"][split]
        fm = table["rmse"]["FM (clipped to 1..5, as served)"]
        assert fm["rmse"] < table["rmse"]["global mean"]["rmse"]
        assert fm["low"] <= fm["rmse"] <= fm["high"]
        difference = table["differences"]["FM (clipped to 1..5, as served) vs global mean"]
        assert difference["interval"][0] <= difference["relative"] <= difference["interval"][1] < 0
    assert results["rmse_by_split"]["test"]["rows"] == 200  # one test row per customer
    # FM's "test" channel is the validation shard: its last epoch's test_rmse is the validation RMSE (raw).
    raw = results["rmse_by_split"]["validation"]["rmse"]["FM raw (unclipped)"]["rmse"]
    assert results["fm_metrics"]["test_rmse"] == pytest.approx(raw, rel=1e-5)


def test_the_first_run_is_judged_against_the_baselines_and_deployed(
    first: dict[str, Any], root: Path
) -> None:
    results = first
    gate = results["gate"]
    assert gate["deploy"] and results["deployed"]
    assert [c["against"] for c in gate["versus"]] == ["global mean", "user + item bias"]
    assert gate["test_rows"] == 150 and gate["reasons"][-1] == "no model is deployed yet"
    run_folder = root / "runs" / results["run_id"]
    written = json.loads((run_folder / "gate.json").read_text())
    assert written == json.loads(json.dumps(gate))
    ranking = json.loads((run_folder / "serving" / "ranking.json").read_text())
    assert written["ranking"] == ranking["test"]
    assert set(ranking["test"]["rankings"]) == {"fm", "fm_popularity", "most_popular", "random"}
    record = json.loads(record_of(root).read_text())
    assert record["run_id"] == results["run_id"]
    assert record["index_uri"] == run_folder.resolve().as_uri() + "/prep/index/"
    assert record["recommendations_uri"] == run_folder.resolve().as_uri() + "/recommendations/"


def test_the_next_run_is_compared_with_the_deployed_one(
    first: dict[str, Any], second: dict[str, Any]
) -> None:
    deployed = second["gate"]["versus"][2]
    assert deployed["against"] == f"deployed run {first['run_id']}"
    assert deployed["rows"] == 150  # the same input: the deployed run knows every test pair
    # Identical inputs and seeds train the same model: the deployed run's scores are the candidate's.
    assert deployed["candidate_rmse"] == pytest.approx(deployed["other_rmse"], abs=1e-5)
    assert deployed["passed"] and second["deployed"]
    assert second["gate"]["deployed_test_rmse"] == pytest.approx(deployed["other_rmse"])


def test_a_rejected_run_leaves_the_deployed_record_untouched(
    rejected: tuple[dict[str, Any], bytes, bytes], second: dict[str, Any], root: Path
) -> None:
    results, before, after = rejected
    assert not results["gate"]["deploy"] and not results["deployed"]
    assert after == before
    assert json.loads(after)["run_id"] == second["run_id"]
    failed = [c["against"] for c in results["gate"]["versus"] if not c["passed"]]
    assert "user + item bias" in failed and f"deployed run {second['run_id']}" in failed
    # The shims measured the rejected run through its own record, not the deployed one.
    own = json.loads((root / "runs" / results["run_id"] / "shims_record.json").read_text())
    assert own["run_id"] == results["run_id"]
    assert "**not deployed**" in Path(results["report"]).read_text()


def test_two_identical_runs_give_identical_reports(first: dict[str, Any], twin: dict[str, Any]) -> None:
    results = first

    def figures(run: dict[str, Any]) -> list[str]:
        report = Path(run["report"])
        text = report.read_text().replace(run["run_id"], "RUN").replace(str(report.parents[3]), "ROOT")
        return [
            line for line in text.splitlines() if not line.startswith(("- seconds per step", "- peak RSS"))
        ]

    assert figures(results) == figures(twin)
    assert results["cold_start"] == twin["cold_start"] | {"example": results["cold_start"]["example"]}
    assert results["title_map"] == twin["title_map"]


def test_every_served_prediction_is_inside_the_rating_range(results: dict[str, Any]) -> None:
    samples = results["samples"]
    ratings = [p["rating"] for p in samples["known_pairs"]] + [p["rating"] for p in samples["cold_start"]]
    assert all(1.0 <= r <= 5.0 for r in ratings)
    assert {p["status"] for p in samples["known_pairs"]} == {"known"}
    assert samples["cold_start"][0]["status"] == "cold_start"
    assert samples["similar_titles"][0]["similar"]


def test_top_n_through_the_shim_scores_as_the_endpoint(results: dict[str, Any]) -> None:
    check = results["recommendations_check"]
    assert check["products_checked"] == 50  # 5 customers, k 10
    assert check["max_score_difference"] <= 1e-4
    assert check["unknown_customer"]["fallback"] is True


def test_batch_recommendations_are_in_the_run_folder(results: dict[str, Any]) -> None:
    folder = Path(results["recommendations_folder"])
    assert folder == Path(results["report"]).parents[1] / "recommendations"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["counts"]["lines"] == 200 and manifest["k"] == 10
    assert manifest["popularity_weight"] == results["ranking"]["popularity_weight"]
    with gzip.open(folder / manifest["shards"][0]["name"], "rt") as shard:
        lines = [json.loads(line) for line in shard]
    assert len(lines) == 200 and all(len(line["recommendations"]) == 10 for line in lines)


def test_the_cold_start_is_measured_against_the_user_bias(results: dict[str, Any]) -> None:
    cold = results["cold_start"]
    assert cold["held_out_products"] > 0 and cold["answered"] > 0
    versus = cold["versus_user_bias"]
    assert versus["rows"] == cold["answered"]
    assert versus["interval"][0] <= versus["relative"] <= versus["interval"][1]
    assert cold["shrinkage"]["chosen_on"] in {"validation", "default"}
    nonsense = cold["nonsense_title"]["answer"]
    assert nonsense["answered_from"] == "customer_only"
    assert nonsense["reason"]["code"] == "title_has_no_letter_or_digit"


def test_the_shrinkage_is_chosen_on_the_held_out_titles_the_corpus_never_saw(results: dict[str, Any]) -> None:
    titles, choice = results["title_table"], results["cold_start_choice"]
    held = results["manifest"]["held_out_titles"]["titles"]
    assert held > 0 and titles["held_out_titles"] == titles["held_out_with_vector"] == held
    run = Path(str(results["recommendations_folder"])).parent
    corpus = set((run / layout.CORPUS_FILE).read_text(encoding="utf-8").split())
    held_out = parse_title_table(
        *((run / layout.SERVING / name).read_bytes() for name in layout.HELD_OUT_TITLE_FILES)
    )
    assert len(held_out.tokens) == held and corpus.isdisjoint(held_out.tokens)
    assert all(held_out_title(token) for token in held_out.tokens)
    assert choice["rows"] + choice["rows_not_held_out"] == choice["validation_rows"] and choice["rows"] > 0
    assert "held_out_title" in choice["method"] and choice["never_loses"]


def test_report_and_plots_exist(results: dict[str, Any]) -> None:
    report = Path(str(results["report"]))
    text = report.read_text()
    for heading in (
        "## Quality gate (test rows, paired)",
        "## RMSE on validation and test rows",
        "## Top-N ranking on the test rows",
        "## Cold start, measured on products held out entirely",
        "### What the title space encodes",
        "## Counts and timings",
    ):
        assert heading in text
    for name in ("rmse.png", "differences.png", "training_curves.png", "cold_start.png", "title_map.png"):
        png = (report.parent / name).read_bytes()
        assert png.startswith(PNG_MAGIC) and len(png) > 2000, name


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


def test_a_run_without_validation_rows_completes_and_says_so_loudly(tmp_path: Path) -> None:
    """40 customers with two reviews each: one is the test row, so no customer has a validation row."""
    lines = ["\t".join(AMAZON_COLUMNS)]
    for c in range(40):
        for p in range(2):
            row = dict.fromkeys(AMAZON_COLUMNS, "x") | {
                "customer_id": f"C{c}",
                "product_id": f"P{(c + p) % 12}",
                "product_title": f"Film {(c + p) % 12} (199{p})",
                "star_rating": str(1 + (c * p) % 5),
                "review_date": f"2015-01-0{1 + p}",
            }
            lines.append("\t".join(row[name] for name in AMAZON_COLUMNS))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "reviews.tsv").write_text("\n".join(lines) + "\n")
    results = run_pipeline(
        input_dir=tmp_path / "in",
        output_root=tmp_path / "out",
        fm_overrides={},
        blazingtext_overrides={"min_count": 1, "epochs": 2},
        cold_start_fraction=0,
        prep=PrepConfig(thresholds=Thresholds(1, 1)),
    ).results
    assert results["manifest"]["counts"]["validation_rows"] == 0
    assert all(epoch["test_rmse"] is None for epoch in results["fm_metrics"]["epochs"])
    assert results["rmse_by_split"]["validation"]["rows"] == 0
    text = Path(results["report"]).read_text()
    assert "> **WARNING: no validation rows" in text and "> **WARNING: small training set" in text
    assert not results["deployed"] and not (tmp_path / "out" / "serving" / "current.json").exists()
