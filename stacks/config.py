"""The one typed configuration of loftrec.

Defaults live in cdk.json's context; `cdk ... -c key=value` overrides any of them, and a dotted key
(`-c fm_hyperparameters.epochs=5`) overrides one entry of a hyperparameter table. `load_config` turns the
context into a frozen `Config` or raises `ConfigError` with one line naming the key, the value and what is
allowed. The local pipeline reads the same defaults, so a setting means the same thing in both places.

This module imports no aws_cdk: the local pipeline and the tests use it without the CDK.
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

T = TypeVar("T")

CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"
ALGORITHM_IMAGES = Path(__file__).resolve().parent / "algorithm_images.json"
"""The built-in algorithms' registries per region (tools/generate_algorithm_images.py)."""
STACK_NAME = "Loftrec"

# The shims send at most this many rows in one FM request (lambdas/serving/config.py says why).
SERVING_MAX_FM_ROWS = 20_000

# Managed spot training: built-in algorithms that do not checkpoint may wait at most this long.
SPOT_MAX_WAIT_SECONDS = 3600


# FM's automatic model tuning (fm_tuning). What SageMaker allows for each tunable hyperparameter of FM, from
# "Tunable Factorization Machines Hyperparameters" (https://docs.aws.amazon.com/sagemaker/latest/dg/
# fm-tuning.html): the range type, the recommended range and the initialization method a parameter depends
# on ("if bias_init_method==uniform, then bias_init_scale, linear_init_scale, and factors_init_scale are
# tunable"; sigma with normal, value with constant). The page's table names the epochs range "epoch"; FM's
# hyperparameter is epochs (fact-machines-hyperparameters.html).
RangeType = Literal["continuous", "integer"]
Scaling = Literal["Auto", "Linear", "Logarithmic"]
_INIT_METHODS = {"scale": "uniform", "sigma": "normal", "value": "constant"}
FM_TUNABLE: dict[str, tuple[RangeType, float, float]] = {
    **{
        f"{term}_{kind}": ("continuous", 1e-8, 512.0)
        for term in ("bias", "linear", "factors")
        for kind in ("lr", "wd", "init_scale", "init_sigma", "init_value")
    },
    "epochs": ("integer", 1, 1000),
    "mini_batch_size": ("integer", 100, 10000),
}
FM_TUNING_OBJECTIVE = "test:rmse"
"""FM's regression metric, to minimize (fm-tuning.html), on the "test" channel: the validation shard."""
TRAINING_INSTANCE_QUOTA = 4
"""The default quota a tuning job's parallel FM jobs must fit in: max_parallel_jobs x fm_instance_count
training instances at once (the issue's "default quota of 4 training instances"; the applied value of the
quota `<fm_instance_type> for training job usage` is what `make preflight` checks)."""

RemovalPolicy = Literal["retain", "destroy"]
# Who owns the account-wide API Gateway setting naming the CloudWatch Logs role (AWS::ApiGateway::Account):
# "create" = this stack creates the role and the setting; "existing" = the account already has one.
ApiGatewayCloudWatchRole = Literal["create", "existing"]


class ConfigError(ValueError):
    """A configuration value is missing or not allowed; the message is one line."""


@dataclasses.dataclass(frozen=True)
class TuningRange:
    """One hyperparameter's search range, as fm_tuning.ranges writes it."""

    name: str
    type: RangeType
    min: float
    max: float
    scaling: Scaling

    def to_sagemaker(self) -> dict[str, str]:
        """A ContinuousParameterRange or IntegerParameterRange (values are strings in the API)."""

        def text(value: float) -> str:
            return str(int(value)) if self.type == "integer" else repr(float(value))

        return {
            "Name": self.name,
            "MinValue": text(self.min),
            "MaxValue": text(self.max),
            "ScalingType": self.scaling,
        }


@dataclasses.dataclass(frozen=True)
class FmTuning:
    """fm_tuning: SageMaker automatic model tuning of FM on the validation shard, off by default."""

    enabled: bool
    max_jobs: int
    max_parallel_jobs: int
    ranges: tuple[TuningRange, ...]

    @property
    def tuned(self) -> frozenset[str]:
        return frozenset(r.name for r in self.ranges)

    def parameter_ranges(self) -> dict[str, list[dict[str, str]]]:
        """HyperParameterTuningJobConfig.ParameterRanges."""
        ranges: dict[str, list[dict[str, str]]] = {}
        for kind, member in (
            ("continuous", "ContinuousParameterRanges"),
            ("integer", "IntegerParameterRanges"),
        ):
            chosen = [r.to_sagemaker() for r in self.ranges if r.type == kind]
            if chosen:
                ranges[member] = chosen
        return ranges


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


