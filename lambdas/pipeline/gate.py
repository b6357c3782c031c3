"""The quality gate: deploy a new FM model only if it beats both baselines and does not regress.

`decide_paired` is the decision on per-row predictions (every model scored on the same test rows, paired
bootstrap intervals of the RMSE differences); `decide` is the earlier decision on point estimates, which the
pipeline's gate Lambda (`handler`) still takes while the state machine reports only FM's test RMSE.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from contract import layout
from contract.documents import Comparison, GateDecision
from lambdas.kit import settings as kit_settings
from lambdas.kit import storage
from lambdas.kit.clients import client
from lambdas.kit.invocation import lambda_handler
from lambdas.kit.logs import LOGGER
from lambdas.kit.settings import number, storage_uri, variable
from lambdas.pipeline.paired import (
    BOOTSTRAP_SAMPLES,
    BOOTSTRAP_SEED,
    CONFIDENCE,
    Floats,
    PairedDifference,
    paired_difference,
    rmse,
)


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


# ---------------------------------------------------------------------------------------------------------
# The paired decision: every model scored on the same test rows.

MIN_SHARED_ROWS = 30
"""Fewer test rows known to both the candidate and the deployed run than this: no comparison is made."""


def _comparison(against: str, difference: PairedDifference, passed: bool, reason: str) -> Comparison:
    return {
        "against": against,
        "rows": difference.rows,
        "candidate_rmse": difference.candidate_rmse,
        "other_rmse": difference.other_rmse,
        "relative": difference.relative,
        "interval": [difference.low, difference.high],
        "passed": passed,
        "reason": reason,
    }


def _beats(name: str, difference: PairedDifference, min_improvement: float) -> Comparison:
    """Superiority by the margin: the point estimate at least `min_improvement` better, and the interval
    wholly below zero (the improvement is not noise)."""
    figures = (
        f"FM test RMSE {difference.candidate_rmse:.4f} vs the {name} baseline's {difference.other_rmse:.4f} "
        f"on {difference.rows:,} rows: {difference.relative:+.1%} "
        f"[{difference.low:+.1%}, {difference.high:+.1%}]"
    )
    if difference.relative > -min_improvement:
        return _comparison(name, difference, False, f"{figures}; not {min_improvement:.1%} better")
    if difference.high >= 0:
        return _comparison(name, difference, False, f"{figures}; the interval includes no improvement")
    return _comparison(name, difference, True, f"{figures}; at least {min_improvement:.1%} better")


def _not_worse(run_id: str, difference: PairedDifference, max_regression: float) -> Comparison:
    """Non-inferiority within the tolerance: the interval's upper end at most `max_regression` worse."""
    name = f"deployed run {run_id}"
    figures = (
        f"FM test RMSE {difference.candidate_rmse:.4f} vs the {name}'s {difference.other_rmse:.4f} on "
        f"{difference.rows:,} rows both know: {difference.relative:+.1%} "
        f"[{difference.low:+.1%}, {difference.high:+.1%}]"
    )
    if difference.high > max_regression:
        reason = f"{figures}; it may be more than {max_regression:.1%} worse"
        return _comparison(name, difference, False, reason)
    return _comparison(name, difference, True, f"{figures}; at most {max_regression:.1%} worse")


def decide_paired(
    *,
    actual: Floats,
    candidate: Floats,
    global_mean: Floats,
    bias: Floats,
    deployed: tuple[str, Floats, Floats, Floats] | None,
    min_improvement: float,
    max_regression: float,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> GateDecision:
    """Deploy when the candidate beats both baselines on the test rows by the margin, significantly, and is
    not worse than the deployed run beyond the tolerance on the rows both runs know.

    `actual`, `candidate`, `global_mean` and `bias` are aligned per test row, predictions as served (clipped);
    `deployed` is (run id, actual, candidate, deployed) on the shared rows, or None when nothing is deployed.
    A candidate with a non-finite prediction (diverged training) is rejected.
    """
    candidate = np.asarray(candidate, dtype=np.float64)
    rows = int(candidate.shape[0])
    if rows == 0 or not np.isfinite(candidate).all():
        problem = "no test row was scored" if rows == 0 else "a test prediction is not finite (diverged?)"
        return {
            "deploy": False,
            "reasons": [f"FM's test predictions cannot be judged: {problem}"],
            "fm_test_rmse": None,
            "baseline_global_mean_rmse": rmse(global_mean, actual) if rows else math.nan,
            "baseline_bias_rmse": rmse(bias, actual) if rows else math.nan,
            "deployed_test_rmse": None,
            "test_rows": rows,
            "versus": [],
            "bootstrap": {"samples": samples, "seed": seed, "confidence": CONFIDENCE},
        }
    versus = [
        _beats(name, paired_difference(actual, candidate, other, samples=samples, seed=seed), min_improvement)
        for name, other in (("global mean", global_mean), ("user + item bias", bias))
    ]
    reasons = [comparison["reason"] for comparison in versus]
    deployed_rmse: float | None = None
    if deployed is None:
        reasons.append("no model is deployed yet")
    else:
        run_id, shared_actual, shared_candidate, shared_deployed = deployed
        shared = len(shared_actual)
        if shared < MIN_SHARED_ROWS:
            reasons.append(
                f"the deployed run {run_id} knows {shared:,} of the test rows' customer and product pairs, "
                f"fewer than {MIN_SHARED_ROWS}: not compared"
            )
        else:
            difference = paired_difference(
                shared_actual, shared_candidate, shared_deployed, samples=samples, seed=seed
            )
            deployed_rmse = difference.other_rmse
            versus.append(_not_worse(run_id, difference, max_regression))
            reasons.append(versus[-1]["reason"])
    return {
        "deploy": all(comparison["passed"] for comparison in versus),
        "reasons": reasons,
        "fm_test_rmse": versus[0]["candidate_rmse"],
        "baseline_global_mean_rmse": versus[0]["other_rmse"],
        "baseline_bias_rmse": versus[1]["other_rmse"],
        "deployed_test_rmse": deployed_rmse,
        "test_rows": rows,
        "versus": versus,
        "bootstrap": {"samples": samples, "seed": seed, "confidence": CONFIDENCE},
    }
