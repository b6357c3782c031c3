"""The document an execution carries from state to state, and the JSONPaths that read it.

Each phase leaves what it produces in one place:
- $.run: the run plan (contract.documents.RunPlan), the answer of "Start run"; every later state reads it;
- $.prep, $.manifest.content: the prep job's ARN and its manifest (Manifest);
- $.fm_fixed: the FM hyperparameters the pipeline sets (feature_dim, from the manifest);
- $.training.<model>: each training job's name and model artifact (TrainedModel);
- $.export.value: what "Export FM factors" answers (ExportSummary: the ranking's popularity weight);
- $.gate.value: the quality gate's decision (GateDecision);
- $.plan_<model>, $.endpoint_<model>, $.waits_<model>, $.count_<model>: one model's deployment;
- $.record: the deployed run's record (RunRecord) before it is written;
- $.error, $.failure, $.rollback, $.rollback_error, $.notify_error: what went wrong, and the rollback.

The paths into contract documents are built with contract.documents.json_path, so that a field the document
does not have fails synth.
"""

from __future__ import annotations

from typing import TypedDict

from contract.documents import GateDecision, Manifest, RunPlan, json_path

RUN = "$.run"
PREP = "$.prep"
MANIFEST = "$.manifest"
"""Read manifest's result: {"content": Manifest}."""
FM_FIXED = "$.fm_fixed"
TRAINING = "$.training"
EXPORT = "$.export"
"""Export FM factors' result: {"value": ExportSummary}."""
GATE = "$.gate"
"""The quality gate's result: {"value": GateDecision}."""
RECORD = "$.record"


class RankingSummary(TypedDict):
    popularity_weight: float
    """The weight of log(1 + reviews) in the top-N ranking, chosen on the validation rows."""


class ExportSummary(TypedDict):
    """The part of lambdas.pipeline.export_factors.handler's answer that later states read."""

    serving_uri: str
    ranking: RankingSummary


class TrainedModel(TypedDict):
    """What each branch of "Train models" answers, at $.training.<model>."""

    job_name: str
    model_data: str
    """The S3 URI of the model artifact (model.tar.gz)."""


def run(*fields: str) -> str:
    """$.run.<fields>, checked against RunPlan."""
    return json_path(RunPlan, *fields, root=RUN)


def manifest(*fields: str) -> str:
    """$.manifest.content.<fields>, checked against Manifest."""
    return json_path(Manifest, *fields, root=f"{MANIFEST}.content")


def gate(*fields: str) -> str:
    """$.gate.value.<fields>, checked against GateDecision."""
    return json_path(GateDecision, *fields, root=f"{GATE}.value")


def trained(model: str, field: str) -> str:
    """$.training.<model>.<field>, checked against TrainedModel."""
    return json_path(TrainedModel, field, root=f"{TRAINING}.{model}")


def export(*fields: str) -> str:
    """$.export.value.<fields>, checked against ExportSummary."""
    return json_path(ExportSummary, *fields, root=f"{EXPORT}.value")


def in_run(path: str, *, base: str = "run_uri") -> str:
    """The intrinsic that makes the URI (base "run_uri") or the key (base "run_prefix") of a path in the run,
    e.g. in_run(layout.INDEX) = States.Format('{}prep/index/', $.run.run_uri)."""
    return f"States.Format('{{}}{path}', {run(base)})"