def _fail(key: str, value: object, allowed: str) -> ConfigError:
    return ConfigError(f"{key}={value!r} is not allowed: {allowed}")


def _int(key: str, value: object, *, minimum: int, maximum: int | None = None) -> int:
    allowed = f"an integer >= {minimum}" + ("" if maximum is None else f" and <= {maximum}")
    if isinstance(value, bool):
        raise _fail(key, value, allowed)
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
        value = int(value)
    if not isinstance(value, int) or value < minimum or (maximum is not None and value > maximum):
        raise _fail(key, value, allowed)
    return value


def _float(key: str, value: object, *, minimum: float, maximum: float) -> float:
    allowed = f"a number from {minimum} to {maximum}"
    if isinstance(value, bool):
        raise _fail(key, value, allowed)
    number: float
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise _fail(key, value, allowed) from None
    else:
        raise _fail(key, value, allowed)
    if not minimum <= number <= maximum:
        raise _fail(key, value, allowed)
    return number


def _bool(key: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _fail(key, value, "true or false")


def _optional_int(key: str, value: object, *, minimum: int) -> int | None:
    return None if _optional_str(value) is None else _int(key, value, minimum=minimum)


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
        raise _fail(key, value, "an S3 URI such as s3://my-bucket/reviews/ (bucket name in lower case)")
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
            raise _fail(key, value, allowed)
        return text
    if text.startswith("cron(") and text.endswith(")"):
        fields = text[5:-1].split()
        if len(fields) == 6 and all(_CRON_FIELD.fullmatch(f) for f in fields):
            day_of_month, day_of_week = fields[2], fields[4]
            if (day_of_month == "?") != (day_of_week == "?"):
                return text
    raise _fail(key, value, allowed)


@functools.cache
def _sagemaker_instance_types(shape: str) -> frozenset[str]:
    import botocore.session  # noqa: PLC0415 -- only needed when validating, keeps import of this module light

    model = botocore.session.get_session().get_service_model("sagemaker")
    return frozenset(model.shape_for(shape).enum)


def _instance_type(key: str, value: object, *, shape: str) -> str:
    text = str(value)
    if not re.fullmatch(r"ml\.[a-z0-9-]+\.[a-z0-9]+", text):
        raise _fail(key, value, "a SageMaker instance type of the ml. family, such as ml.c5.2xlarge")
    if text not in _sagemaker_instance_types(shape):
        raise _fail(key, value, f"an instance type that SageMaker accepts as {shape} (see botocore's model)")
    return text


def _email(key: str, value: object) -> str | None:
    text = _optional_str(value)
    if text is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}", text):
        raise _fail(key, value, "an e-mail address, or null for no subscription")
    return text


def _removal_policy(key: str, value: object) -> RemovalPolicy:
    if value == "retain":
        return "retain"
    if value == "destroy":
        return "destroy"
    raise _fail(key, value, "retain or destroy")


def _api_gateway_cloudwatch_role(key: str, value: object) -> ApiGatewayCloudWatchRole:
    if value == "create":
        return "create"
    if value == "existing":
        return "existing"
    raise _fail(
        key,
        value,
        "create (the stack owns the account's API Gateway CloudWatch Logs role) or existing (the account "
        "already has one)",
    )


def _account(key: str, value: object) -> str | None:
    text = _optional_str(value)
    if text is not None and not re.fullmatch(r"\d{12}", text):
        raise _fail(key, value, "a 12-digit AWS account id")
    return text


@functools.cache
def supported_regions() -> tuple[str, ...]:
    """The regions with both built-in algorithms' images: the only ones a stack can train in."""
    registries: dict[str, Any] = json.loads(ALGORITHM_IMAGES.read_text())["registries"]
    return tuple(sorted(registries))


def _region(key: str, value: object) -> str | None:
    text = _optional_str(value)
    if text is not None and not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", text):
        raise _fail(key, value, "an AWS region such as eu-west-1")
    if text is not None and text not in supported_regions():
        # The template maps the region to the algorithms' registries: CloudFormation would refuse the
        # missing key at deploy with a template error that names neither.
        raise _fail(
            key,
            value,
            "a region with both built-in algorithm images (stacks/algorithm_images.json): "
            + ", ".join(supported_regions()),
        )
    return text


