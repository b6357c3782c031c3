"""The one typed configuration of loftrec.

Defaults live in cdk.json's context; `cdk ... -c key=value` overrides any of them, and a dotted key
(`-c fm_hyperparameters.epochs=5`) overrides one entry of a hyperparameter table. `load_config` turns the
context into a frozen `Config` or raises `ConfigError` with one line naming the key, the value and what is
allowed. The local pipeline reads the same defaults, so a setting means the same thing in both places.

The field parsers are stacks/config_fields.py's, fm_tuning's table and checks stacks/fm_tuning.py's. None of
the three imports aws_cdk: the local pipeline and the tests use them without the CDK.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from contract.hyperparameters import (
    HyperparameterError,
    check_blazingtext,
    check_blazingtext_instance_count,
    check_fm,
)
from contract.hyperparameters import Value as HyperparameterValue
from stacks.config_fields import ConfigError, boolean, fail, integer, number, scalar
from stacks.fm_tuning import FmTuning, fm_tuning

__all__ = [
    "STACK_NAME",
    "ApiGatewayCloudWatchRole",
    "Config",
    "ConfigError",
    "RemovalPolicy",
    "cdk_json_context",
    "default_context",
    "load_config",
    "supported_regions",
]

T = TypeVar("T")

CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"
ALGORITHM_IMAGES = Path(__file__).resolve().parent / "algorithm_images.json"
"""The built-in algorithms' registries per region (tools/generate_algorithm_images.py)."""
STACK_NAME = "Loftrec"

# The shims send at most this many rows in one FM request (lambdas/serving/config.py says why).
SERVING_MAX_FM_ROWS = 20_000

# Managed spot training: built-in algorithms that do not checkpoint may wait at most this long.
SPOT_MAX_WAIT_SECONDS = 3600


RemovalPolicy = Literal["retain", "destroy"]
# Who owns the account-wide API Gateway setting naming the CloudWatch Logs role (AWS::ApiGateway::Account):
# "create" = this stack creates the role and the setting; "existing" = the account already has one.
ApiGatewayCloudWatchRole = Literal["create", "existing"]


@dataclasses.dataclass(frozen=True)
class Config:
    # Where the raw reviews are: any S3 prefix of TSV files in the Amazon Customer Reviews schema.
    # Optional at synth, required to deploy (the notebook's public bucket is gone).
    raw_data_uri: str | None
    account: str | None
    region: str | None

    retrain_schedule: str
    retrain_enabled: bool

    prep_instance_type: str
    prep_volume_size_gb: int
    min_customer_reviews: int
    min_product_reviews: int
    max_bad_row_fraction: float

    fm_instance_type: str
    fm_instance_count: int
    fm_hyperparameters: Mapping[str, str | int | float]
    blazingtext_instance_type: str
    blazingtext_instance_count: int
    blazingtext_volume_size_gb: int
    blazingtext_hyperparameters: Mapping[str, str | int | float | bool]
    training_max_runtime_seconds: int
    fm_tuning: FmTuning
    use_spot_training: bool

    endpoint_instance_type: str
    autoscaling_min_instances: int
    autoscaling_max_instances: int
    autoscaling_target_invocations: int

    gate_min_improvement: float
    gate_max_regression: float

    serving_max_batch_size: int
    serving_neighbours: int
    serving_max_similar: int
    # Per shim; None leaves the functions on the account's unreserved pool.
    serving_reserved_concurrency: int | None
    api_rate_limit: int
    api_burst_limit: int
    api_gateway_cloudwatch_role: ApiGatewayCloudWatchRole

    notification_email: str | None
    data_removal_policy: RemovalPolicy

    @property
    def raw_data_bucket(self) -> str | None:
        return None if self.raw_data_uri is None else self.raw_data_uri[len("s3://") :].split("/", 1)[0]


# ---------------------------------------------------------------------------------------------------------
# Field parsers. Each takes the key (for the message) and the raw value (a JSON value from cdk.json or a
# string from -c) and returns the typed value or raises ConfigError.


def _optional_int(key: str, value: object, *, minimum: int) -> int | None:
    return None if _optional_str(value) is None else integer(key, value, minimum=minimum)


