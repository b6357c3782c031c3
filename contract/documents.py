"""The documents that cross a process or state boundary, typed once.

- RunPlan: what "Start run" answers; every later state reads it as $.run.
- Manifest: prep/manifest.json, written by the prep job; the state machine reads feature_dim and baselines;
  the gate and the report read the baseline predictions it lists.
- GateDecision: gate.json and $.gate.value, written by the quality gate (the Lambda and the local twin).
- RunRecord: serving/current.json, the deployed run; written by the state machine and the local twin, read by
  the shims, the gate (the deployed model's metrics) and the rollback (the deployed endpoint configurations).

`json_path` builds the state machine's JSONPath to a field and fails at synth if the field is not in the
document's type, so a renamed field cannot leave a state reading nothing.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable
from typing import Any, NotRequired, TypedDict

from contract import layout
from contract.algorithms import ENDPOINT_NAMES, MODELS, ResourceNames

# ---------------------------------------------------------------------------------------------- run plan


class TrainingResources(TypedDict):
    """A training job's ResourceConfig, member for member as CreateTrainingJob takes it: decided per run,
    because the instance type decides whether the volume may name a KMS key (contract.instances)."""

    InstanceCount: int
    InstanceType: str
    VolumeSizeInGB: int
    VolumeKmsKeyId: NotRequired[str]


class FmTuningPlan(TypedDict):
    """Whether the run tunes FM (SageMaker automatic model tuning, fm_tuning), and what every tuning job's
    training job takes as it is: the run's FM hyperparameters but the tuned ones."""

    enabled: bool
    static_hyperparameters: dict[str, str]


class FmSettings(TypedDict):
    instance_type: str
    instance_count: int
    hyperparameters: dict[str, str]
    resource_config: TrainingResources
    inter_container_encryption: bool
    """Several hosts exchange model updates: encrypt that traffic when the run has more than one."""
    tuning: FmTuningPlan


class BlazingTextSettings(TypedDict):
    instance_type: str
    hyperparameters: dict[str, str]
    resource_config: TrainingResources


class RunPlan(TypedDict):
    run_id: str
    run_prefix: str
    """runs/<run-id>/"""
    run_uri: str
    """s3://<bucket>/runs/<run-id>/"""
    names: ResourceNames
    fm: FmSettings
    blazingtext: BlazingTextSettings


# ---------------------------------------------------------------------------------------------- manifest


class GlobalMeanBaseline(TypedDict):
    value: float
    rmse: float
    """On the test rows."""
    validation_rmse: float | None
    """On the validation rows; None when there is none."""


class BiasBaseline(TypedDict):
    """mu + b_user + b_item, clipped to the rating range."""

    rmse: float
    validation_rmse: float | None
    reg_user: float
    reg_item: float
    sweeps: int
    clipped_to: list[int]


class UserBiasBaseline(TypedDict):
    """mu + b_user of the bias model's own fit without its item term, clipped: what the bias model says of a
    product it never saw (the cold start's baseline)."""

    rmse: float
    validation_rmse: float | None


class Baselines(TypedDict):
    """The baselines' RMSE, fitted once on the train rows and scored on the test and validation rows."""

    global_mean: GlobalMeanBaseline
    bias: BiasBaseline
    user_bias: UserBiasBaseline
    fitted_on: str
    """"train": the rows the candidate FM is trained on, so that both are compared on equal terms."""


BASELINE_COLUMNS = ("global_mean", "bias", "user_bias")
"""The columns of the baseline prediction files (layout.BASELINES), in order: Baselines' three models."""


class PredictionFile(TypedDict):
    path: str
    """Run-relative, e.g. prep/baselines/test.npy (layout.BASELINES_TEST)."""
    shard: str
    """Run-relative: the shard whose rows it predicts, in the same order (layout.TEST_SHARD)."""
    rows: int


class BaselinePredictions(TypedDict):
    """What every baseline predicts for every test and validation row, so that a model is compared with
    them on the same rows (paired)."""

    format: str
    """numpy .npy, float32, shape (rows, len(columns)): row i predicts the shard's row i."""
    columns: list[str]
    """BASELINE_COLUMNS."""
    test: PredictionFile
    validation: PredictionFile


