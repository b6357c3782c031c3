"""The pipeline's quality gate handler: the paired rule (decide_paired) on the run's per-row predictions."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from moto import mock_aws

from contract import layout
from contract.documents import run_record
from contract.index import ServingIndex, load_index
from fm.factors import build_and_write
from lambdas.kit import clients
from lambdas.kit.errors import GateInputError
from lambdas.pipeline import gate
from tests.lambdas.pipeline import world


def record_body(run_id: str, *, fm_test_rmse: float = 1.0, configs: dict[str, str] | None = None) -> bytes:
    """A deployed-run record as the state machine writes it."""
    record = run_record(
        run_id=run_id,
        deployed_at="2026-11-29T03:00:00Z",
        run_uri=f"s3://data/runs/{run_id}/",
        metrics={"fm_test_rmse": fm_test_rmse, "baseline_global_mean_rmse": 1.28, "baseline_bias_rmse": 1.1},
        endpoint_configs=configs,
    )
    return json.dumps(record).encode()


# ---------------------------------------------------------------------------------------------------------
# The handler on a run folder: the small run of tests/lambdas/pipeline/world.py


def write_candidate(run: Path, quality: world.Quality = "truth") -> ServingIndex:
    """A run folder with prep/ (the prep job's code), FM's model and its test predictions as the Batch
    Transform job writes them."""
    world.prep_run(run / "prep")
    index = load_index(run / "prep" / "index")
    model = world.fm_artifact(index, quality)
    (run / "fm").mkdir()
    (run / "fm" / "model.tar.gz").write_bytes(model)
    predictions = run / layout.TEST_PREDICTIONS_FILE
    predictions.parent.mkdir(parents=True)
    predictions.write_bytes(world.transform_output(model, (run / layout.TEST_SHARD).read_bytes()))
    return index


def deploy(run: Path, bucket: Path) -> None:
    """The run is the deployed one: its serving factors, and the record naming it."""
    index = load_index(run / "prep" / "index")
    build_and_write(
        model=run / "fm" / "model.tar.gz",
        features=index.features,
        shards=sorted((run / "prep").glob("*/part-*.rio")),
        output=run / layout.SERVING_FACTORS,
    )
    record = run_record(
        run_id=run.name,
        deployed_at="2026-11-29T03:00:00Z",
        run_uri=run.as_uri() + "/",
        metrics={"fm_test_rmse": 0.3, "baseline_global_mean_rmse": 0.9, "baseline_bias_rmse": 0.9},
        endpoint_configs=None,
    )
    (bucket / "serving").mkdir(exist_ok=True)
    (bucket / layout.RUN_RECORD_KEY).write_text(json.dumps(record))


@pytest.fixture
def bucket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("RUN_RECORD_URI", (tmp_path / layout.RUN_RECORD_KEY).as_uri())
    monkeypatch.setenv("GATE_MIN_IMPROVEMENT", "0.01")
    monkeypatch.setenv("GATE_MAX_REGRESSION", "0.02")
    gate.settings.cache_clear()
    yield tmp_path
    gate.settings.cache_clear()


def event(run: Path) -> dict[str, Any]:
    return {"run_uri": run.as_uri() + "/", "rating_range": [1, 5]}


def test_a_first_run_is_judged_on_the_test_rows_against_both_baselines(bucket: Path) -> None:
    run = bucket / "runs" / "r1"
    write_candidate(run)
    manifest = json.loads((run / layout.MANIFEST).read_text())
    decision = gate.handler(event(run), None)
    assert decision["deploy"] is True
    assert decision["test_rows"] == 40
    assert [(c["against"], c["rows"], c["passed"]) for c in decision["versus"]] == [
        ("global mean", 40, True),
        ("user + item bias", 40, True),
    ]
    assert decision["reasons"][-1] == "no model is deployed yet"
    # The baselines' RMSE from their per-row predictions is what prep measured on the same rows.
    baselines = manifest["baselines"]
    assert decision["baseline_global_mean_rmse"] == pytest.approx(baselines["global_mean"]["rmse"], rel=1e-6)
    assert decision["baseline_bias_rmse"] == pytest.approx(baselines["bias"]["rmse"], rel=1e-6)
    expected = np.sqrt(np.mean((np.clip(candidate_scores(run), 1, 5) - actual_ratings(run)) ** 2))
    assert decision["fm_test_rmse"] == pytest.approx(expected)
    assert json.loads((run / layout.GATE).read_text()) == decision
    assert "ranking" not in decision


def candidate_scores(run: Path) -> np.ndarray:
    lines = (run / layout.TEST_PREDICTIONS_FILE).read_text().splitlines()
    return np.array([json.loads(line)["score"] for line in lines])


def actual_ratings(run: Path) -> np.ndarray:
    from fm.recordio import read_sparse_records  # noqa: PLC0415 (the labels, read independently)

    return read_sparse_records(io.BytesIO((run / layout.TEST_SHARD).read_bytes())).labels.astype(np.float64)


def test_a_later_run_is_compared_with_the_deployed_one_on_the_rows_both_know(bucket: Path) -> None:
    deployed = bucket / "runs" / "r0"
    write_candidate(deployed)
    deploy(deployed, bucket)
    run = bucket / "runs" / "r1"
    write_candidate(run, "noise")
    decision = gate.handler(event(run), None)
    assert decision["deploy"] is False
    against = decision["versus"][-1]
    assert (against["against"], against["rows"], against["passed"]) == ("deployed run r0", 40, False)
    # The deployed run's serving factors score the rows as its endpoint would: the known FM's RMSE.
    assert decision["deployed_test_rmse"] == pytest.approx(
        np.sqrt(np.mean((np.clip(candidate_scores(deployed), 1, 5) - actual_ratings(run)) ** 2)), rel=1e-5
    )
    assert against["interval"][0] > 0.02  # far worse than the deployed run


def test_a_deployed_run_without_serving_factors_is_not_compared_and_says_so(bucket: Path) -> None:
    deployed = bucket / "runs" / "r0"
    write_candidate(deployed)
    deploy(deployed, bucket)
    shutil.rmtree(deployed / layout.SERVING_FACTORS)
    run = bucket / "runs" / "r1"
    write_candidate(run)
    decision = gate.handler(event(run), None)
    assert decision["deploy"] is True
    assert len(decision["versus"]) == 2
    assert decision["reasons"][-1].startswith(
        "the deployed run r0 cannot be scored (the deployed run has no "
    )
    assert decision["reasons"][-1].endswith(": not compared")
    assert "no model is deployed yet" not in decision["reasons"]


def test_the_ranking_on_the_test_rows_is_copied_into_gate_json(bucket: Path) -> None:
    run = bucket / "runs" / "r1"
    write_candidate(run)
    table = {"rows": 40, "recall_at_10": {"fm": 0.5, "most_popular": 0.4}}
    (run / "serving").mkdir()
    (run / layout.RANKING).write_text(json.dumps({"popularity_weight": 0.5, "test": table}))
    assert gate.handler(event(run), None)["ranking"] == table
    assert json.loads((run / layout.GATE).read_text())["ranking"] == table


def test_predictions_that_do_not_match_the_test_rows_are_one_error_naming_the_file(bucket: Path) -> None:
    run = bucket / "runs" / "r1"
    write_candidate(run)
    predictions = run / layout.TEST_PREDICTIONS_FILE
    predictions.write_text("".join(predictions.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(GateInputError, match=r"part-00000\.rio\.out: 39 predictions for 40 test rows"):
        gate.handler(event(run), None)
    predictions.write_text('{"score": 4.1}\n{"predicted_label": 1}\n')
    with pytest.raises(GateInputError, match=r"part-00000\.rio\.out: line 2 is not \{\"score\": number\}"):
        gate.handler(event(run), None)
    predictions.unlink()
    with pytest.raises(GateInputError, match=r"predictions/test/part-00000\.rio\.out: missing"):
        gate.handler(event(run), None)
    assert not (run / layout.GATE).exists()


def test_baselines_of_another_shape_are_one_error_naming_the_file(bucket: Path) -> None:
    run = bucket / "runs" / "r1"
    write_candidate(run)
    np.save(run / layout.BASELINES_TEST, np.zeros((40, 2), np.float32))
    with pytest.raises(GateInputError, match=r"test\.npy: shape \(40, 2\), expected \(40, 3\)"):
        gate.handler(event(run), None)


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        ({"rating_range": [1, 5]}, "event.run_uri"),
        ({"run_uri": "runs/r1/", "rating_range": [1, 5]}, "event.run_uri"),
        ({"run_uri": "s3://data/runs/r1/"}, "event.rating_range"),
        ({"run_uri": "s3://data/runs/r1/", "rating_range": [5, 1]}, "event.rating_range"),
    ],
)
def test_a_bad_event_is_one_error_naming_the_field(bad: dict[str, Any], named: str, bucket: Path) -> None:
    with pytest.raises(GateInputError, match=named):
        gate.handler(bad, None)


# ---------------------------------------------------------------------------------------------------------
# The handler against moto's S3


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("RUN_RECORD_URI", "s3://data/serving/current.json")
    monkeypatch.setenv("GATE_MIN_IMPROVEMENT", "0.01")
    monkeypatch.setenv("GATE_MAX_REGRESSION", "0.02")
    clients.client.cache_clear()
    gate.settings.cache_clear()
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="data")
        yield s3
    clients.client.cache_clear()
    gate.settings.cache_clear()


def test_the_handler_on_s3_reads_the_run_and_writes_gate_json(cloud: Any, tmp_path: Path) -> None:
    run = tmp_path / "r1"
    write_candidate(run)
    for path in sorted(run.rglob("*")):
        if path.is_file():
            cloud.put_object(
                Bucket="data", Key=f"runs/r1/{path.relative_to(run).as_posix()}", Body=path.read_bytes()
            )
    decision = gate.handler({"run_uri": "s3://data/runs/r1/", "rating_range": [1, 5]}, None)
    assert decision["deploy"] is True
    body = cloud.get_object(Bucket="data", Key="runs/r1/gate.json")["Body"].read()
    assert json.loads(body) == decision