def _optional_str(value: object) -> str | None:
    if value is None or (isinstance(value, str) and value.strip() in ("", "null", "none")):
        return None
    return str(value)


_S3_URI = re.compile(r"s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(?P<prefix>[^\s]*))?")


def _s3_uri(key: str, value: object) -> str | None:
    text = _optional_str(value)
    if text is None:
        return None
    match = _S3_URI.fullmatch(text)
    if match is None or ".." in match["bucket"]:
        raise fail(key, value, "an S3 URI such as s3://my-bucket/reviews/ (bucket name in lower case)")
    prefix = match["prefix"] or ""
    return f"s3://{match['bucket']}/{prefix.rstrip('/') + '/' if prefix else ''}"


_RATE = re.compile(r"rate\((?P<value>\d+) (?P<unit>minutes?|hours?|days?)\)")
_CRON_FIELD = re.compile(r"[0-9A-Za-z*?,/\-LW#]+")


def _schedule(key: str, value: object) -> str:
    allowed = (
        "an EventBridge expression: rate(N unit) with unit minute(s), hour(s) or day(s), "
        "or cron(minutes hours day-of-month month day-of-week year) with ? in one of the day fields"
    )
    text = str(value).strip()
    rate = _RATE.fullmatch(text)
    if rate is not None:
        amount = int(rate["value"])
        singular = not rate["unit"].endswith("s")
        if amount < 1 or singular != (amount == 1):
            raise fail(key, value, allowed)
        return text
    if text.startswith("cron(") and text.endswith(")"):
        fields = text[5:-1].split()
        if len(fields) == 6 and all(_CRON_FIELD.fullmatch(f) for f in fields):
            day_of_month, day_of_week = fields[2], fields[4]
            if (day_of_month == "?") != (day_of_week == "?"):
                return text
    raise fail(key, value, allowed)


@functools.cache
def _sagemaker_instance_types(shape: str) -> frozenset[str]:
    import botocore.session  # noqa: PLC0415 -- only needed when validating, keeps import of this module light

    model = botocore.session.get_session().get_service_model("sagemaker")
    return frozenset(model.shape_for(shape).enum)


def _instance_type(key: str, value: object, *, shape: str) -> str:
    text = str(value)
    if not re.fullmatch(r"ml\.[a-z0-9-]+\.[a-z0-9]+", text):
        raise fail(key, value, "a SageMaker instance type of the ml. family, such as ml.c5.2xlarge")
    if text not in _sagemaker_instance_types(shape):
        raise fail(key, value, f"an instance type that SageMaker accepts as {shape} (see botocore's model)")
    return text


def _email(key: str, value: object) -> str | None:
    text = _optional_str(value)
    if text is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}", text):
        raise fail(key, value, "an e-mail address, or null for no subscription")
    return text


def _removal_policy(key: str, value: object) -> RemovalPolicy:
    if value == "retain":
        return "retain"
    if value == "destroy":
        return "destroy"
    raise fail(key, value, "retain or destroy")


def _api_gateway_cloudwatch_role(key: str, value: object) -> ApiGatewayCloudWatchRole:
    if value == "create":
        return "create"
    if value == "existing":
        return "existing"
    raise fail(
        key,
        value,
        "create (the stack owns the account's API Gateway CloudWatch Logs role) or existing (the account "
        "already has one)",
    )


def _account(key: str, value: object) -> str | None:
    text = _optional_str(value)
    if text is not None and not re.fullmatch(r"\d{12}", text):
        raise fail(key, value, "a 12-digit AWS account id")
    return text


@functools.cache
def supported_regions() -> tuple[str, ...]:
    """The regions with both built-in algorithms' images: the only ones a stack can train in."""
    registries: dict[str, Any] = json.loads(ALGORITHM_IMAGES.read_text())["registries"]
    return tuple(sorted(registries))