class SplitRule(TypedDict):
    """How the kept rows are split, in words and parameters (jobs/prep/split.py)."""

    test: str
    validation: str
    train: str
    hash: str
    """The tie-break among one date's reviews: what is hashed, how, and which hash wins."""
    seed: int
    """The hash's key."""
    validation_min_products: int
    """A customer gets a validation row when it has at least this many distinct products outside its test
    pair."""


class ManifestCounts(TypedDict):
    rows_read: int
    bad_rows: dict[str, int]
    rows_usable: int
    rows_kept: int
    train_rows: int
    validation_rows: int
    test_rows: int
    corpus_lines: int
    empty_files: int


class Manifest(TypedDict):
    schema_version: int
    inputs: list[dict[str, Any]]
    empty_inputs: list[str]
    """Input files skipped for holding no text at all (zero-byte objects), by name under the input."""
    warnings: list[str]
    """One line each: what to know before trusting the run (a training set too small to mean anything, no
    validation rows); empty when there is nothing to say. The job logs them too."""
    counts: ManifestCounts
    num_customers: int
    num_products: int
    feature_dim: int
    time_transform: dict[str, Any]
    held_out_titles: dict[str, Any]
    """The title tokens the corpus leaves out (contract.index.held_out_title): titles, products, share and
    rule."""
    baselines: Baselines
    baseline_predictions: BaselinePredictions
    thresholds: dict[str, Any]
    shards: dict[str, Any]
    split: SplitRule
    seed: int
    rating_range: list[int]
    timings_s: dict[str, float]


MANIFEST_SCHEMA_VERSION = 2
"""2: the validation split, per-row baseline predictions, the split as a SplitRule."""


# ---------------------------------------------------------------------------------------------- gate


class Comparison(TypedDict):
    """The candidate against one other model on the same test rows (lambdas/pipeline/paired.py)."""

    against: str
    rows: int
    candidate_rmse: float
    other_rmse: float
    relative: float
    """RMSE(candidate) / RMSE(other) - 1: negative when the candidate is better."""
    interval: list[float]
    """[low, high]: the paired bootstrap interval of `relative` (confidence in `bootstrap`)."""
    passed: bool
    reason: str


class Bootstrap(TypedDict):
    samples: int
    seed: int
    confidence: float


class GateDecision(TypedDict):
    deploy: bool
    reasons: list[str]
    fm_test_rmse: float | None
    """None when training reported no finite metric (NaN is not JSON)."""
    baseline_global_mean_rmse: float
    baseline_bias_rmse: float
    deployed_test_rmse: float | None
    """The deployed model's RMSE on the test rows both runs know (None: nothing deployed, or no such row)."""
    test_rows: NotRequired[int]
    versus: NotRequired[list[Comparison]]
    """The paired comparisons the decision rests on: each baseline, then the deployed run if any."""
    bootstrap: NotRequired[Bootstrap]
    ranking: NotRequired[dict[str, Any]]
    """The top-N ranking on the test rows (Recall@10, NDCG@10 of FM's top-N against most-popular and
    random, with paired bootstrap intervals: fm.ranking), as the "Export FM factors" step measured it."""


# ---------------------------------------------------------------------------------------------- run record


class RunMetrics(TypedDict):
    fm_test_rmse: float | None
    baseline_global_mean_rmse: float
    baseline_bias_rmse: float


class RunRecord(TypedDict):
    schema_version: int
    run_id: str
    deployed_at: str
    endpoints: dict[str, str]
    endpoint_configs: NotRequired[dict[str, str]]
    """Absent in a record that no endpoint configuration backs (the local twin's cold-start experiment)."""
    run_uri: str
    index_uri: str
    title_table_uri: str
    manifest_uri: str
    metrics: RunMetrics
    recommendations_uri: NotRequired[str]
    """The run's batch top-N (layout.RECOMMENDATIONS), when the run wrote it."""


RUN_RECORD_SCHEMA_VERSION = 1


class RecordFormatError(ValueError):
    """The run record is not as RunRecord says; the message names the record and the field."""


