"""The first state of a run: its id and SageMaker names from any execution name, and the input's checks."""

from __future__ import annotations

import json
import re
import string
from typing import Any

import pytest

from contract.documents import RunPlan
from lambdas.kit.errors import InvalidRunInputError
from lambdas.pipeline import start_run
from lambdas.pipeline.start_run import derive_run_id, plan_run
from stacks.config import ConfigError, cdk_json_context, load_config

# SageMaker's name rule for jobs, models, endpoint configurations.
SAGEMAKER_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")
START = "2024-05-01T12:34:56.789Z"
KEY = "arn:aws:kms:us-east-1:123456789012:key/data"
DEFAULTS: dict[str, Any] = {
    "fm_instance_type": "ml.c5.2xlarge",
    "fm_instance_count": 4,
    "fm_hyperparameters": {"num_factors": 256, "epochs": 3, "mini_batch_size": 1000},
    "blazingtext_instance_type": "ml.p3.2xlarge",
    "blazingtext_instance_count": 1,
    "fm_volume_size_gb": 30,
    "blazingtext_volume_size_gb": 5,
    "blazingtext_hyperparameters": {
        "mode": "skipgram",
        "vector_dim": 100,
        "subwords": True,
        "evaluation": False,
    },
    "fm_tuning": {
        "enabled": False,
        "tuned": ["epochs", "linear_lr"],
        "max_parallel_jobs": 1,
        "instance_quota": 4,
    },
}
HOSTILE_NAMES = [
    "weekly_retrain_2024_05_01",  # underscores (the scheduler's names have them)
    "週次の再学習-テスト",  # no ASCII letter at all
    "Ünïcödé-Ruñ ünd_Mehr",
    "x" * 80,  # the longest execution name Step Functions allows
    string.punctuation,
    "--a--",
    "0",
]


def plan(execution_input: dict[str, Any], name: str = "manual-run") -> RunPlan:
    return plan_run(
        execution_input,
        execution_name=name,
        start_time=START,
        defaults=DEFAULTS,
        bucket="data",
        volume_key=KEY,
    )


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_any_execution_name_gives_valid_sagemaker_names(name: str) -> None:
    run = plan({}, name)
    assert run["run_id"].startswith("20240501-123456-")
    assert len(run["run_id"]) <= start_run.RUN_ID_MAX
    assert run["run_uri"] == f"s3://data/runs/{run['run_id']}/"
    assert set(run["names"]) == {
        "prep",
        "fm",
        "blazingtext",
        "fm_model",
        "blazingtext_model",
        "fm_config",
        "blazingtext_config",
        "fm_test_predictions",
        "recommend",
        "fm_tuning",
    }
    assert len(run["names"]["fm_tuning"]) <= 32  # CreateHyperParameterTuningJob's limit
    for resource, value in run["names"].items():
        assert isinstance(value, str), (resource, value)
        assert len(value) <= 63, (resource, value)
        assert SAGEMAKER_NAME.fullmatch(value), (resource, value)


def test_run_ids_keep_the_readable_part_of_the_name() -> None:
    assert derive_run_id("weekly_retrain", START) == "20240501-123456-weekly-retrain-" + _digest(
        "weekly_retrain"
    )
    assert derive_run_id(string.punctuation, START) == "20240501-123456-" + _digest(string.punctuation)
    assert derive_run_id("x" * 80, START) == "20240501-123456-" + "x" * 16 + "-" + _digest("x" * 80)


def _digest(name: str) -> str:
    import hashlib  # noqa: PLC0415 (the expected digest, computed as the docstring says)

    return hashlib.sha256(name.encode()).hexdigest()[:6]


def test_names_differing_only_in_punctuation_give_different_runs() -> None:
    names = ["run.1", "run-1", "run_1", "run 1", "RUN-1", "run--1", "run-1!"]
    run_ids = {derive_run_id(name, START) for name in names}
    assert len(run_ids) == len(names)


def test_run_ids_sort_by_start_time() -> None:
    earlier = derive_run_id("zzz", "2024-05-01T09:00:00Z")
    later = derive_run_id("aaa", "2024-05-01T10:00:00Z")
    assert earlier < later


