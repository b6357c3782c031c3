"""The first state of a run: validate the execution input, name the run and its SageMaker resources.

A manual start may override instance settings and hyperparameters (README, "Operating the pipeline"):

    {"run_id": "optional-name", "fm_instance_type": "ml.c5.4xlarge", "fm_instance_count": 2,
     "fm_hyperparameters": {"epochs": 5}, "blazingtext_instance_type": "ml.p3.2xlarge",
     "blazingtext_hyperparameters": {"vector_dim": 50}, "fm_tuning": {"enabled": true}}

fm_tuning turns the configured tuning on or off for this run (its ranges and job counts are the stack's);
its parallel jobs times the run's FM instance count must fit the training quota the configuration checks.

The hyperparameters are checked by the same rules as the configuration at synth (contract.hyperparameters),
merged over the configured tables. Anything else is refused with a message naming the field, before any job
starts.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from contract import layout
from contract.algorithms import resource_names
from contract.documents import BlazingTextSettings, FmSettings, FmTuningPlan, RunPlan, TrainingResources
from contract.hyperparameters import (
    BLAZINGTEXT_TABLE,
    FM_TABLE,
    HyperparameterError,
    Value,
    check_blazingtext,
    check_blazingtext_instance_count,
    check_fm,
    sagemaker_strings,
)
from contract.instances import has_local_storage
from lambdas.kit import settings as kit_settings
from lambdas.kit.errors import InvalidRunInputError
from lambdas.kit.invocation import lambda_handler
from lambdas.kit.settings import json_object, non_empty, variable

RUN_ID_MAX = 40  # "loftrec-" + run id + "-bt-config" stays within SageMaker's 63 characters
RUN_ID = re.compile(r"[a-z0-9](-?[a-z0-9])*")
INSTANCE_TYPE = re.compile(r"ml\.[a-z0-9-]+\.[a-z0-9]+")
ALLOWED = {
    "run_id",
    "trigger",
    "fm_instance_type",
    "fm_instance_count",
    "fm_hyperparameters",
    "blazingtext_instance_type",
    "blazingtext_hyperparameters",
    "fm_tuning",
}


@dataclass(frozen=True)
class StartRunSettings:
    """The start-run function's environment (the stack writes both from cdk.json and the data bucket)."""

    run_defaults: dict[str, Any] = variable("RUN_DEFAULTS", json_object("the run's default settings"))
    data_bucket: str = variable("DATA_BUCKET", non_empty("the data bucket's name"))
    volume_kms_key: str = variable("VOLUME_KMS_KEY", non_empty("the KMS key ARN of the training volumes"))


@functools.cache
def settings() -> StartRunSettings:
    """Read once per container; ConfigError names a missing or malformed variable."""
    return kit_settings.load(StartRunSettings)


def derive_run_id(execution_name: str, start_time: str) -> str:
    """A run id that sorts by start time, is unique per execution, and is safe in SageMaker names
    ([a-zA-Z0-9-], no underscores) whatever characters the execution name holds."""
    stamp = re.sub(r"[^0-9]", "", start_time)[:14]  # YYYYMMDDhhmmss
    stamp = f"{stamp[:8]}-{stamp[8:]}"
    readable = re.sub(r"[^a-z0-9]+", "-", execution_name.lower()).strip("-")[:16].strip("-")
    digest = hashlib.sha256(execution_name.encode()).hexdigest()[:6]
    return "-".join(part for part in (stamp, readable, digest) if part)


def _instance_type(field: str, value: object) -> str:
    if not isinstance(value, str) or not INSTANCE_TYPE.fullmatch(value):
        raise InvalidRunInputError(
            f"{field}={value!r}: expected a SageMaker instance type, e.g. ml.c5.2xlarge"
        )
    try:
        has_local_storage(value)
    except ValueError:
        raise InvalidRunInputError(
            f"{field}={value!r}: expected a SageMaker instance type, e.g. ml.c5.2xlarge"
        ) from None
    return value


def _resources(instance_type: str, count: int, volume_size_gb: int, volume_key: str) -> TrainingResources:
    """The job's ResourceConfig: its volume encrypted with the data key, unless the instance type has local
    storage, which SageMaker encrypts itself and refuses a key for ("You can't request a VolumeKmsKeyId when
    using an instance type with local storage":
    https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ResourceConfig.html)."""
    resources: TrainingResources = {
        "InstanceCount": count,
        "InstanceType": instance_type,
        "VolumeSizeInGB": volume_size_gb,
    }
    if not has_local_storage(instance_type):
        resources["VolumeKmsKeyId"] = volume_key
    return resources


