"""The run record's one writer and one reader, and JSONPaths checked against the documents' types."""

from __future__ import annotations

import json
import re
import typing

import pytest

from contract.documents import (
    BASELINE_COLUMNS,
    MANIFEST_SCHEMA_VERSION,
    Baselines,
    GateDecision,
    Manifest,
    RecordFormatError,
    RunMetrics,
    RunPlan,
    RunRecord,
    json_path,
    parse_run_record,
    run_record,
)

METRICS: RunMetrics = {"fm_test_rmse": 0.88, "baseline_global_mean_rmse": 1.07, "baseline_bias_rmse": 0.92}


def test_a_record_written_is_read_back() -> None:
    record = run_record(
        run_id="r1",
        deployed_at="2026-12-01T03:00:00Z",
        run_uri="s3://b/runs/r1/",
        metrics=METRICS,
        endpoint_configs={"fm": "loftrec-r1-fm-config", "blazingtext": "loftrec-r1-bt-config"},
    )
    assert record["index_uri"] == "s3://b/runs/r1/prep/index/"
    assert record["title_table_uri"] == "s3://b/runs/r1/serving/"
    assert record["manifest_uri"] == "s3://b/runs/r1/prep/manifest.json"
    assert record["endpoints"] == {"fm": "loftrec-fm", "blazingtext": "loftrec-blazingtext"}
    assert parse_run_record(json.dumps(record).encode(), "s3://b/serving/current.json") == record
    assert "recommendations_uri" not in record


def test_a_run_with_batch_recommendations_points_at_them() -> None:
    record = run_record(
        run_id="r1",
        deployed_at="t",
        run_uri="s3://b/runs/r1/",
        metrics=METRICS,
        endpoint_configs=None,
        recommendations=True,
    )
    assert record["recommendations_uri"] == "s3://b/runs/r1/recommendations/"
    assert parse_run_record(json.dumps(record).encode(), "u") == record
    record["recommendations_uri"] = ""
    with pytest.raises(RecordFormatError, match="recommendations_uri is '', not a non-empty string"):
        parse_run_record(json.dumps(record).encode(), "u")


def test_the_writer_joins_paths_the_way_it_is_told() -> None:
    record = run_record(
        run_id="$.run.run_id",
        deployed_at="now",
        run_uri="RUN",
        metrics=METRICS,
        endpoint_configs=None,
        join=lambda base, path: f"format({base}, {path})",
    )
    assert record["index_uri"] == "format(RUN, prep/index/)"
    assert "endpoint_configs" not in record


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schema_version": 2}, "schema_version 2, expected 1"),
        ({"run_id": ""}, "run_id is '', not a non-empty string"),
        ({"index_uri": None}, "index_uri is None"),
        ({"endpoints": {"fm": "x"}}, "endpoints is {'fm': 'x'}, not {fm: name, blazingtext: name}"),
        ({"endpoint_configs": []}, "endpoint_configs is []"),
        ({"metrics": 3}, "metrics is 3, not an object"),
    ],
)
def test_a_malformed_record_names_the_field(change: dict[str, object], message: str) -> None:
    record = dict(
        run_record(
            run_id="r1", deployed_at="t", run_uri="s3://b/runs/r1/", metrics=METRICS, endpoint_configs=None
        )
    )
    record.update(change)
    with pytest.raises(RecordFormatError, match=re.escape(f"run record at u: {message}")):
        parse_run_record(json.dumps(record).encode(), "u")


def test_a_record_that_is_not_json_says_so() -> None:
    with pytest.raises(RecordFormatError, match="run record at u: not JSON"):
        parse_run_record(b"{", "u")
    with pytest.raises(RecordFormatError, match="run record at u: not a JSON object"):
        parse_run_record(b"[]", "u")


def test_json_paths_follow_the_documents_types() -> None:
    assert json_path(RunPlan, "names", "fm_config", root="$.run") == "$.run.names.fm_config"
    assert json_path(RunPlan, "fm", "hyperparameters", "epochs", root="$.run") == (
        "$.run.fm.hyperparameters.epochs"
    )
    assert json_path(GateDecision, "deploy", root="$.gate.value") == "$.gate.value.deploy"
    assert json_path(RunRecord, "endpoint_configs", "fm", root="$") == "$.endpoint_configs.fm"
    with pytest.raises(KeyError, match=re.escape("RunPlan has no field 'names.fm_cfg'")):
        json_path(RunPlan, "names", "fm_cfg", root="$.run")
    with pytest.raises(KeyError, match="goes into"):
        json_path(RunPlan, "run_id", "more", root="$.run")


def test_the_paths_the_state_machine_and_the_gate_read_from_the_manifest() -> None:
    root = "$.manifest.content"
    assert json_path(Manifest, "feature_dim", root=root) == "$.manifest.content.feature_dim"
    assert json_path(Manifest, "baselines", root=root) == "$.manifest.content.baselines"
    assert json_path(Manifest, "baselines", "user_bias", "validation_rmse", root=root).endswith(
        ".baselines.user_bias.validation_rmse"
    )
    assert json_path(Manifest, "counts", "validation_rows", root=root).endswith(".counts.validation_rows")
    assert json_path(Manifest, "baseline_predictions", "test", "path", root=root).endswith(
        ".baseline_predictions.test.path"
    )
    assert json_path(Manifest, "split", "seed", root=root).endswith(".split.seed")
    with pytest.raises(KeyError, match="Manifest has no field"):
        json_path(Manifest, "baselines", "user_item", root=root)


def test_the_baseline_columns_are_the_baselines_models() -> None:
    assert BASELINE_COLUMNS == ("global_mean", "bias", "user_bias")
    models = [k for k, v in typing.get_type_hints(Baselines).items() if typing.is_typeddict(v)]
    assert models == list(BASELINE_COLUMNS)
    assert MANIFEST_SCHEMA_VERSION == 2