def test_an_explicit_run_id_is_used_as_is() -> None:
    run = plan({"run_id": "backfill-2024-05"})
    assert run["run_id"] == "backfill-2024-05"
    assert run["names"]["blazingtext_config"] == "loftrec-backfill-2024-05-bt-config"
    assert run["run_prefix"] == "runs/backfill-2024-05/"


def test_overrides_merge_with_the_defaults_as_the_sdks_strings_and_fm_predicts_ratings() -> None:
    run = plan(
        {
            "trigger": "manual",
            "fm_instance_type": "ml.c5.4xlarge",
            "fm_instance_count": 2,
            "fm_hyperparameters": {"epochs": 5, "bias_lr": 0.05, "factors_wd": 1e-05},
            "blazingtext_instance_type": "ml.g5.xlarge",
            "blazingtext_hyperparameters": {"vector_dim": 50, "subwords": False, "mode": "cbow"},
        }
    )
    assert run["fm"] == {
        "instance_type": "ml.c5.4xlarge",
        "instance_count": 2,
        "hyperparameters": {
            "num_factors": "256",
            "epochs": "5",
            "mini_batch_size": "1000",
            "bias_lr": "0.05",
            "factors_wd": "1e-05",
            "predictor_type": "regressor",
        },
        "resource_config": {
            "InstanceCount": 2,
            "InstanceType": "ml.c5.4xlarge",
            "VolumeSizeInGB": 30,
            "VolumeKmsKeyId": KEY,
        },
        "inter_container_encryption": True,
        "tuning": {
            "enabled": False,
            "static_hyperparameters": {
                "num_factors": "256",
                "mini_batch_size": "1000",
                "bias_lr": "0.05",
                "factors_wd": "1e-05",
                "predictor_type": "regressor",
            },
        },
    }
    # ml.g5 has local NVMe storage, which SageMaker encrypts itself and refuses a volume key for.
    assert run["blazingtext"] == {
        "instance_type": "ml.g5.xlarge",
        "hyperparameters": {"mode": "cbow", "vector_dim": "50", "subwords": "False", "evaluation": "False"},
        "resource_config": {"InstanceCount": 1, "InstanceType": "ml.g5.xlarge", "VolumeSizeInGB": 5},
    }


@pytest.mark.parametrize(
    ("instance_type", "keyed"),
    [("ml.c5.2xlarge", True), ("ml.c5d.2xlarge", False), ("ml.m5.xlarge", True), ("ml.g4dn.xlarge", False)],
)
def test_the_volume_key_is_named_only_for_types_without_local_storage(
    instance_type: str, keyed: bool
) -> None:
    run = plan({"fm_instance_type": instance_type, "blazingtext_instance_type": instance_type})
    for resources in (run["fm"]["resource_config"], run["blazingtext"]["resource_config"]):
        assert resources["InstanceType"] == instance_type
        assert ("VolumeKmsKeyId" in resources) is keyed, resources


def test_one_fm_host_needs_no_traffic_encryption() -> None:
    run = plan({"fm_instance_count": 1})
    assert run["fm"]["inter_container_encryption"] is False
    assert run["fm"]["resource_config"]["InstanceCount"] == 1


def test_a_run_may_turn_the_configured_tuning_on_within_the_training_quota() -> None:
    run = plan({"fm_tuning": {"enabled": True}, "fm_hyperparameters": {"factors_lr": 0.001}})
    # The tuned hyperparameters are left to the tuning job; the others, the input's included, stay.
    assert run["fm"]["tuning"] == {
        "enabled": True,
        "static_hyperparameters": {
            "num_factors": "256",
            "mini_batch_size": "1000",
            "factors_lr": "0.001",
            "predictor_type": "regressor",
        },
    }
    assert run["fm"]["hyperparameters"]["epochs"] == "3"  # Train FM's, had the run not tuned
    assert plan({"fm_tuning": {"enabled": False}})["fm"]["tuning"]["enabled"] is False
    tuned_on_fewer_hosts = {**DEFAULTS, "fm_tuning": {**DEFAULTS["fm_tuning"], "max_parallel_jobs": 2}}
    run = plan_run(
        {"fm_tuning": {"enabled": True}, "fm_instance_count": 2},
        execution_name="x",
        start_time=START,
        defaults=tuned_on_fewer_hosts,
        bucket="data",
        volume_key=KEY,
    )
    assert run["fm"]["tuning"]["enabled"] is True
    with pytest.raises(InvalidRunInputError, match=r"2 parallel jobs x 4 instances exceed the 4 training"):
        plan_run(
            {"fm_tuning": {"enabled": True}},
            execution_name="x",
            start_time=START,
            defaults=tuned_on_fewer_hosts,
            bucket="data",
            volume_key=KEY,
        )