def _region(key: str, value: object) -> str | None:
    text = _optional_str(value)
    if text is not None and not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", text):
        raise fail(key, value, "an AWS region such as eu-west-1")
    if text is not None and text not in supported_regions():
        # The template maps the region to the algorithms' registries: CloudFormation would refuse the
        # missing key at deploy with a template error that names neither.
        raise fail(
            key,
            value,
            "a region with both built-in algorithm images (stacks/algorithm_images.json): "
            + ", ".join(supported_regions()),
        )
    return text


def _hyperparameters(
    key: str, value: object, *, check: Callable[..., dict[str, HyperparameterValue]]
) -> dict[str, HyperparameterValue]:
    """A hyperparameter table: a JSON object (from cdk.json, or a JSON string from -c), its values read the
    way JSON writes them, checked by the contract's rules (the same that "Start run" applies)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise fail(key, value, "a JSON object of hyperparameters") from None
    if not isinstance(value, dict):
        raise fail(key, value, "a JSON object of hyperparameters")
    try:
        return check({name: scalar(raw) for name, raw in value.items()}, table=key)
    except HyperparameterError as error:
        raise ConfigError(str(error)) from None


def _blazingtext_instance_count(value: object, mode: object) -> int:
    """The contract's rule for the mode the table sets (the same that "Start run" applies)."""
    try:
        return check_blazingtext_instance_count(value, mode if mode is not None else "skipgram")
    except HyperparameterError as error:
        raise ConfigError(str(error)) from None


def _merge_dotted(context: Mapping[str, Any]) -> dict[str, Any]:
    """Apply `table.entry=value` keys from the command line onto their tables."""
    merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in context.items() if "." not in k}
    for dotted, value in context.items():
        if "." not in dotted or dotted.startswith("@"):
            continue
        table, entry = dotted.split(".", 1)
        if table not in ("fm_hyperparameters", "blazingtext_hyperparameters"):
            raise fail(
                dotted, value, "dotted keys only for fm_hyperparameters and blazingtext_hyperparameters"
            )
        current = merged.get(table, {})
        if isinstance(current, str):
            current = json.loads(current)
        merged[table] = {**current, entry: value}
    return merged


def _reject_unknown(ctx: Mapping[str, Any]) -> None:
    """A misspelt -c key would otherwise be ignored silently. Keys of the CDK's own (feature flags,
    aws:cdk:*, cli-telemetry) have punctuation that ours never have."""
    known = {f.name for f in dataclasses.fields(Config)}
    for key in ctx:
        if re.fullmatch(r"[a-z0-9_]+", key) and key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"the CDK context key {key} is not a loftrec setting{hint}")


