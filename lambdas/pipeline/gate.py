"""The quality gate: deploy a new FM model only if it beats both baselines and does not regress.

`decide` is the one decision, called by the pipeline's gate Lambda (`handler`) and by the local pipeline.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

from contract import layout
from contract.documents import GateDecision
from lambdas.kit import settings as kit_settings
from lambdas.kit import storage
from lambdas.kit.clients import client
from lambdas.kit.invocation import lambda_handler
from lambdas.kit.logs import LOGGER
from lambdas.kit.settings import number, storage_uri, variable


@dataclass(frozen=True)
class GateSettings:
    """The gate function's environment."""

    run_record_uri: str = variable("RUN_RECORD_URI", storage_uri("the deployed-run record"))
    gate_min_improvement: float = variable("GATE_MIN_IMPROVEMENT", number(0, 1), default="0.01")
    """Fraction by which FM's test RMSE must beat each baseline."""
    gate_max_regression: float = variable("GATE_MAX_REGRESSION", number(0, 1), default="0.02")
    """Fraction by which FM's test RMSE may exceed the deployed model's."""


@functools.cache
def settings() -> GateSettings:
    """Read once per container; ConfigError names a missing or malformed variable."""
    return kit_settings.load(GateSettings)


def decide(
    *,
    fm_test_rmse: float,
    baseline_global_mean_rmse: float,
    baseline_bias_rmse: float,
    deployed_test_rmse: float | None,
    min_improvement: float,
    max_regression: float,
) -> GateDecision:
    """Deploy when FM's test RMSE is at least `min_improvement` (a fraction) below each baseline's and at
    most `max_regression` (a fraction) above the deployed model's. Baselines and FM are measured on the same
    test set (prep computes the baselines on it); the deployed model's RMSE is from its own run.
    """
    reasons: list[str] = []
    ok = math.isfinite(fm_test_rmse)
    if not ok:
        reasons.append(f"FM test RMSE is {fm_test_rmse}: training diverged or reported no metric")
    for name, baseline in (
        ("global mean", baseline_global_mean_rmse),
        ("user + item bias", baseline_bias_rmse),
    ):
        bar = baseline * (1.0 - min_improvement)
        if ok and fm_test_rmse <= bar:
            reasons.append(
                f"FM test RMSE {fm_test_rmse:.4f} beats the {name} baseline {baseline:.4f} "
                f"by at least {min_improvement:.1%} (bar {bar:.4f})"
            )
        else:
            ok = False
            reasons.append(
                f"FM test RMSE {fm_test_rmse:.4f} does not beat the {name} baseline {baseline:.4f} "
                f"by {min_improvement:.1%} (bar {bar:.4f})"
            )
    if deployed_test_rmse is None:
        reasons.append("no model is deployed yet")
    else:
        ceiling = deployed_test_rmse * (1.0 + max_regression)
        if math.isfinite(fm_test_rmse) and fm_test_rmse <= ceiling:
            reasons.append(
                f"FM test RMSE {fm_test_rmse:.4f} is within {max_regression:.1%} of the deployed model's "
                f"{deployed_test_rmse:.4f} (ceiling {ceiling:.4f})"
            )
        else:
            ok = False
            reasons.append(
                f"FM test RMSE {fm_test_rmse:.4f} is worse than the deployed model's "
                f"{deployed_test_rmse:.4f} by more than {max_regression:.1%} (ceiling {ceiling:.4f})"
            )
    return {
        "deploy": ok,
        "reasons": reasons,
        "fm_test_rmse": fm_test_rmse if math.isfinite(fm_test_rmse) else None,  # NaN is not JSON
        "baseline_global_mean_rmse": baseline_global_mean_rmse,
        "baseline_bias_rmse": baseline_bias_rmse,
        "deployed_test_rmse": deployed_test_rmse,
    }


def final_metric(description: dict[str, Any], name: str) -> float:
    """A metric from DescribeTrainingJob's FinalMetricDataList; NaN when the job reported none."""
    for metric in description.get("FinalMetricDataList", []):
        if metric.get("MetricName") == name:
            return float(metric["Value"])
    return math.nan


@lambda_handler
def handler(event: dict[str, Any], _context: object) -> GateDecision:
    """Event: {"training_job_name", "baselines": manifest baselines, "run_uri": s3://.../runs/<id>/}.

    Reads FM's test:rmse from DescribeTrainingJob and the deployed model's from the deployed-run record,
    writes the decision to <run>/gate.json and returns it.
    """
    gate = settings()
    description = client("sagemaker").describe_training_job(TrainingJobName=event["training_job_name"])
    record = storage.read_run_record(gate.run_record_uri)
    deployed = None if record is None else record["metrics"].get("fm_test_rmse")
    baselines = event["baselines"]
    decision = decide(
        fm_test_rmse=final_metric(description, "test:rmse"),
        baseline_global_mean_rmse=float(baselines["global_mean"]["rmse"]),
        baseline_bias_rmse=float(baselines["bias"]["rmse"]),
        deployed_test_rmse=None if deployed is None else float(deployed),
        min_improvement=gate.gate_min_improvement,
        max_regression=gate.gate_max_regression,
    )
    storage.write_json(layout.under(event["run_uri"], layout.GATE), decision)
    LOGGER.info("quality gate decided", extra={"deploy": decision["deploy"], "reasons": decision["reasons"]})
    return decision
