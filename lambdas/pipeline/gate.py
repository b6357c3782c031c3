"""The quality gate: deploy a new FM model only if it beats both baselines and does not regress.

`decide_paired` is the decision on per-row predictions: every model scored on the same test rows, paired
bootstrap intervals of the RMSE differences. The pipeline's gate Lambda (`handler`) gathers them:
- the test rows in ids and ratings: the run's test shard through the run's index (fm.pairs.read_rows);
- the candidate's predictions: the Batch Transform job's output of the test shard (layout.TEST_PREDICTIONS);
- the baselines': the prep job's per-row predictions (layout.BASELINES_TEST);
- the deployed run's, when serving/current.json names one: its serving factors scoring the rows its own index
  knows (fm.pairs.score_rows), as its endpoint would answer them.
Predictions are compared as served: clipped to the rating range. gate.json also carries serving/ranking.json's
"test" object (the top-N ranking on the test rows, written by "Export FM factors") when there is one.
"""

from __future__ import annotations

import functools
import io
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from contract import layout
from contract.documents import BASELINE_COLUMNS, Comparison, GateDecision, RunRecord
from contract.features import rating_range_of
from contract.index import INDEX_FILES, IndexFormatError, parse_index
from fm.metrics import rmse
from fm.pairs import Rows, read_rows, score_rows
from lambdas.kit import settings as kit_settings
from lambdas.kit import storage
from lambdas.kit.errors import GateInputError, RunUnreadableError, StorageNotFoundError
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
)
from lambdas.serving.deployment import load_factors_at


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


# ---------------------------------------------------------------------------------------------------------
# The gate Lambda: the rows, every model's predictions of them, the decision, gate.json.

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Deployed:
    """The deployed run's side of the comparison: its id, and its scores of the test rows (NaN where its
    index does not know the customer or the product); or why it cannot be compared."""

    run_id: str
    scores: F64 | None
    problem: str = ""


def candidate_predictions(raw: bytes, where: str) -> F64:
    """FM's Batch Transform output with Accept application/jsonlines: one {"score": x} per line, in the
    input's order (https://docs.aws.amazon.com/sagemaker/latest/dg/fm-in-formats.html)."""
    scores: list[float] = []
    for number_, line in enumerate(raw.decode("utf-8", errors="replace").split("\n"), start=1):
        if not line.strip():
            continue
        try:
            document = json.loads(line)
            scores.append(float(document["score"]))
        except (ValueError, KeyError, TypeError):
            problem = f'line {number_} is not {{"score": number}}: {line[:80]!r}'
            raise GateInputError(f"{where}: {problem}") from None
    return np.asarray(scores, np.float64)


def baseline_predictions(raw: bytes, rows: int, where: str) -> F64:
    """prep/baselines/test.npy: (rows, BASELINE_COLUMNS) float32, row i predicting the shard's row i."""
    try:
        array = np.load(io.BytesIO(raw), allow_pickle=False)
    except ValueError as exc:
        raise GateInputError(f"{where}: not a .npy file ({exc})") from None
    shape = (rows, len(BASELINE_COLUMNS))
    if array.shape != shape:
        expected = f"{shape} (test rows x {', '.join(BASELINE_COLUMNS)})"
        raise GateInputError(f"{where}: shape {array.shape}, expected {expected}")
    return np.asarray(array, np.float64)


def paired_decision(
    *,
    rows: Rows,
    candidate: F64,
    baselines: F64,
    deployed: Deployed | None,
    rating_range: tuple[float, float],
    min_improvement: float,
    max_regression: float,
) -> GateDecision:
    """decide_paired on the test rows: the candidate's and the deployed run's predictions clipped to the
    rating range, as the shims serve them; the deployed run compared on the rows its index knows."""
    low, high = rating_range
    served = np.clip(candidate, low, high)
    versus_deployed = None
    if deployed is not None and deployed.scores is not None:
        known = np.isfinite(deployed.scores)
        versus_deployed = (
            deployed.run_id,
            rows.ratings[known],
            served[known],
            np.clip(deployed.scores[known], low, high),
        )
    decision = decide_paired(
        actual=rows.ratings,
        candidate=served,
        global_mean=baselines[:, BASELINE_COLUMNS.index("global_mean")],
        bias=baselines[:, BASELINE_COLUMNS.index("bias")],
        deployed=versus_deployed,
        min_improvement=min_improvement,
        max_regression=max_regression,
    )
    if deployed is not None and deployed.scores is None:
        reasons = [r for r in decision["reasons"] if r != "no model is deployed yet"]
        reasons.append(f"the deployed run {deployed.run_id} {deployed.problem}: not compared")
        decision["reasons"] = reasons
    return decision