def run_record(
    *,
    run_id: str,
    deployed_at: str,
    run_uri: str,
    metrics: RunMetrics,
    endpoint_configs: dict[str, str] | None,
    endpoints: dict[str, str] | None = None,
    recommendations: bool = False,
    join: Callable[[str, str], str] = layout.under,
) -> RunRecord:
    """The record of a deployed run. `join(run_uri, path)` makes the URI of a path in the run: plain string
    joining by default; the state machine passes one that builds States.Format at run time."""
    record: RunRecord = {
        "schema_version": RUN_RECORD_SCHEMA_VERSION,
        "run_id": run_id,
        "deployed_at": deployed_at,
        "endpoints": dict(endpoints if endpoints is not None else ENDPOINT_NAMES),
        "run_uri": run_uri,
        "index_uri": join(run_uri, layout.INDEX),
        "title_table_uri": join(run_uri, layout.SERVING),
        "manifest_uri": join(run_uri, layout.MANIFEST),
        "metrics": metrics,
    }
    if endpoint_configs is not None:
        record["endpoint_configs"] = endpoint_configs
    if recommendations:
        record["recommendations_uri"] = join(run_uri, layout.RECOMMENDATIONS)
    return record


def _string(record: dict[str, Any], name: str, uri: str) -> str:
    value = record.get(name)
    if not isinstance(value, str) or not value:
        raise RecordFormatError(f"run record at {uri}: {name} is {value!r}, not a non-empty string")
    return value


def _model_names(record: dict[str, Any], name: str, uri: str) -> dict[str, str]:
    value = record.get(name)
    if not isinstance(value, dict) or not all(
        isinstance(value.get(model), str) and value[model] for model in MODELS
    ):
        raise RecordFormatError(
            f"run record at {uri}: {name} is {value!r}, not {{fm: name, blazingtext: name}}"
        )
    return {model: value[model] for model in MODELS}


def parse_run_record(raw: bytes, uri: str) -> RunRecord:
    """The record's JSON -> RunRecord, checked field by field; RecordFormatError names the bad field."""
    try:
        document: Any = json.loads(raw)
    except ValueError as exc:
        raise RecordFormatError(f"run record at {uri}: not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise RecordFormatError(f"run record at {uri}: not a JSON object")
    if document.get("schema_version") != RUN_RECORD_SCHEMA_VERSION:
        raise RecordFormatError(
            f"run record at {uri}: schema_version {document.get('schema_version')!r}, "
            f"expected {RUN_RECORD_SCHEMA_VERSION}"
        )
    metrics = document.get("metrics")
    if not isinstance(metrics, dict):
        raise RecordFormatError(f"run record at {uri}: metrics is {metrics!r}, not an object")
    record: RunRecord = {
        "schema_version": RUN_RECORD_SCHEMA_VERSION,
        "run_id": _string(document, "run_id", uri),
        "deployed_at": str(document.get("deployed_at", "")),
        "endpoints": _model_names(document, "endpoints", uri),
        "run_uri": _string(document, "run_uri", uri),
        "index_uri": _string(document, "index_uri", uri),
        "title_table_uri": _string(document, "title_table_uri", uri),
        "manifest_uri": _string(document, "manifest_uri", uri),
        "metrics": typing.cast(RunMetrics, metrics),
    }
    if "endpoint_configs" in document:
        record["endpoint_configs"] = _model_names(document, "endpoint_configs", uri)
    if "recommendations_uri" in document:
        record["recommendations_uri"] = _string(document, "recommendations_uri", uri)
    return record


# ---------------------------------------------------------------------------------------------- paths


def json_path(document: type, *fields: str, root: str) -> str:
    """root.field.field..., each field checked against the document's TypedDict (and the TypedDicts it
    nests); a dict[str, X] accepts any key. KeyError names the field that the type does not have."""
    current: Any = document
    for field in fields:
        if isinstance(current, type) and typing.is_typeddict(current):
            hints = typing.get_type_hints(current)
            if field not in hints:
                raise KeyError(f"{document.__name__} has no field {'.'.join(fields)!r} ({field!r})")
            current = hints[field]
            if typing.get_origin(current) is NotRequired:
                (current,) = typing.get_args(current)
        elif typing.get_origin(current) is dict:
            current = typing.get_args(current)[1]
        else:
            raise KeyError(f"{document.__name__}: {'.'.join(fields)!r} goes into a {current!r}")
    return ".".join((root, *fields))