def _scalar(value: object) -> object:
    """A -c value arrives as a string: read numbers and booleans the way JSON writes them."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _hyperparameters(
    key: str, value: object, *, check: Callable[..., dict[str, HyperparameterValue]]
) -> dict[str, HyperparameterValue]:
    """A hyperparameter table: a JSON object (from cdk.json, or a JSON string from -c), its values read the
    way JSON writes them, checked by the contract's rules (the same that "Start run" applies)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise _fail(key, value, "a JSON object of hyperparameters") from None
    if not isinstance(value, dict):
        raise _fail(key, value, "a JSON object of hyperparameters")
    try:
        return check({name: _scalar(raw) for name, raw in value.items()}, table=key)
    except HyperparameterError as error:
        raise ConfigError(str(error)) from None


def _tuning_range(key: str, name: str, value: object, fm: Mapping[str, object]) -> TuningRange:
    where = f"{key}.{name}"
    if name not in FM_TUNABLE:
        raise _fail(where, value, "a tunable FM hyperparameter: " + ", ".join(sorted(FM_TUNABLE)))
    kind, lowest, highest = FM_TUNABLE[name]
    if not isinstance(value, dict) or set(value) - {"type", "min", "max", "scaling"}:
        raise _fail(where, value, '{"type", "min", "max", "scaling"?}')
    if value.get("type") != kind:
        raise _fail(f"{where}.type", value.get("type"), f"{kind} (fm-tuning.html)")
    scaling = value.get("scaling", "Auto")
    if scaling not in ("Auto", "Linear", "Logarithmic"):
        raise _fail(f"{where}.scaling", scaling, "Auto, Linear or Logarithmic")
    bounds = []
    for end in ("min", "max"):
        raw = _scalar(value.get(end))
        allowed = f"{'an integer' if kind == 'integer' else 'a number'} from {lowest:g} to {highest:g}"
        number_ok = isinstance(raw, int | float) and not isinstance(raw, bool)
        if not number_ok or (kind == "integer" and not float(raw).is_integer()):  # type: ignore[arg-type]
            raise _fail(f"{where}.{end}", raw, allowed)
        if not lowest <= float(raw) <= highest:  # type: ignore[arg-type]
            raise _fail(f"{where}.{end}", raw, f"{allowed} (SageMaker's range for FM: fm-tuning.html)")
        bounds.append(float(raw))  # type: ignore[arg-type]
    if bounds[0] >= bounds[1]:
        raise _fail(f"{where}.max", bounds[1], f"greater than min ({bounds[0]:g})")
    method = name.rsplit("_", 1)[-1]
    if "_init_" in name:
        term = name.split("_init_", maxsplit=1)[0]
        needed = _INIT_METHODS[method]
        current = fm.get(f"{term}_init_method", "normal")
        if current != needed:
            raise _fail(
                where,
                value,
                f"only with fm_hyperparameters.{term}_init_method={needed} (it is {current}; fm-tuning.html)",
            )
    return TuningRange(name, kind, bounds[0], bounds[1], scaling)


