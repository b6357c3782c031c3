"""The typed configuration: defaults from cdk.json, -c overrides, one clear line per invalid value."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from stacks.config import ConfigError, cdk_json_context, default_context, load_config, supported_regions


def load(**overrides: Any) -> Any:
    return load_config({**default_context(), **overrides})


def test_defaults_are_the_notebooks() -> None:
    config = load()
    assert config.fm_instance_type == "ml.c5.2xlarge"
    assert config.fm_instance_count == 4
    assert config.fm_hyperparameters == {
        "num_factors": 64,
        "epochs": 3,
        "mini_batch_size": 1000,
        "linear_lr": 0.01,
    }
    assert config.blazingtext_instance_type == "ml.p3.2xlarge"
    assert config.blazingtext_hyperparameters["mode"] == "skipgram"
    assert config.blazingtext_hyperparameters["subwords"] is True
    assert config.blazingtext_hyperparameters["vector_dim"] == 100
    assert config.endpoint_instance_type == "ml.m4.xlarge"
    assert (config.min_customer_reviews, config.min_product_reviews) == (5, 10)
    assert config.raw_data_uri is None
    assert config.data_removal_policy == "retain"
    assert config.api_gateway_cloudwatch_role == "create"


def test_command_line_strings_are_typed() -> None:
    """`-c key=value` delivers strings; they become the declared types."""
    config = load(
        fm_instance_count="2",
        retrain_enabled="false",
        gate_min_improvement="0.05",
        raw_data_uri="s3://my-reviews/us/video",
        notification_email="ops@example.com",
    )
    assert config.fm_instance_count == 2
    assert config.retrain_enabled is False
    assert config.gate_min_improvement == 0.05
    assert config.raw_data_uri == "s3://my-reviews/us/video/"
    assert config.raw_data_bucket == "my-reviews"
    assert config.notification_email == "ops@example.com"


def test_dotted_key_overrides_one_hyperparameter() -> None:
    config = load(**{"fm_hyperparameters.epochs": "5", "blazingtext_hyperparameters.vector_dim": "50"})
    assert config.fm_hyperparameters == {
        "num_factors": 64,
        "epochs": 5,
        "mini_batch_size": 1000,
        "linear_lr": 0.01,
    }
    assert config.blazingtext_hyperparameters["vector_dim"] == 50
    assert config.blazingtext_hyperparameters["window_size"] == 5


def test_whole_table_as_json_string() -> None:
    config = load(fm_hyperparameters='{"num_factors": 256, "epochs": 1}')
    assert config.fm_hyperparameters == {"num_factors": 256, "epochs": 1}


def test_cdk_keys_pass_through() -> None:
    config = load(**{"aws:cdk:enable-path-metadata": True, "@aws-cdk/core:newStyleStackSynthesis": True})
    assert config.fm_instance_count == 4


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"fm_instance_count": 0}, "fm_instance_count=0 is not allowed: an integer >= 1"),
        ({"fm_instance_count": "four"}, "fm_instance_count='four' is not allowed: an integer >= 1"),
        ({"fm_instance_count": True}, "fm_instance_count=True is not allowed: an integer >= 1"),
        (
            {"blazingtext_instance_count": 2},
            "blazingtext_instance_count=2 is not allowed: an integer >= 1 and <= 1",
        ),
        ({"retrain_schedule": "cron(0 3 * * * *)"}, "retrain_schedule='cron(0 3 * * * *)' is not allowed"),
        ({"retrain_schedule": "cron(0 3 ? * SUN)"}, "retrain_schedule='cron(0 3 ? * SUN)' is not allowed"),
        ({"retrain_schedule": "rate(1 days)"}, "retrain_schedule='rate(1 days)' is not allowed"),
        ({"retrain_schedule": "rate(0 minutes)"}, "retrain_schedule='rate(0 minutes)' is not allowed"),
        (
            {"retrain_schedule": "weekly"},
            "retrain_schedule='weekly' is not allowed: an EventBridge expression",
        ),
        (
            {"fm_instance_type": "c5.2xlarge"},
            "fm_instance_type='c5.2xlarge' is not allowed: a SageMaker instance",
        ),
        (
            {"fm_instance_type": "ml.c5.2xlarg"},
            "fm_instance_type='ml.c5.2xlarg' is not allowed: an instance type",
        ),
        ({"endpoint_instance_type": "m4.xlarge"}, "endpoint_instance_type='m4.xlarge' is not allowed"),
        ({"prep_instance_type": "ml.p3.2xlarge "}, "prep_instance_type='ml.p3.2xlarge ' is not allowed"),
        (
            {"raw_data_uri": "https://example.com/reviews"},
            "raw_data_uri='https://example.com/reviews' is not allowed",
        ),
        ({"raw_data_uri": "s3://My_Bucket/x"}, "raw_data_uri='s3://My_Bucket/x' is not allowed: an S3 URI"),
        ({"raw_data_uri": "/data/reviews"}, "raw_data_uri='/data/reviews' is not allowed: an S3 URI"),
        ({"retrain_enabled": "yes"}, "retrain_enabled='yes' is not allowed: true or false"),
        ({"max_bad_row_fraction": 1.5}, "max_bad_row_fraction=1.5 is not allowed: a number from 0.0 to 1.0"),
        ({"autoscaling_max_instances": 0}, "autoscaling_max_instances=0 is not allowed: an integer >= 1"),
        (
            {"autoscaling_min_instances": 3, "autoscaling_max_instances": 2},
            "autoscaling_max_instances=2 is not allowed: at least autoscaling_min_instances (3)",
        ),
        (
            {"notification_email": "ops-at-example"},
            "notification_email='ops-at-example' is not allowed: an e-mail",
        ),
        ({"data_removal_policy": "delete"}, "data_removal_policy='delete' is not allowed: retain or destroy"),
        ({"account": "12345"}, "account='12345' is not allowed: a 12-digit AWS account id"),
        ({"region": "europe"}, "region='europe' is not allowed: an AWS region"),
        (
            {"fm_hyperparameters.feature_dim": "10"},
            "fm_hyperparameters.feature_dim=10 is not allowed: nothing",
        ),
        (
            {"fm_hyperparameters.num_factor": "10"},
            "fm_hyperparameters.num_factor=10 is not allowed: one of ",
        ),
        ({"fm_hyperparameters.epochs": "0"}, "fm_hyperparameters.epochs=0 is not allowed: an integer >= 1"),
        ({"fm_hyperparameters": "not json"}, "fm_hyperparameters='not json' is not allowed: a JSON object"),
        (
            {"blazingtext_hyperparameters.mode": "skip"},
            "blazingtext_hyperparameters.mode='skip' is not allowed",
        ),
        (
            {"blazingtext_hyperparameters.min_char": "11"},
            "blazingtext_hyperparameters.min_char=11 is not allowed: at most max_char",
        ),
        (
            {"use_spot_training": "true", "training_max_runtime_seconds": 7200},
            "training_max_runtime_seconds=7200 is not allowed: at most 3600 with use_spot_training=true",
        ),
        (
            {"fm_instance_cont": 2},
            "the CDK context key fm_instance_cont is not a loftrec setting (did you mean",
        ),
        ({"prep_instance.type": "x"}, "prep_instance.type='x' is not allowed: dotted keys only"),
        (
            {"serving_max_batch_size": 1000, "serving_neighbours": 50},
            "serving_max_batch_size=1000 is not allowed: at most 392 with serving_neighbours=50",
        ),
        (
            {"serving_reserved_concurrency": 0},
            "serving_reserved_concurrency=0 is not allowed: an integer >= 1",
        ),
        ({"api_rate_limit": "-5"}, "api_rate_limit=-5 is not allowed: an integer >= 1"),
        (
            {"api_gateway_cloudwatch_role": "none"},
            "api_gateway_cloudwatch_role='none' is not allowed: create (the stack owns the account's API "
            "Gateway CloudWatch Logs role) or existing",
        ),
    ],
)
def test_invalid_value_fails_with_one_line_naming_it(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load(**overrides)
    text = str(raised.value)
    assert "\n" not in text
    assert text.startswith(message), text


def test_missing_required_key_is_named() -> None:
    context = default_context()
    del context["fm_instance_type"]
    with pytest.raises(ConfigError, match=re.escape("the CDK context key fm_instance_type is undefined")):
        load_config(context)


@pytest.mark.parametrize(
    "expression",
    [
        "rate(1 day)",
        "rate(7 days)",
        "rate(12 hours)",
        "cron(0 3 ? * SUN *)",
        "cron(15 10 1 * ? *)",
        "cron(0/30 * ? * MON-FRI *)",
    ],
)
def test_valid_schedules(expression: str) -> None:
    assert load(retrain_schedule=expression).retrain_schedule == expression


@pytest.mark.parametrize("value", ["create", "existing"])
def test_api_gateway_cloudwatch_role_values(value: str) -> None:
    assert load(api_gateway_cloudwatch_role=value).api_gateway_cloudwatch_role == value


def test_a_configured_region_without_the_algorithm_images_is_refused_listing_the_supported_ones() -> None:
    with pytest.raises(ConfigError) as raised:
        load_config({**cdk_json_context(), "region": "mx-central-1"})
    message = str(raised.value)
    assert message.startswith(
        "region='mx-central-1' is not allowed: a region with both built-in algorithm images "
        "(stacks/algorithm_images.json): af-south-1, ap-east-1, "
    )
    assert "eu-west-1, " in message and message.endswith("us-west-1, us-west-2")
    assert "\n" not in message
    assert load_config({**cdk_json_context(), "region": "eu-west-1"}).region == "eu-west-1"


def test_the_supported_regions_are_the_image_tables() -> None:
    registries = json.loads(
        (Path(__file__).resolve().parents[2] / "stacks" / "algorithm_images.json").read_text()
    )
    assert supported_regions() == tuple(sorted(registries["registries"]))
    assert "us-east-1" in supported_regions()


# ---------------------------------------------------------------------------------------------------------
# fm_tuning


def tuning(**changes: Any) -> dict[str, Any]:
    """cdk.json's fm_tuning with `changes` over it; a "ranges" change replaces the ranges' table."""
    table: dict[str, Any] = dict(default_context()["fm_tuning"])
    return {**table, **changes}


def test_tuning_is_off_by_default_with_ranges_sagemaker_allows() -> None:
    config = load()
    assert config.fm_tuning.enabled is False
    assert (config.fm_tuning.max_jobs, config.fm_tuning.max_parallel_jobs) == (8, 1)
    assert config.fm_tuning.tuned == {"epochs", "factors_lr", "linear_lr"}
    assert config.fm_tuning.parameter_ranges() == {
        "ContinuousParameterRanges": [
            {"Name": "factors_lr", "MinValue": "0.0001", "MaxValue": "0.1", "ScalingType": "Logarithmic"},
            {"Name": "linear_lr", "MinValue": "0.0001", "MaxValue": "0.1", "ScalingType": "Logarithmic"},
        ],
        "IntegerParameterRanges": [
            {"Name": "epochs", "MinValue": "3", "MaxValue": "30", "ScalingType": "Auto"}
        ],
    }


def test_a_tuning_table_on_the_command_line_is_json() -> None:
    table = tuning(
        enabled=True,
        max_parallel_jobs=2,
        ranges={"mini_batch_size": {"type": "integer", "min": 100, "max": 10000}},
    )
    config = load(fm_tuning=json.dumps(table), fm_instance_count="2")
    assert config.fm_tuning.enabled is True
    assert config.fm_tuning.ranges[0].scaling == "Auto"


def test_an_init_parameter_is_tunable_with_its_init_method_only() -> None:
    sigma = {"factors_init_sigma": {"type": "continuous", "min": 0.001, "max": 0.1}}
    assert load(fm_tuning=tuning(ranges=sigma)).fm_tuning.tuned == {
        "factors_init_sigma"
    }  # normal: the default
    with pytest.raises(
        ConfigError, match=r"only with fm_hyperparameters.factors_init_method=uniform \(it is normal"
    ):
        load(
            fm_tuning=tuning(ranges={"factors_init_scale": {"type": "continuous", "min": 0.001, "max": 0.1}})
        )
    uniform = load(
        fm_tuning=tuning(ranges={"factors_init_scale": {"type": "continuous", "min": 0.001, "max": 0.1}}),
        **{
            "fm_hyperparameters.factors_init_method": "uniform",
            "fm_hyperparameters.factors_init_scale": "0.01",
        },
    )
    assert uniform.fm_tuning.tuned == {"factors_init_scale"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"ranges": {"num_factors": {"type": "integer", "min": 2, "max": 64}}},
            "fm_tuning.ranges.num_factors={'type': 'integer', 'min': 2, 'max': 64} is not allowed: a "
            "tunable FM hyperparameter: bias_init_scale",
        ),
        (
            {"ranges": {"linear_lr": {"type": "continuous", "min": 0, "max": 0.1}}},
            "fm_tuning.ranges.linear_lr.min=0 is not allowed: a number from 1e-08 to 512 (SageMaker's range",
        ),
        (
            {"ranges": {"linear_lr": {"type": "continuous", "min": 0.01, "max": 1000}}},
            "fm_tuning.ranges.linear_lr.max=1000 is not allowed: a number from 1e-08 to 512",
        ),
        (
            {"ranges": {"epochs": {"type": "integer", "min": 1, "max": 2000}}},
            "fm_tuning.ranges.epochs.max=2000 is not allowed: an integer from 1 to 1000",
        ),
        (
            {"ranges": {"mini_batch_size": {"type": "integer", "min": 10, "max": 1000}}},
            "fm_tuning.ranges.mini_batch_size.min=10 is not allowed: an integer from 100 to 10000",
        ),
        (
            {"ranges": {"epochs": {"type": "continuous", "min": 1, "max": 20}}},
            "fm_tuning.ranges.epochs.type='continuous' is not allowed: integer",
        ),
        (
            {"ranges": {"epochs": {"type": "integer", "min": 1.5, "max": 20}}},
            "fm_tuning.ranges.epochs.min=1.5 is not allowed: an integer",
        ),
        (
            {"ranges": {"linear_lr": {"type": "continuous", "min": 0.1, "max": 0.01}}},
            "fm_tuning.ranges.linear_lr.max=0.01 is not allowed: greater than min (0.1)",
        ),
        (
            {"ranges": {"linear_lr": {"type": "continuous", "min": 0.01, "max": 0.1, "scaling": "Log"}}},
            "fm_tuning.ranges.linear_lr.scaling='Log' is not allowed: Auto, Linear or Logarithmic",
        ),
        ({"enabled": True, "ranges": {}}, "fm_tuning.ranges={} is not allowed: an object of hyperparameter"),
        ({"max_jobs": 0}, "fm_tuning.max_jobs=0 is not allowed: an integer >= 1 and <= 100"),
        ({"max_parallel_jobs": 9}, "fm_tuning.max_parallel_jobs=9 is not allowed: an integer >= 1 and <= 8"),
        (
            {"max_parallel_jobs": 2},
            "fm_tuning.max_parallel_jobs=2 is not allowed: at most 1 with fm_instance_count=4: 2 x 4 "
            "training instances at once exceed the default quota of 4",
        ),
        ({"objective": "test:mse"}, "fm_tuning={"),
    ],
)
def test_tuning_outside_what_sagemaker_and_the_quota_allow_is_refused(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load(fm_tuning=tuning(**changes))
    assert str(raised.value).startswith(message), str(raised.value)