def _count(field: str, value: object, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise InvalidRunInputError(f"{field}={value!r}: expected an integer from 1 to {maximum}")
    return value


def _table(field: str, value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRunInputError(f"{field}={value!r} is not allowed: a JSON object of hyperparameters")
    return value


def _hyperparameters(
    defaults: dict[str, Any], execution_input: dict[str, Any]
) -> tuple[dict[str, Value], dict[str, Value]]:
    """The run's FM and BlazingText tables, the configured ones with the input's entries over them, checked
    as a whole by the contract's rules: the same checks, with the same messages, as the configuration's at
    synth (stacks/config.py)."""
    fm = {**defaults[FM_TABLE], **_table(FM_TABLE, execution_input.get(FM_TABLE, {}))}
    bt = {
        **defaults[BLAZINGTEXT_TABLE],
        **_table(BLAZINGTEXT_TABLE, execution_input.get(BLAZINGTEXT_TABLE, {})),
    }
    try:
        fm_checked, bt_checked = check_fm(fm), check_blazingtext(bt)
        check_blazingtext_instance_count(defaults["blazingtext_instance_count"], bt_checked.get("mode"))
    except HyperparameterError as error:
        raise InvalidRunInputError(str(error)) from None
    return fm_checked, bt_checked


def _tuning(
    defaults: dict[str, Any], execution_input: dict[str, Any], hyperparameters: dict[str, str], fm_count: int
) -> FmTuningPlan:
    """Whether this run tunes FM (the configured default, or the input's fm_tuning.enabled), and the
    hyperparameters every tuning job's training job takes as they are (all but the tuned ones)."""
    configured = defaults["fm_tuning"]
    override = execution_input.get("fm_tuning", {})
    if not isinstance(override, dict) or set(override) - {"enabled"}:
        raise InvalidRunInputError(f'fm_tuning={override!r} is not allowed: {{"enabled": true or false}}')
    enabled = override.get("enabled", configured["enabled"])
    if not isinstance(enabled, bool):
        raise InvalidRunInputError(f"fm_tuning.enabled={enabled!r}: expected true or false")
    parallel, quota = configured["max_parallel_jobs"], configured["instance_quota"]
    if enabled and parallel * fm_count > quota:
        raise InvalidRunInputError(
            f"fm_instance_count={fm_count} with fm_tuning: {parallel} parallel jobs x {fm_count} instances "
            f"exceed the {quota} training instances the tuning is configured to fit"
        )
    tuned = set(configured["tuned"])
    static = {name: value for name, value in hyperparameters.items() if name not in tuned}
    return {"enabled": enabled, "static_hyperparameters": static}


def plan_run(
    execution_input: dict[str, Any],
    *,
    execution_name: str,
    start_time: str,
    defaults: dict[str, Any],
    bucket: str,
    volume_key: str,
) -> RunPlan:
    """The run's id, names, output location and effective training settings; `volume_key` is the KMS key
    of the training volumes."""
    if not isinstance(execution_input, dict):
        raise InvalidRunInputError("the execution input must be a JSON object")
    unknown = sorted(set(execution_input) - ALLOWED)
    if unknown:
        raise InvalidRunInputError(
            f"unknown input field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(ALLOWED))}"
        )
    run_id = execution_input.get("run_id") or derive_run_id(execution_name, start_time)
    if not isinstance(run_id, str) or len(run_id) > RUN_ID_MAX or not RUN_ID.fullmatch(run_id):
        raise InvalidRunInputError(
            f"run_id={run_id!r}: expected lower-case letters, digits and single hyphens, at most {RUN_ID_MAX}"
        )
    get = execution_input.get
    fm_table, bt_table = _hyperparameters(defaults, execution_input)
    fm_type = _instance_type("fm_instance_type", get("fm_instance_type", defaults["fm_instance_type"]))
    fm_count = _count("fm_instance_count", get("fm_instance_count", defaults["fm_instance_count"]), 100)
    # SageMaker takes every hyperparameter as a string: the SDK's strings ("True", not "true").
    fm_hyperparameters = {**sagemaker_strings(fm_table), "predictor_type": "regressor"}
    fm: FmSettings = {
        "instance_type": fm_type,
        "instance_count": fm_count,
        "hyperparameters": fm_hyperparameters,
        "resource_config": _resources(fm_type, fm_count, defaults["fm_volume_size_gb"], volume_key),
        "inter_container_encryption": fm_count > 1,
        "tuning": _tuning(defaults, execution_input, fm_hyperparameters, fm_count),
    }
    bt_type = _instance_type(
        "blazingtext_instance_type", get("blazingtext_instance_type", defaults["blazingtext_instance_type"])
    )
    blazingtext: BlazingTextSettings = {
        "instance_type": bt_type,
        "hyperparameters": sagemaker_strings(bt_table),
        "resource_config": _resources(
            bt_type,
            defaults["blazingtext_instance_count"],
            defaults["blazingtext_volume_size_gb"],
            volume_key,
        ),
    }
    return {
        "run_id": run_id,
        "run_prefix": layout.run_prefix(run_id),
        "run_uri": f"s3://{bucket}/{layout.run_prefix(run_id)}",
        "names": resource_names(run_id),
        "fm": fm,
        "blazingtext": blazingtext,
    }


@lambda_handler
def handler(event: dict[str, Any], _context: object) -> RunPlan:
    """Event: {"input": the execution input, "execution_name", "start_time"} (from the context object)."""
    environment = settings()
    return plan_run(
        event.get("input") or {},
        execution_name=event["execution_name"],
        start_time=event["start_time"],
        defaults=environment.run_defaults,
        bucket=environment.data_bucket,
        volume_key=environment.volume_kms_key,
    )