def _fm_tuning(key: str, value: object, *, fm: Mapping[str, object], instance_count: int) -> FmTuning:
    """fm_tuning: ranges within what SageMaker allows FM, parallel jobs within the training quota."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise _fail(key, value, "a JSON object") from None
    if not isinstance(value, dict) or set(value) - {"enabled", "max_jobs", "max_parallel_jobs", "ranges"}:
        raise _fail(key, value, '{"enabled", "max_jobs", "max_parallel_jobs", "ranges"}')
    enabled = _bool(f"{key}.enabled", value.get("enabled"))
    max_jobs = _int(f"{key}.max_jobs", value.get("max_jobs"), minimum=1, maximum=100)
    parallel = _int(f"{key}.max_parallel_jobs", value.get("max_parallel_jobs"), minimum=1, maximum=max_jobs)
    if parallel * instance_count > TRAINING_INSTANCE_QUOTA:
        raise _fail(
            f"{key}.max_parallel_jobs",
            parallel,
            f"at most {TRAINING_INSTANCE_QUOTA // instance_count} with fm_instance_count={instance_count}: "
            f"{parallel} x {instance_count} training instances at once exceed the default quota of "
            f"{TRAINING_INSTANCE_QUOTA}",
        )
    ranges = value.get("ranges")
    if not isinstance(ranges, dict) or (enabled and not ranges):
        raise _fail(
            f"{key}.ranges", ranges, "an object of hyperparameter name -> range, not empty when enabled"
        )
    return FmTuning(
        enabled=enabled,
        max_jobs=max_jobs,
        max_parallel_jobs=parallel,
        ranges=tuple(_tuning_range(f"{key}.ranges", name, spec, fm) for name, spec in sorted(ranges.items())),
    )


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
            raise _fail(
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
        return get(key, lambda k, v: _int(k, v, minimum=1))

    def instance(key: str, shape: str) -> str:
        return get(key, lambda k, v: _instance_type(k, v, shape=shape))

    fm = get("fm_hyperparameters", lambda k, v: _hyperparameters(k, v, check=check_fm))
    bt = get("blazingtext_hyperparameters", lambda k, v: _hyperparameters(k, v, check=check_blazingtext))

    use_spot = get("use_spot_training", _bool)
    max_runtime = count("training_max_runtime_seconds")
    if use_spot and max_runtime > SPOT_MAX_WAIT_SECONDS:
        raise _fail(
            "training_max_runtime_seconds",
            max_runtime,
            f"at most {SPOT_MAX_WAIT_SECONDS} with use_spot_training=true (built-in algorithms without "
            "checkpoints may wait at most an hour for spot capacity)",
        )

    min_instances = count("autoscaling_min_instances")
    max_instances = count("autoscaling_max_instances")
    if max_instances < min_instances:
        raise _fail(
            "autoscaling_max_instances",
            max_instances,
            f"at least autoscaling_min_instances ({min_instances})",
        )

    batch, neighbours = count("serving_max_batch_size"), count("serving_neighbours")
    if batch * (1 + neighbours) > SERVING_MAX_FM_ROWS:
        # Every item of a batch may be a cold start: its own row plus one per neighbour, all in one FM
        # request that must stay under the runtime's 6 MB payload limit.
        raise _fail(
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
        retrain_enabled=get("retrain_enabled", _bool),
        prep_instance_type=instance("prep_instance_type", "ProcessingInstanceType"),
        prep_volume_size_gb=get("prep_volume_size_gb", lambda k, v: _int(k, v, minimum=1, maximum=16384)),
        min_customer_reviews=count("min_customer_reviews"),
        min_product_reviews=count("min_product_reviews"),
        max_bad_row_fraction=get("max_bad_row_fraction", lambda k, v: _float(k, v, minimum=0.0, maximum=1.0)),
        fm_instance_type=instance("fm_instance_type", "TrainingInstanceType"),
        fm_instance_count=count("fm_instance_count"),
        fm_hyperparameters=fm,
        blazingtext_instance_type=instance("blazingtext_instance_type", "TrainingInstanceType"),
        blazingtext_instance_count=get(
            "blazingtext_instance_count", lambda _k, v: _blazingtext_instance_count(v, bt.get("mode"))
        ),
        blazingtext_volume_size_gb=get(
            "blazingtext_volume_size_gb", lambda k, v: _int(k, v, minimum=1, maximum=16384)
        ),
        blazingtext_hyperparameters=bt,
        training_max_runtime_seconds=max_runtime,
        fm_tuning=get(
            "fm_tuning", lambda k, v: _fm_tuning(k, v, fm=fm, instance_count=count("fm_instance_count"))
        ),
        use_spot_training=use_spot,
        endpoint_instance_type=instance("endpoint_instance_type", "ProductionVariantInstanceType"),
        autoscaling_min_instances=min_instances,
        autoscaling_max_instances=max_instances,
        autoscaling_target_invocations=count("autoscaling_target_invocations"),
        gate_min_improvement=get("gate_min_improvement", lambda k, v: _float(k, v, minimum=0.0, maximum=1.0)),
        gate_max_regression=get("gate_max_regression", lambda k, v: _float(k, v, minimum=0.0, maximum=1.0)),
        serving_max_batch_size=get(
            "serving_max_batch_size", lambda k, v: _int(k, v, minimum=1, maximum=1000)
        ),
        serving_neighbours=get("serving_neighbours", lambda k, v: _int(k, v, minimum=1, maximum=100)),
        serving_max_similar=get("serving_max_similar", lambda k, v: _int(k, v, minimum=1, maximum=1000)),
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