def load_config(context: Mapping[str, Any]) -> Config:
    """Build the configuration from CDK context (cdk.json defaults overridden by -c)."""
    ctx = _merge_dotted(context)
    _reject_unknown(ctx)

    def get(key: str, parse: Callable[[str, object], T]) -> T:
        if key not in ctx:
            raise ConfigError(f"the CDK context key {key} is undefined (its default belongs in cdk.json)")
        return parse(key, ctx[key])

    def count(key: str) -> int:
        return get(key, lambda k, v: integer(k, v, minimum=1))

    def instance(key: str, shape: str) -> str:
        return get(key, lambda k, v: _instance_type(k, v, shape=shape))

    fm = get("fm_hyperparameters", lambda k, v: _hyperparameters(k, v, check=check_fm))
    bt = get("blazingtext_hyperparameters", lambda k, v: _hyperparameters(k, v, check=check_blazingtext))

    use_spot = get("use_spot_training", boolean)
    max_runtime = count("training_max_runtime_seconds")
    if use_spot and max_runtime > SPOT_MAX_WAIT_SECONDS:
        raise fail(
            "training_max_runtime_seconds",
            max_runtime,
            f"at most {SPOT_MAX_WAIT_SECONDS} with use_spot_training=true (built-in algorithms without "
            "checkpoints may wait at most an hour for spot capacity)",
        )

    min_instances = count("autoscaling_min_instances")
    max_instances = count("autoscaling_max_instances")
    if max_instances < min_instances:
        raise fail(
            "autoscaling_max_instances",
            max_instances,
            f"at least autoscaling_min_instances ({min_instances})",
        )

    batch, neighbours = count("serving_max_batch_size"), count("serving_neighbours")
    if batch * (1 + neighbours) > SERVING_MAX_FM_ROWS:
        # Every item of a batch may be a cold start: its own row plus one per neighbour, all in one FM
        # request that must stay under the runtime's 6 MB payload limit.
        raise fail(
            "serving_max_batch_size",
            batch,
            f"at most {SERVING_MAX_FM_ROWS // (1 + neighbours)} with serving_neighbours={neighbours}",
        )

    return Config(
        # The CDK CLI drops context keys whose value is null: these are optional.
        raw_data_uri=_s3_uri("raw_data_uri", ctx.get("raw_data_uri")),
        account=_account("account", ctx.get("account")),
        region=_region("region", ctx.get("region")),
        retrain_schedule=get("retrain_schedule", _schedule),
        retrain_enabled=get("retrain_enabled", boolean),
        prep_instance_type=instance("prep_instance_type", "ProcessingInstanceType"),
        prep_volume_size_gb=get("prep_volume_size_gb", lambda k, v: integer(k, v, minimum=1, maximum=16384)),
        min_customer_reviews=count("min_customer_reviews"),
        min_product_reviews=count("min_product_reviews"),
        max_bad_row_fraction=get("max_bad_row_fraction", lambda k, v: number(k, v, minimum=0.0, maximum=1.0)),
        fm_instance_type=instance("fm_instance_type", "TrainingInstanceType"),
        fm_instance_count=count("fm_instance_count"),
        fm_hyperparameters=fm,
        blazingtext_instance_type=instance("blazingtext_instance_type", "TrainingInstanceType"),
        blazingtext_instance_count=get(
            "blazingtext_instance_count", lambda _k, v: _blazingtext_instance_count(v, bt.get("mode"))
        ),
        blazingtext_volume_size_gb=get(
            "blazingtext_volume_size_gb", lambda k, v: integer(k, v, minimum=1, maximum=16384)
        ),
        blazingtext_hyperparameters=bt,
        training_max_runtime_seconds=max_runtime,
        fm_tuning=get(
            "fm_tuning", lambda k, v: fm_tuning(k, v, fm=fm, instance_count=count("fm_instance_count"))
        ),
        use_spot_training=use_spot,
        endpoint_instance_type=instance("endpoint_instance_type", "ProductionVariantInstanceType"),
        autoscaling_min_instances=min_instances,
        autoscaling_max_instances=max_instances,
        autoscaling_target_invocations=count("autoscaling_target_invocations"),
        gate_min_improvement=get("gate_min_improvement", lambda k, v: number(k, v, minimum=0.0, maximum=1.0)),
        gate_max_regression=get("gate_max_regression", lambda k, v: number(k, v, minimum=0.0, maximum=1.0)),
        serving_max_batch_size=get(
            "serving_max_batch_size", lambda k, v: integer(k, v, minimum=1, maximum=1000)
        ),
        serving_neighbours=get("serving_neighbours", lambda k, v: integer(k, v, minimum=1, maximum=100)),
        serving_max_similar=get("serving_max_similar", lambda k, v: integer(k, v, minimum=1, maximum=1000)),
        serving_reserved_concurrency=_optional_int(
            "serving_reserved_concurrency", ctx.get("serving_reserved_concurrency"), minimum=1
        ),
        api_rate_limit=count("api_rate_limit"),
        api_burst_limit=count("api_burst_limit"),
        api_gateway_cloudwatch_role=get("api_gateway_cloudwatch_role", _api_gateway_cloudwatch_role),
        notification_email=_email("notification_email", ctx.get("notification_email")),
        data_removal_policy=get("data_removal_policy", _removal_policy),
    )


def cdk_json_context() -> dict[str, Any]:
    """cdk.json's whole context: loftrec's defaults and the CDK feature flags, as the CLI would pass them."""
    context: dict[str, Any] = json.loads(CDK_JSON.read_text())["context"]
    return {k: v for k, v in context.items() if v is not None}


def default_context() -> dict[str, Any]:
    """loftrec's defaults from cdk.json, for the local pipeline and tests."""
    return {k: v for k, v in cdk_json_context().items() if not k.startswith("@")}