def _read(uri: str) -> bytes:
    try:
        return storage.read_bytes(uri)
    except StorageNotFoundError:
        raise GateInputError(f"{uri}: missing") from None


def _deployed_side(record: RunRecord, rows: Rows) -> Deployed:
    """The deployed run's scores of the rows through its own index and serving factors."""
    try:
        index = parse_index(*(storage.read_bytes(layout.under(record["index_uri"], n)) for n in INDEX_FILES))
        factors = load_factors_at(layout.under(record["run_uri"], layout.SERVING_FACTORS), index)
    except (StorageNotFoundError, IndexFormatError, RunUnreadableError) as exc:
        return Deployed(record["run_id"], None, f"cannot be scored ({exc})")
    return Deployed(record["run_id"], score_rows(factors, index, rows).scores)


def _ranking(run_uri: str) -> dict[str, Any] | None:
    """serving/ranking.json's "test" object, when the export wrote one."""
    try:
        document = json.loads(storage.read_bytes(layout.under(run_uri, layout.RANKING)))
    except (StorageNotFoundError, ValueError):
        return None
    test = document.get("test") if isinstance(document, dict) else None
    return test if isinstance(test, dict) else None


def gate_run(run_uri: str, rating_range: tuple[float, float], gate: GateSettings) -> GateDecision:
    """The decision on a run's URI (s3:// or file://), written to its gate.json."""
    index_uri = layout.under(run_uri, layout.INDEX)
    try:
        index = parse_index(*(_read(layout.under(index_uri, name)) for name in INDEX_FILES))
    except IndexFormatError as exc:
        raise GateInputError(f"{index_uri}: {exc}") from None
    shard_uri = layout.under(run_uri, layout.TEST_SHARD)
    try:
        rows = read_rows([io.BytesIO(_read(shard_uri))], index, where=shard_uri)
    except ValueError as exc:  # PairsFormatError, or a shard that is not RecordIO-protobuf
        raise GateInputError(str(exc) if shard_uri in str(exc) else f"{shard_uri}: {exc}") from None
    if not len(rows):
        raise GateInputError(f"{shard_uri}: no test rows")
    predictions_uri = layout.under(run_uri, layout.TEST_PREDICTIONS_FILE)
    candidate = candidate_predictions(_read(predictions_uri), predictions_uri)
    if candidate.shape[0] != len(rows):
        raise GateInputError(
            f"{predictions_uri}: {candidate.shape[0]:,} predictions "
            f"for {len(rows):,} test rows in {shard_uri}"
        )
    baselines_uri = layout.under(run_uri, layout.BASELINES_TEST)
    baselines = baseline_predictions(_read(baselines_uri), len(rows), baselines_uri)
    record = storage.read_run_record(gate.run_record_uri)
    deployed = None
    if record is not None and record["run_uri"].rstrip("/") != run_uri.rstrip("/"):
        deployed = _deployed_side(record, rows)
    decision = paired_decision(
        rows=rows,
        candidate=candidate,
        baselines=baselines,
        deployed=deployed,
        rating_range=rating_range,
        min_improvement=gate.gate_min_improvement,
        max_regression=gate.gate_max_regression,
    )
    ranking = _ranking(run_uri)
    if ranking is not None:
        decision["ranking"] = ranking
    storage.write_json(layout.under(run_uri, layout.GATE), decision)
    return decision


def _event(event: object) -> tuple[str, tuple[float, float]]:
    if not isinstance(event, dict):
        raise GateInputError('event must be an object with "run_uri" and "rating_range"')
    run_uri, rating_range = event.get("run_uri"), rating_range_of(event.get("rating_range"))
    if not isinstance(run_uri, str) or not run_uri.startswith(("s3://", "file://")):
        raise GateInputError(f"event.run_uri is {run_uri!r}: an s3:// or file:// URI is required")
    if rating_range is None:
        raise GateInputError(
            f"event.rating_range is {event.get('rating_range')!r}: [lowest, highest] rating is required"
        )
    return run_uri, rating_range


@lambda_handler
def handler(event: Any, _context: object) -> GateDecision:
    """Pipeline Lambda: {"run_uri", "rating_range": the manifest's} -> the GateDecision, also in gate.json."""
    run_uri, rating_range = _event(event)
    decision = gate_run(run_uri, rating_range, settings())
    LOGGER.info("quality gate decided", extra={"deploy": decision["deploy"], "reasons": decision["reasons"]})
    return decision
