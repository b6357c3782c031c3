"""The quality gate: FM must beat both baselines by the margin and not regress against the deployed model."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.sagemaker.models import sagemaker_backends

from contract.documents import GateDecision, run_record
from lambdas.kit import clients
from lambdas.pipeline import gate

# The notebook's data: predicting the global mean scores RMSE about 1.28, a user + item bias model about 1.1.
GLOBAL_MEAN, BIAS = 1.28, 1.10


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


def decide(fm: float, deployed: float | None = None) -> GateDecision:
    return gate.decide(
        fm_test_rmse=fm,
        baseline_global_mean_rmse=GLOBAL_MEAN,
        baseline_bias_rmse=BIAS,
        deployed_test_rmse=deployed,
        min_improvement=0.01,
        max_regression=0.02,
    )


def test_beats_both_baselines_by_the_margin_without_a_deployed_model() -> None:
    decision = decide(1.05)
    assert decision["deploy"]
    assert decision["reasons"] == [
        "FM test RMSE 1.0500 beats the global mean baseline 1.2800 by at least 1.0% (bar 1.2672)",
        "FM test RMSE 1.0500 beats the user + item bias baseline 1.1000 by at least 1.0% (bar 1.0890)",
        "no model is deployed yet",
    ]
    assert decision == {
        "deploy": True,
        "reasons": decision["reasons"],
        "fm_test_rmse": 1.05,
        "baseline_global_mean_rmse": 1.28,
        "baseline_bias_rmse": 1.1,
        "deployed_test_rmse": None,
    }


def test_beating_one_baseline_is_not_enough() -> None:
    # Below the global mean's bar (1.2672) but above the bias model's (1.089): within 1 % of the bias model.
    decision = decide(1.095)
    assert not decision["deploy"]
    assert decision["reasons"][0].startswith("FM test RMSE 1.0950 beats the global mean baseline")
    assert decision["reasons"][1] == (
        "FM test RMSE 1.0950 does not beat the user + item bias baseline 1.1000 by 1.0% (bar 1.0890)"
    )


def test_the_notebooks_own_model_is_rejected() -> None:
    # Every published run of the notebook scored test RMSE about 50 (the raw days_since_first feature).
    decision = decide(50.3)
    assert not decision["deploy"]
    assert [reason.split(" baseline")[0] for reason in decision["reasons"][:2]] == [
        "FM test RMSE 50.3000 does not beat the global mean",
        "FM test RMSE 50.3000 does not beat the user + item bias",
    ]


@pytest.mark.parametrize("rmse", [math.nan, math.inf])
def test_a_diverged_or_missing_metric_is_rejected(rmse: float) -> None:
    decision = decide(rmse, deployed=1.0)
    assert not decision["deploy"]
    assert decision["reasons"][0] == f"FM test RMSE is {rmse}: training diverged or reported no metric"
    assert "worse than the deployed model's" in decision["reasons"][-1]


def test_a_regression_beyond_the_tolerance_is_rejected() -> None:
    # Beats both baselines, but 1.05 > 1.00 * 1.02.
    decision = decide(1.05, deployed=1.00)
    assert not decision["deploy"]
    assert decision["reasons"][-1] == (
        "FM test RMSE 1.0500 is worse than the deployed model's 1.0000 by more than 2.0% (ceiling 1.0200)"
    )


def test_a_regression_within_the_tolerance_is_deployed() -> None:
    decision = decide(1.015, deployed=1.00)
    assert decision["deploy"]
    assert decision["reasons"][-1] == (
        "FM test RMSE 1.0150 is within 2.0% of the deployed model's 1.0000 (ceiling 1.0200)"
    )


def test_final_metric_reads_the_named_metric_of_describe_training_job() -> None:
    description = {
        "FinalMetricDataList": [
            {"MetricName": "train:progress", "Value": 100.0},
            {"MetricName": "test:rmse", "Value": 1.0417},
            {"MetricName": "test:mse", "Value": 1.0851},
        ]
    }
    assert gate.final_metric(description, "test:rmse") == 1.0417
    assert (
        gate.final_metric({"FinalMetricDataList": [{"MetricName": "test:rmse", "Value": 2}]}, "test:rmse")
        == 2.0
    )
    assert math.isnan(gate.final_metric(description, "test:absolute_loss"))
    assert math.isnan(gate.final_metric({}, "test:rmse"))


# ---------------------------------------------------------------------------------------------------------
# The handler against moto's SageMaker and S3


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("RUN_RECORD_URI", "s3://data/serving/current.json")
    monkeypatch.setenv("GATE_MIN_IMPROVEMENT", "0.01")
    monkeypatch.setenv("GATE_MAX_REGRESSION", "0.02")
    clients.client.cache_clear()
    gate.settings.cache_clear()
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="data")
        yield boto3.client("sagemaker")
    clients.client.cache_clear()
    gate.settings.cache_clear()


def training_job(sagemaker: Any, name: str, test_rmse: float | None) -> None:
    sagemaker.create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": "fm:1", "TrainingInputMode": "File"},
        RoleArn="arn:aws:iam::123456789012:role/sagemaker",
        OutputDataConfig={"S3OutputPath": "s3://data/runs/r1/fm/"},
        ResourceConfig={"InstanceType": "ml.c5.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
    )
    if test_rmse is not None:  # what the algorithm reports when it finishes
        job = sagemaker_backends["123456789012"]["us-east-1"].training_jobs[name]
        job.final_metric_data_list.append({"MetricName": "test:rmse", "Value": test_rmse})


EVENT = {
    "training_job_name": "loftrec-r1-fm",
    "baselines": {"global_mean": {"rmse": GLOBAL_MEAN, "value": 4.1}, "bias": {"rmse": BIAS}},
    "run_uri": "s3://data/runs/r1/",
}


def test_handler_gates_against_the_deployed_run_and_writes_gate_json(cloud: Any) -> None:
    training_job(cloud, "loftrec-r1-fm", 1.03)
    boto3.client("s3").put_object(Bucket="data", Key="serving/current.json", Body=record_body("r0"))
    result = gate.handler(EVENT, None)
    assert result["deploy"] is False  # 1.03 > 1.0 * 1.02
    assert result["deployed_test_rmse"] == 1.0
    body = boto3.client("s3").get_object(Bucket="data", Key="runs/r1/gate.json")["Body"].read()
    assert json.loads(body) == result


def test_handler_rejects_a_job_that_reported_no_rmse_and_writes_valid_json(cloud: Any) -> None:
    training_job(cloud, "loftrec-r1-fm", None)
    result = gate.handler(EVENT, None)
    assert result["deploy"] is False
    assert result["fm_test_rmse"] is None
    assert result["reasons"][-1] == "no model is deployed yet"
    body = boto3.client("s3").get_object(Bucket="data", Key="runs/r1/gate.json")["Body"].read().decode()
    assert "NaN" not in body
    assert json.loads(body)["fm_test_rmse"] is None
