"""The batch recommendations job on the hand-made run: its lines, shards, manifest and command line."""

from __future__ import annotations

import ast
import datetime as dt
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from contract import layout
from fm.factors import build_and_write
from jobs.recommend.__main__ import build_parser, folders
from jobs.recommend.job import RecommendConfig, RecommendError, run_recommend
from tests.fm.topn_support import SCORES_AT_0, SCORES_AT_1, write_run

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """The hand-made run with its serving factors built from its train shard."""
    folder = tmp_path / "runs" / "r1"
    index = write_run(folder)
    build_and_write(
        model=folder / "fm" / "model.tar.gz",
        features=index.features,
        shards=sorted((folder / layout.TRAIN).iterdir()),
        output=folder / layout.SERVING_FACTORS,
    )
    return folder


def _lines(folder: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for shard in sorted(folder.glob("part-*.jsonl.gz")):
        with gzip.open(shard, "rt", encoding="utf-8") as f:
            out.extend(json.loads(line) for line in f)
    return out


def _recommend(run: Path, log: list[str] | None = None, **settings: Any) -> dict[str, Any]:
    return run_recommend(
        run / layout.SERVING_FACTORS,
        run / layout.INDEX,
        run / layout.RECOMMENDATIONS,
        RecommendConfig(**settings),
        log=(log.append if log is not None else lambda _: None),
    )


def test_every_customer_gets_the_best_products_they_have_not_reviewed(run: Path) -> None:
    # 2013-10-22 is C1's first day (t = 0) and before C2's first review (t = 0).
    manifest = _recommend(run, k=3, date=dt.date(2013, 10, 22))
    lines = _lines(run / layout.RECOMMENDATIONS)
    assert [line["customer_id"] for line in lines] == ["C1", "C2"]
    assert [list(line) for line in lines] == [["customer_id", "recommendations", "fallback"]] * 2
    c1, c2 = lines
    assert [r["product_id"] for r in c1["recommendations"]] == ["P2", "P1"]  # P0 and P3 reviewed
    assert [r["title"] for r in c1["recommendations"]] == ["Two", "One"]
    assert [r["score"] for r in c1["recommendations"]] == [SCORES_AT_0[0][2], SCORES_AT_0[0][1]]
    assert [(r["product_id"], r["score"]) for r in c2["recommendations"]] == [("P2", 3.3), ("P3", 1.75)]
    assert c1["fallback"] is c2["fallback"] is False
    assert manifest["counts"] == {
        "customers": 2,
        "lines": 2,
        "fallback_lines": 0,
        "short_lines": 2,  # 2 products left of 4 for k = 3
        "products": 4,
    }
    assert (manifest["k"], manifest["date"], manifest["exclude_reviewed"]) == (3, "2013-10-22", True)


def test_the_date_sets_the_time_value_and_reviewed_products_can_stay(run: Path) -> None:
    # 2014-01-30: C1 is 100 days past its first review, the transform's scale: t = 1.
    _recommend(run, k=4, date=dt.date(2014, 1, 30), exclude_reviewed=False)
    c1 = _lines(run / layout.RECOMMENDATIONS)[0]
    assert [r["product_id"] for r in c1["recommendations"]] == ["P3", "P0", "P2", "P1"]
    assert [r["score"] for r in c1["recommendations"]] == sorted(SCORES_AT_1[0], reverse=True)


def test_the_popularity_blend_reorders(run: Path) -> None:
    _recommend(run, k=3, date=dt.date(2013, 10, 22), exclude_reviewed=False, popularity_weight=1.0)
    c1 = _lines(run / layout.RECOMMENDATIONS)[0]
    assert [r["product_id"] for r in c1["recommendations"]] == ["P0", "P3", "P1"]


def test_shards_split_the_lines_and_the_manifest_lists_them(run: Path) -> None:
    log: list[str] = []
    manifest = _recommend(run, log, k=1, date=dt.date(2014, 1, 1), lines_per_shard=1, chunk_customers=1)
    out = run / layout.RECOMMENDATIONS
    names = sorted(p.name for p in out.iterdir())
    assert names == ["manifest.json", "part-00000.jsonl.gz", "part-00001.jsonl.gz"]
    assert [s["name"] for s in manifest["shards"]] == names[1:]
    assert [s["lines"] for s in manifest["shards"]] == [1, 1]
    assert [s["bytes"] for s in manifest["shards"]] == [(out / n).stat().st_size for n in names[1:]]
    assert json.loads((out / "manifest.json").read_text()) == manifest
    progress = [line for line in log if line.startswith("chunk ")]
    assert [p.split(":")[0] for p in progress] == ["chunk 1/2", "chunk 2/2"]
    assert "1/2 customers" in progress[0]


def test_the_same_inputs_give_the_same_bytes(run: Path, tmp_path: Path) -> None:
    _recommend(run, k=2, date=dt.date(2014, 1, 1))
    first = (run / layout.RECOMMENDATIONS / "part-00000.jsonl.gz").read_bytes()
    run_recommend(
        run / layout.SERVING_FACTORS,
        run / layout.INDEX,
        tmp_path / "again",
        RecommendConfig(k=2, date=dt.date(2014, 1, 1), workers=2, chunk_customers=1),
        log=lambda _: None,
    )
    assert (tmp_path / "again" / "part-00000.jsonl.gz").read_bytes() == first


def test_an_output_folder_in_use_is_refused(run: Path) -> None:
    (run / layout.RECOMMENDATIONS).mkdir()
    (run / layout.RECOMMENDATIONS / "old.jsonl.gz").write_bytes(b"")
    with pytest.raises(RecommendError, match="is not an empty folder: give a new folder for each run"):
        _recommend(run)


def test_factors_of_another_run_are_refused(run: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    write_run(other)
    lines = (other / layout.INDEX / "customers.tsv").read_text() + "C3\t16200\n"
    (other / layout.INDEX / "customers.tsv").write_text(lines)
    meta = json.loads((other / layout.INDEX / "index.json").read_text())
    meta.update(num_customers=3, feature_dim=8)
    (other / layout.INDEX / "index.json").write_text(json.dumps(meta))
    with pytest.raises(
        RecommendError, match="the factors are for 2 customers and 4 products, the index has 3"
    ):
        run_recommend(
            run / layout.SERVING_FACTORS, other / layout.INDEX, tmp_path / "out", RecommendConfig(), log=print
        )


def test_missing_factors_are_named(run: Path) -> None:
    (run / layout.SERVING_FACTORS_MANIFEST).unlink()
    with pytest.raises(RecommendError, match=r"serving factors at .*: .*factors\.json: missing"):
        _recommend(run)


@pytest.mark.parametrize(
    ("settings", "message"),
    [({"k": 0}, "k must be >= 1"), ({"popularity_weight": -1.0}, "popularity_weight must be >= 0")],
)
def test_a_bad_configuration_is_named(run: Path, settings: dict[str, Any], message: str) -> None:
    with pytest.raises(RecommendError, match=f"invalid configuration: {message}"):
        _recommend(run, **settings)


# ------------------------------------------------------------------------------------------- command line


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    return subprocess.run(
        [sys.executable, "-m", "jobs.recommend", *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_the_command_line_writes_a_runs_recommendations(run: Path) -> None:
    result = run_cli("--run", run, "--k", "2", "--date", "2013-10-22", "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert "recommend: chunk 1/1: 2/2 customers" in result.stderr
    manifest = json.loads((run / layout.RECOMMENDATIONS_MANIFEST).read_text())
    assert (manifest["k"], manifest["settings"]["workers"]) == (2, 2)
    assert [r["product_id"] for r in _lines(run / layout.RECOMMENDATIONS)[0]["recommendations"]] == [
        "P2",
        "P1",
    ]


def test_the_command_line_takes_the_parts(run: Path, tmp_path: Path) -> None:
    result = run_cli(
        "--factors", run / layout.SERVING_FACTORS, "--index", run / layout.INDEX, "--output", tmp_path / "o",
        "--include-reviewed", "--k", "1", "--date", "2013-10-22",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert _lines(tmp_path / "o")[0]["recommendations"][0]["product_id"] == "P3"


def test_the_command_line_fails_with_one_line_and_the_failure_message(run: Path, tmp_path: Path) -> None:
    (run / layout.SERVING_FACTORS / "items.npy").write_bytes(b"garbage")
    result = run_cli("--run", run, "--failure-message", tmp_path / "message")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("recommend failed: serving factors at ")
    assert "items.npy: not a .npy file" in last
    assert (tmp_path / "message").read_text() == last


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--run", "x", "--output", "y"], "--run DIR names all three folders"),
        (["--k", "0"], "--k: must be an integer >= 1, got 0"),
        (["--date", "2014-13-01"], "--date: must be a date YYYY-MM-DD, got 2014-13-01"),
        (["--popularity-weight", "-1"], "--popularity-weight: must be a finite number >= 0, got -1"),
    ],
)
def test_bad_arguments_exit_2(args: list[str], message: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    assert message in result.stderr


def test_the_defaults_are_the_processing_containers_paths() -> None:
    parser = build_parser()
    assert folders(parser, parser.parse_args([])) == (
        Path(layout.RECOMMEND_CONTAINER_FACTORS),
        Path(layout.RECOMMEND_CONTAINER_INDEX),
        Path(layout.RECOMMEND_CONTAINER_OUTPUT),
    )


def test_the_job_imports_only_what_the_prep_image_installs() -> None:
    allowed = set(sys.stdlib_module_names) | {"numpy", "jobs", "contract", "fm"}
    for source in sorted((REPO / "jobs" / "recommend").glob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            assert all(n.split(".")[0] in allowed for n in names), f"{source.name} imports {names}"


def test_scores_in_lines_are_rounded_to_six_decimals(run: Path) -> None:
    _recommend(run, k=1, date=dt.date(2013, 12, 1))
    score = _lines(run / layout.RECOMMENDATIONS)[0]["recommendations"][0]["score"]
    assert score == round(score, 6)
    assert np.isfinite(score)