def test_defaults_alone_give_the_configured_run() -> None:
    run = plan({})
    assert run["fm"]["instance_type"] == "ml.c5.2xlarge"
    assert run["fm"]["instance_count"] == 4
    assert run["fm"]["hyperparameters"] == {
        "num_factors": "256",
        "epochs": "3",
        "mini_batch_size": "1000",
        "predictor_type": "regressor",
    }
    assert run["fm"]["tuning"] == {
        "enabled": False,
        "static_hyperparameters": {
            "num_factors": "256",
            "mini_batch_size": "1000",
            "predictor_type": "regressor",
        },
    }
    # As the SageMaker Python SDK sends them: str() of the value (sagemaker.utils.to_string).
    assert run["blazingtext"]["hyperparameters"]["subwords"] == "True"
    assert run["blazingtext"]["hyperparameters"]["evaluation"] == "False"


@pytest.mark.parametrize(
    ("execution_input", "named"),
    [
        ({"fm_epochs": 5}, "fm_epochs"),
        ({"run_id": "Bad_ID"}, "run_id="),
        ({"run_id": "-leading"}, "run_id="),
        ({"run_id": "double--hyphen"}, "run_id="),
        ({"run_id": "x" * 41}, "run_id="),
        ({"run_id": 42}, "run_id=42"),
        ({"fm_instance_type": "c5.2xlarge"}, "fm_instance_type='c5.2xlarge'"),
        ({"fm_instance_type": None}, "fm_instance_type=None"),
        ({"fm_instance_count": 0}, "fm_instance_count=0"),
        ({"fm_instance_count": 101}, "fm_instance_count=101"),
        ({"fm_instance_count": "4"}, "fm_instance_count='4'"),
        ({"fm_tuning": True}, "fm_tuning=True"),
        ({"fm_tuning": {"max_jobs": 50}}, "fm_tuning={'max_jobs': 50}"),
        ({"fm_tuning": {"enabled": "yes"}}, "fm_tuning.enabled='yes'"),
        ({"fm_tuning": {"enabled": True}, "fm_instance_count": 8}, "fm_instance_count=8 with fm_tuning: 1"),
        ({"fm_instance_count": True}, "fm_instance_count=True"),
        ({"fm_hyperparameters": [1]}, "fm_hyperparameters"),
        ({"fm_hyperparameters": {"learning_rate": 0.1}}, "fm_hyperparameters.learning_rate"),
        (
            {"fm_hyperparameters": {"predictor_type": "binary_classifier"}},
            "fm_hyperparameters.predictor_type",
        ),
        ({"fm_hyperparameters": {"feature_dim": 10}}, "fm_hyperparameters.feature_dim"),
        ({"fm_hyperparameters": {"epochs": [5]}}, "fm_hyperparameters.epochs"),
        ({"blazingtext_instance_type": "p3.2xlarge"}, "blazingtext_instance_type='p3.2xlarge'"),
        ({"blazingtext_instance_type": "ml.5p.xlarge"}, "blazingtext_instance_type='ml.5p.xlarge'"),
        ({"blazingtext_hyperparameters": "vector_dim=50"}, "blazingtext_hyperparameters"),
        ({"blazingtext_hyperparameters": {"dim": 50}}, "blazingtext_hyperparameters.dim"),
        (
            {"blazingtext_hyperparameters": {"vector_dim": {"n": 50}}},
            "blazingtext_hyperparameters.vector_dim",
        ),
        ({"blazingtext_hyperparameters": {"mode": "supervised"}}, "blazingtext_hyperparameters.mode"),
    ],
)
def test_each_invalid_field_is_refused_with_its_name(execution_input: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidRunInputError) as raised:
        plan(execution_input)
    message = str(raised.value)
    assert named in message
    assert "\n" not in message


