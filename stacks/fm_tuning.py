"""fm_tuning, typed: SageMaker automatic model tuning of FM on the validation shard, within what SageMaker
allows FM and the default training-instance quota."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Literal

from stacks.config_fields import boolean, fail, integer, scalar

__all__ = [
    "FM_TUNABLE",
    "FM_TUNING_OBJECTIVE",
    "TRAINING_INSTANCE_QUOTA",
    "FmTuning",
    "TuningRange",
    "fm_tuning",
]

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


def tuning_range(key: str, name: str, value: object, fm: Mapping[str, object]) -> TuningRange:
    where = f"{key}.{name}"
    if name not in FM_TUNABLE:
        raise fail(where, value, "a tunable FM hyperparameter: " + ", ".join(sorted(FM_TUNABLE)))
    kind, lowest, highest = FM_TUNABLE[name]
    if not isinstance(value, dict) or set(value) - {"type", "min", "max", "scaling"}:
        raise fail(where, value, '{"type", "min", "max", "scaling"?}')
    if value.get("type") != kind:
        raise fail(f"{where}.type", value.get("type"), f"{kind} (fm-tuning.html)")
    scaling = value.get("scaling", "Auto")
    if scaling not in ("Auto", "Linear", "Logarithmic"):
        raise fail(f"{where}.scaling", scaling, "Auto, Linear or Logarithmic")
    bounds = []
    for end in ("min", "max"):
        raw = scalar(value.get(end))
        allowed = f"{'an integer' if kind == 'integer' else 'a number'} from {lowest:g} to {highest:g}"
        number_ok = isinstance(raw, int | float) and not isinstance(raw, bool)
        if not number_ok or (kind == "integer" and not float(raw).is_integer()):  # type: ignore[arg-type]
            raise fail(f"{where}.{end}", raw, allowed)
        if not lowest <= float(raw) <= highest:  # type: ignore[arg-type]
            raise fail(f"{where}.{end}", raw, f"{allowed} (SageMaker's range for FM: fm-tuning.html)")
        bounds.append(float(raw))  # type: ignore[arg-type]
    if bounds[0] >= bounds[1]:
        raise fail(f"{where}.max", bounds[1], f"greater than min ({bounds[0]:g})")
    method = name.rsplit("_", 1)[-1]
    if "_init_" in name:
        term = name.split("_init_", maxsplit=1)[0]
        needed = _INIT_METHODS[method]
        current = fm.get(f"{term}_init_method", "normal")
        if current != needed:
            raise fail(
                where,
                value,
                f"only with fm_hyperparameters.{term}_init_method={needed} (it is {current}; fm-tuning.html)",
            )
    return TuningRange(name, kind, bounds[0], bounds[1], scaling)


def fm_tuning(key: str, value: object, *, fm: Mapping[str, object], instance_count: int) -> FmTuning:
    """fm_tuning: ranges within what SageMaker allows FM, parallel jobs within the training quota."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise fail(key, value, "a JSON object") from None
    if not isinstance(value, dict) or set(value) - {"enabled", "max_jobs", "max_parallel_jobs", "ranges"}:
        raise fail(key, value, '{"enabled", "max_jobs", "max_parallel_jobs", "ranges"}')
    enabled = boolean(f"{key}.enabled", value.get("enabled"))
    max_jobs = integer(f"{key}.max_jobs", value.get("max_jobs"), minimum=1, maximum=100)
    parallel = integer(
        f"{key}.max_parallel_jobs", value.get("max_parallel_jobs"), minimum=1, maximum=max_jobs
    )
    if parallel * instance_count > TRAINING_INSTANCE_QUOTA:
        raise fail(
            f"{key}.max_parallel_jobs",
            parallel,
            f"at most {TRAINING_INSTANCE_QUOTA // instance_count} with fm_instance_count={instance_count}: "
            f"{parallel} x {instance_count} training instances at once exceed the default quota of "
            f"{TRAINING_INSTANCE_QUOTA}",
        )
    ranges = value.get("ranges")
    if not isinstance(ranges, dict) or (enabled and not ranges):
        raise fail(
            f"{key}.ranges", ranges, "an object of hyperparameter name -> range, not empty when enabled"
        )
    return FmTuning(
        enabled=enabled,
        max_jobs=max_jobs,
        max_parallel_jobs=parallel,
        ranges=tuple(tuning_range(f"{key}.ranges", name, spec, fm) for name, spec in sorted(ranges.items())),
    )