def test_an_input_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(InvalidRunInputError, match="execution input must be a JSON object"):
        plan_run(
            ["run"],  # type: ignore[arg-type]
            execution_name="x",
            start_time=START,
            defaults=DEFAULTS,
            bucket="data",
            volume_key=KEY,
        )


def test_handler_reads_its_defaults_and_bucket_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUN_DEFAULTS", json.dumps(DEFAULTS))
    monkeypatch.setenv("DATA_BUCKET", "loftrec-data")
    monkeypatch.setenv("VOLUME_KMS_KEY", KEY)
    start_run.settings.cache_clear()  # a new container, with the environment just set
    event = {"input": {"trigger": "schedule"}, "execution_name": "weekly_1", "start_time": START}
    run = start_run.handler(event, None)
    assert run["run_uri"].startswith("s3://loftrec-data/runs/20240501-123456-weekly-1-")
    assert run["fm"]["instance_count"] == 4


# One value per kind of rule of contract.hyperparameters: each refused at synth (cdk.json, -c) and in a run's
# input with the same message.
SYNTH_AND_RUN_REFUSALS = [
    ("fm_hyperparameters", "epochs", 0),
    ("fm_hyperparameters", "factors_lr", -0.5),
    ("fm_hyperparameters", "bias_init_method", "uniform"),
    ("fm_hyperparameters", "predictor_type", "binary_classifier"),
    ("fm_hyperparameters", "learning_rate", 0.1),
    ("blazingtext_hyperparameters", "vector_dim", 1001),
    ("blazingtext_hyperparameters", "subwords", "yes"),
    ("blazingtext_hyperparameters", "sampling_threshold", 1.5),
    ("blazingtext_hyperparameters", "mode", "supervised"),
    ("blazingtext_hyperparameters", "word_ngrams", 2),
    ("blazingtext_hyperparameters", "min_char", 12),  # above the configured max_char 10
]


@pytest.mark.parametrize(("table", "entry", "value"), SYNTH_AND_RUN_REFUSALS)
def test_a_value_synth_refuses_is_refused_in_the_input_with_the_same_message(
    table: str, entry: str, value: object
) -> None:
    with pytest.raises(ConfigError) as at_synth:
        load_config({**cdk_json_context(), f"{table}.{entry}": value})
    defaults = _defaults_from_cdk_json()
    with pytest.raises(InvalidRunInputError) as at_run:
        plan_run(
            {table: {entry: value}},
            execution_name="x",
            start_time=START,
            defaults=defaults,
            bucket="b",
            volume_key=KEY,
        )
    assert str(at_run.value) == str(at_synth.value)
    assert str(at_run.value).startswith(f"{table}.{entry}=")


def test_a_mode_that_trains_on_one_instance_is_refused_for_a_distributed_configuration() -> None:
    context = {**cdk_json_context(), "blazingtext_instance_count": 4}
    context["blazingtext_hyperparameters"] = {
        **context["blazingtext_hyperparameters"],
        "mode": "batch_skipgram",
        "subwords": False,
    }
    config = load_config(context)
    defaults = {**_defaults_from_cdk_json(), "blazingtext_instance_count": config.blazingtext_instance_count}
    defaults["blazingtext_hyperparameters"] = dict(config.blazingtext_hyperparameters)
    with pytest.raises(InvalidRunInputError) as at_run:
        plan_run(
            {"blazingtext_hyperparameters": {"mode": "skipgram"}},
            execution_name="x",
            start_time=START,
            defaults=defaults,
            bucket="b",
            volume_key=KEY,
        )
    with pytest.raises(ConfigError) as at_synth:
        load_config({**context, "blazingtext_hyperparameters.mode": "skipgram"})
    assert (
        str(at_run.value)
        == str(at_synth.value)
        == ("blazingtext_instance_count=4 is not allowed: an integer >= 1 and <= 1")
    )


def _defaults_from_cdk_json() -> dict[str, Any]:
    """The defaults the stack gives "Start run" for cdk.json's configuration."""
    config = load_config(cdk_json_context())
    return {
        **DEFAULTS,
        "fm_hyperparameters": dict(config.fm_hyperparameters),
        "blazingtext_hyperparameters": dict(config.blazingtext_hyperparameters),
        "blazingtext_instance_count": config.blazingtext_instance_count,
    }
