"""tools/preflight.py, offline: every check passing and failing, and whole runs through main().

AWS answers come from botocore's Stubber (which also checks each request and response against the service
model) or from moto where it implements the API (S3, SSM, STS). Docker is a fake `which` and runner.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.exceptions import NoCredentialsError, ProfileNotFound
from botocore.stub import Stubber
from moto import mock_aws

from stacks.config import Config, cdk_json_context, load_config
from tools import preflight
from tools.preflight import CheckResult, CommandResult

ROOT = Path(__file__).resolve().parents[2]
REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's account
BUCKET = "my-reviews"
RAW = f"s3://{BUCKET}/reviews/"

# The defaults' quotas (cdk.json): name -> (code, applied value or None, AWS default value). The codes of
# the first five are the real ones; the p3 and m4 codes are made up.
QUOTAS: dict[str, tuple[str, float | None, float]] = {
    "ml.c5.2xlarge for training job usage": ("L-49679826", 8.0, 0.0),
    "ml.p3.2xlarge for training job usage": ("L-TESTP3TR", 2.0, 0.0),
    "Number of instances across all training jobs": ("L-00C91CB5", None, 20.0),
    "ml.m5.xlarge for processing job usage": ("L-0307F515", 1.0, 0.0),
    "Number of instances across all processing jobs": ("L-F311B08F", None, 8.0),
    "ml.m4.xlarge for endpoint usage": ("L-TESTM4EP", 16.0, 0.0),
    "Number of instances across active endpoints": ("L-7A3DF611", 200.0, 20.0),
    "ml.m4.xlarge for transform job usage": ("L-TESTM4TR", None, 1.0),
    "Number of instances across all transform jobs": ("L-TESTTRAN", None, 8.0),
    # Listed by the region but not what the defaults use: matching is by exact name.
    "ml.c5.2xlarge for spot training job usage": ("L-TESTC5SP", 0.0, 0.0),
    "ml.m4.xlarge for endpoint usage (legacy)": ("L-TESTM4LG", 0.0, 0.0),
}


def config(**overrides: Any) -> Config:
    return load_config({**cdk_json_context(), "raw_data_uri": RAW, **overrides})


def client(service: str) -> Any:
    return boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    ).client(service)


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and no instance metadata: nothing here can reach AWS."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def moto() -> Iterator[None]:
    with mock_aws():
        yield


def stubbed(service: str) -> tuple[Any, Stubber]:
    aws = client(service)
    stubber = Stubber(aws)
    stubber.activate()
    return aws, stubber


def error(stubber: Stubber, method: str, code: str, message: str = "", params: Any = None) -> None:
    stubber.add_client_error(method, service_error_code=code, service_message=message, expected_params=params)


def cli_commands(text: str) -> list[list[str]]:
    """The `aws ...` commands in a fix text, each up to the next parenthesis, ', ', ';' or ' or '."""
    return [
        shlex.split(match)
        for match in re.findall(
            r"aws (?:service-quotas|apigateway|lambda|s3|sts) [^()]+?(?= \(|, |;|$| or )", text
        )
    ]


def assert_matches_model(command: Sequence[str]) -> None:
    """An `aws SERVICE OPERATION --option value ...` command names an operation and members botocore knows."""
    model = botocore.session.get_session().get_service_model(command[1])
    operation = "".join(part.capitalize() for part in command[2].split("-"))
    names = {name.lower(): name for name in model.operation_names}
    assert operation.lower() in names, command
    members = {m.lower() for m in model.operation_model(names[operation.lower()]).input_shape.members}
    for option in command[3:]:
        if option.startswith("--") and option != "--region":
            assert option[2:].replace("-", "") in members, (option, command)


# ---------------------------------------------------------------------------------------------------------
# Output format


def test_lines_have_the_documented_shapes() -> None:
    assert CheckResult("ok", "region", "eu-west-1 found").line() == "ok   region: eu-west-1 found"
    assert (
        CheckResult("FAIL", "raw data", "nothing there", "upload it").line()
        == "FAIL raw data: nothing there -> upload it"
    )
    assert (
        CheckResult("WARN", "docker daemon", "down", "start it").line()
        == "WARN docker daemon: down -> start it"
    )
    assert CheckResult("WARN", "docker daemon", "down").line() == "WARN docker daemon: down"


def test_summary_counts_blocking_checks_and_warnings() -> None:
    good, bad, meh = preflight.ok("a", "x"), preflight.fail("b", "y", "z"), preflight.warn("c", "w")
    assert preflight.summary([good]) == "preflight: nothing blocks deployment, 0 warnings"
    assert preflight.summary([good, meh]) == "preflight: nothing blocks deployment, 1 warning"
    assert preflight.summary([bad, meh]) == "preflight: 1 check blocks deployment, 1 warning"
    assert preflight.summary([bad, bad, meh, meh]) == "preflight: 2 checks block deployment, 2 warnings"


# ---------------------------------------------------------------------------------------------------------
# SageMaker quotas


def test_quota_needs_of_the_defaults() -> None:
    needs = [(need.name, need.need) for need in preflight.sagemaker_quota_needs(config())]
    assert needs == [
        ("ml.c5.2xlarge for training job usage", 4),
        ("ml.p3.2xlarge for training job usage", 1),
        ("Number of instances across all training jobs", 5),
        ("ml.m5.xlarge for processing job usage", 1),
        ("Number of instances across all processing jobs", 1),
        # 2 endpoints x autoscaling_max_instances 4 x 2 fleets during a blue/green update
        ("ml.m4.xlarge for endpoint usage", 16),
        ("Number of instances across active endpoints", 16),
        # the quality gate's Batch Transform of the test rows
        ("ml.m4.xlarge for transform job usage", 1),
        ("Number of instances across all transform jobs", 1),
    ]


def test_a_tuning_job_needs_its_parallel_fm_jobs_at_once() -> None:
    tuning = {**cdk_json_context()["fm_tuning"], "max_parallel_jobs": 2}
    needs = preflight.sagemaker_quota_needs(config(fm_instance_count=2, fm_tuning=tuning))
    assert [(need.name, need.need) for need in needs][:3] == [
        ("ml.c5.2xlarge for training job usage", 4),
        ("ml.p3.2xlarge for training job usage", 1),
        ("Number of instances across all training jobs", 5),
    ]


def test_quota_needs_add_up_jobs_on_one_type_and_follow_spot_and_autoscaling() -> None:
    needs = preflight.sagemaker_quota_needs(
        config(
            fm_instance_type="ml.p3.2xlarge",
            fm_instance_count=2,
            use_spot_training=True,
            autoscaling_max_instances=1,
            autoscaling_min_instances=1,
        )
    )
    assert [(need.name, need.need) for need in needs] == [
        ("ml.p3.2xlarge for spot training job usage", 3),
        ("Number of instances across all spot training jobs", 3),
        ("ml.m5.xlarge for processing job usage", 1),
        ("Number of instances across all processing jobs", 1),
        ("ml.m4.xlarge for endpoint usage", 4),
        ("Number of instances across active endpoints", 4),
        ("ml.m4.xlarge for transform job usage", 1),
        ("Number of instances across all transform jobs", 1),
    ]
    assert needs[0].why == "FM 2 + BlazingText 1 training in parallel"


def stub_quotas(
    stubber: Stubber, wanted: Config, quotas: Mapping[str, tuple[str, float | None, float]] = QUOTAS
) -> None:
    """The listing in two pages, then for each needed quota that exists: applied, or missing then default."""
    listed = [
        {"ServiceCode": "sagemaker", "QuotaName": name, "QuotaCode": code, "Value": default}
        for name, (code, _, default) in quotas.items()
    ]
    half = len(listed) // 2
    base = {"ServiceCode": "sagemaker", "MaxResults": 100}
    stubber.add_response(
        "list_aws_default_service_quotas", {"Quotas": listed[:half], "NextToken": "page-2"}, base
    )
    stubber.add_response(
        "list_aws_default_service_quotas", {"Quotas": listed[half:]}, {**base, "NextToken": "page-2"}
    )
    for need in preflight.sagemaker_quota_needs(wanted):
        if need.name not in quotas:
            continue
        code, applied, default = quotas[need.name]
        params = {"ServiceCode": "sagemaker", "QuotaCode": code}
        quota = {"ServiceCode": "sagemaker", "QuotaCode": code, "QuotaName": need.name, "Adjustable": True}
        if applied is None:
            error(stubber, "get_service_quota", "NoSuchResourceException", "no applied quota", params)
            stubber.add_response(
                "get_aws_default_service_quota", {"Quota": {**quota, "Value": default}}, params
            )
        else:
            stubber.add_response("get_service_quota", {"Quota": {**quota, "Value": applied}}, params)


def test_quotas_that_cover_the_need_pass_and_say_applied_or_default() -> None:
    quotas, stubber = stubbed("service-quotas")
    stub_quotas(stubber, config())
    results = preflight.check_sagemaker_quotas(quotas, config(), REGION)
    stubber.assert_no_pending_responses()
    assert [result.line() for result in results] == [
        "ok   quota ml.c5.2xlarge for training job usage: need 4 (FM 4 training in parallel), applied "
        "value 8 (L-49679826)",
        "ok   quota ml.p3.2xlarge for training job usage: need 1 (BlazingText 1 training in parallel), "
        "applied value 2 (L-TESTP3TR)",
        "ok   quota Number of instances across all training jobs: need 5 (FM 4 + BlazingText 1 in "
        "parallel), AWS default value 20 (L-00C91CB5)",
        "ok   quota ml.m5.xlarge for processing job usage: need 1 (the prep job, later the batch "
        "recommendations job), applied value 1 (L-0307F515)",
        "ok   quota Number of instances across all processing jobs: need 1 (the prep job, later the batch "
        "recommendations job), AWS default value 8 (L-F311B08F)",
        "ok   quota ml.m4.xlarge for endpoint usage: need 16 (2 endpoints x autoscaling_max_instances 4 x 2 "
        "fleets during a blue/green update), applied value 16 (L-TESTM4EP)",
        "ok   quota Number of instances across active endpoints: need 16 (2 endpoints x "
        "autoscaling_max_instances 4 x 2 fleets during a blue/green update), applied value 200 (L-7A3DF611)",
        "ok   quota ml.m4.xlarge for transform job usage: need 1 (the quality gate's Batch Transform of the "
        "test rows), AWS default value 1 (L-TESTM4TR)",
        "ok   quota Number of instances across all transform jobs: need 1 (the quality gate's Batch "
        "Transform of the test rows), AWS default value 8 (L-TESTTRAN)",
    ]


def test_quota_below_the_need_fails_with_the_increase_command() -> None:
    quotas, stubber = stubbed("service-quotas")
    low = {
        **QUOTAS,
        "ml.m4.xlarge for endpoint usage": ("L-TESTM4EP", 4.0, 0.0),  # applied, below 16
        "ml.p3.2xlarge for training job usage": ("L-TESTP3TR", None, 0.0),  # no applied value, default 0
    }
    stub_quotas(stubber, config(), low)
    results = {r.check: r for r in preflight.check_sagemaker_quotas(quotas, config(), REGION)}
    endpoint = results["quota ml.m4.xlarge for endpoint usage"]
    assert endpoint.blocks
    assert endpoint.found.endswith("applied value 4 (L-TESTM4EP)")
    assert (
        "aws service-quotas request-service-quota-increase --service-code sagemaker --quota-code L-TESTM4EP "
        f"--desired-value 16 --region {REGION}"
    ) in endpoint.fix
    assert (
        "Service Quotas > AWS services > Amazon SageMaker > ml.m4.xlarge for endpoint usage" in endpoint.fix
    )
    p3 = results["quota ml.p3.2xlarge for training job usage"]
    assert p3.blocks
    assert p3.found == "need 1 (BlazingText 1 training in parallel), AWS default value 0 (L-TESTP3TR)"
    assert "--quota-code L-TESTP3TR --desired-value 1" in p3.fix
    assert [r.check for r in results.values() if r.blocks] == [
        "quota ml.p3.2xlarge for training job usage",
        "quota ml.m4.xlarge for endpoint usage",
    ]
    [command] = cli_commands(endpoint.fix)
    assert_matches_model(command)


def test_quota_name_the_region_does_not_list_fails() -> None:
    quotas, stubber = stubbed("service-quotas")
    missing = {k: v for k, v in QUOTAS.items() if k != "ml.p3.2xlarge for training job usage"}
    stub_quotas(stubber, config(), missing)
    results = {r.check: r for r in preflight.check_sagemaker_quotas(quotas, config(), REGION)}
    p3 = results["quota ml.p3.2xlarge for training job usage"]
    assert p3.blocks
    assert p3.found.startswith(f"no SageMaker quota of that name in {REGION}")
    assert "-c ..._instance_type=" in p3.fix
    assert sum(r.blocks for r in results.values()) == 1


def test_account_wide_quota_the_region_does_not_list_is_a_warning() -> None:
    quotas, stubber = stubbed("service-quotas")
    missing = {k: v for k, v in QUOTAS.items() if k != "Number of instances across active endpoints"}
    stub_quotas(stubber, config(), missing)
    results = {r.check: r for r in preflight.check_sagemaker_quotas(quotas, config(), REGION)}
    stubber.assert_no_pending_responses()
    assert results["quota Number of instances across active endpoints"].line() == (
        f"WARN quota Number of instances across active endpoints: not listed in {REGION}: not checked "
        "(needed: 16, 2 endpoints x autoscaling_max_instances 4 x 2 fleets during a blue/green update)"
    )
    assert not any(r.blocks for r in results.values())


# ---------------------------------------------------------------------------------------------------------
# Lambda concurrency


def stub_account_settings(stubber: Stubber, total: int, unreserved: int) -> None:
    stubber.add_response(
        "get_account_settings",
        {"AccountLimit": {"ConcurrentExecutions": total, "UnreservedConcurrentExecutions": unreserved}},
        {},
    )


def stub_no_stack(cloudformation: Stubber) -> None:
    error(
        cloudformation,
        "list_stack_resources",
        "ValidationError",
        "Stack with id Loftrec does not exist",
        {"StackName": "Loftrec"},
    )


# The shims are unreserved by default (cdk.json); a reservation is what these checks are about.
RESERVED = config(serving_reserved_concurrency=10)


def test_lambda_without_reserved_concurrency_asks_nothing() -> None:
    lambda_, lambda_stub = stubbed("lambda")
    cloudformation, _ = stubbed("cloudformation")
    result = preflight.check_lambda_concurrency(
        lambda_, cloudformation, config(serving_reserved_concurrency="null"), REGION
    )
    assert result.line() == (
        "ok   lambda concurrency: serving_reserved_concurrency is not set: the shims use the unreserved pool"
    )
    lambda_stub.assert_no_pending_responses()


def test_lambda_headroom_passes_when_100_stay_unreserved() -> None:
    lambda_, lambda_stub = stubbed("lambda")
    cloudformation, cfn_stub = stubbed("cloudformation")
    stub_account_settings(lambda_stub, 1000, 120)
    stub_no_stack(cfn_stub)
    result = preflight.check_lambda_concurrency(lambda_, cloudformation, RESERVED, REGION)
    assert result.line() == (
        "ok   lambda concurrency: 120 unreserved of 1000; reserving 2 shims x 10 leaves 100 "
        "(AWS keeps at least 100 unreserved)"
    )


def test_lambda_headroom_too_low_fails_with_the_quota_request() -> None:
    lambda_, lambda_stub = stubbed("lambda")
    cloudformation, cfn_stub = stubbed("cloudformation")
    stub_account_settings(lambda_stub, 10, 10)  # a new account's limit
    stub_no_stack(cfn_stub)
    result = preflight.check_lambda_concurrency(lambda_, cloudformation, RESERVED, REGION)
    assert result.blocks
    assert result.found == (
        "10 unreserved of 10; reserving 2 shims x 10 leaves -10 (AWS keeps at least 100 unreserved)"
    )
    assert result.fix.startswith(
        "aws service-quotas request-service-quota-increase --service-code lambda --quota-code L-B99A9384 "
        f"--desired-value 120 --region {REGION}"
    )
    assert result.fix.endswith("-c serving_reserved_concurrency=null")
    [command] = cli_commands(result.fix)
    assert_matches_model(command)


def test_lambda_headroom_counts_what_the_deployed_stack_already_reserves() -> None:
    lambda_, lambda_stub = stubbed("lambda")
    cloudformation, cfn_stub = stubbed("cloudformation")
    stub_account_settings(lambda_stub, 120, 100)  # the deployed shims hold 2 x 10 of the 120
    resources = [
        ("ServingPredict1A2B3C", "AWS::Lambda::Function", "Loftrec-ServingPredict1A2B3C-abc"),
        ("ServingSimilarTitles4D5E", "AWS::Lambda::Function", "Loftrec-ServingSimilarTitles4D5E-def"),
        ("StartRunFunction", "AWS::Lambda::Function", "Loftrec-StartRunFunction-ghi"),
        ("DataBucket", "AWS::S3::Bucket", "loftrec-databucket-xyz"),
    ]
    cfn_stub.add_response(
        "list_stack_resources",
        {
            "StackResourceSummaries": [
                {
                    "LogicalResourceId": logical,
                    "PhysicalResourceId": physical,
                    "ResourceType": kind,
                    "LastUpdatedTimestamp": "2026-01-01T00:00:00Z",
                    "ResourceStatus": "UPDATE_COMPLETE",
                }
                for logical, kind, physical in resources
            ]
        },
        {"StackName": "Loftrec"},
    )
    for name, reserved in (
        ("Loftrec-ServingPredict1A2B3C-abc", {"ReservedConcurrentExecutions": 10}),
        ("Loftrec-ServingSimilarTitles4D5E-def", {"ReservedConcurrentExecutions": 10}),
        ("Loftrec-StartRunFunction-ghi", {}),
    ):
        lambda_stub.add_response("get_function_concurrency", reserved, {"FunctionName": name})
    result = preflight.check_lambda_concurrency(lambda_, cloudformation, RESERVED, REGION)
    lambda_stub.assert_no_pending_responses()
    assert result.line() == (
        "ok   lambda concurrency: 100 unreserved of 120 + 20 the deployed stack holds; reserving 2 shims "
        "x 10 leaves 100 (AWS keeps at least 100 unreserved)"
    )


# ---------------------------------------------------------------------------------------------------------
# API Gateway CloudWatch Logs role

ROLE = f"arn:aws:iam::{ACCOUNT}:role/apigateway-cloudwatch"


def api_gateway(role: str | None) -> Any:
    apigateway, stubber = stubbed("apigateway")
    answer: dict[str, Any] = {"throttleSettings": {"burstLimit": 5000, "rateLimit": 10000.0}}
    if role is not None:
        answer["cloudwatchRoleArn"] = role
    stubber.add_response("get_account", answer, {})
    return apigateway


def test_existing_role_is_found() -> None:
    result = preflight.check_api_gateway_role(
        api_gateway(ROLE), config(api_gateway_cloudwatch_role="existing"), ACCOUNT, REGION
    )
    assert result.line() == (
        f"ok   api gateway cloudwatch role: the account's role is {ROLE} "
        "(api_gateway_cloudwatch_role=existing)"
    )


def test_existing_role_missing_fails_with_the_update_account_command() -> None:
    result = preflight.check_api_gateway_role(
        api_gateway(None), config(api_gateway_cloudwatch_role="existing"), ACCOUNT, REGION
    )
    assert result.blocks
    assert "no API Gateway CloudWatch Logs role" in result.found
    assert (
        "aws apigateway update-account --patch-operations op=replace,path=/cloudwatchRoleArn,"
        f"value=arn:aws:iam::{ACCOUNT}:role/ROLE_NAME --region {REGION}"
    ) in result.fix
    assert "AmazonAPIGatewayPushToCloudWatchLogs" in result.fix
    assert result.fix.endswith("-c api_gateway_cloudwatch_role=create")
    [command] = cli_commands(result.fix)
    assert_matches_model(command)
    # The shorthand is one patch operation that the API takes as written.
    assert command[3] == "--patch-operations"
    operation = dict(part.split("=", 1) for part in command[4].split(","))
    assert operation == {
        "op": "replace",
        "path": "/cloudwatchRoleArn",
        "value": f"arn:aws:iam::{ACCOUNT}:role/ROLE_NAME",
    }
    apigateway, stubber = stubbed("apigateway")
    stubber.add_response("update_account", {}, {"patchOperations": [operation]})
    apigateway.update_account(patchOperations=[operation])  # botocore validates it against the model


def test_create_passes_on_an_account_without_a_role_and_warns_over_one() -> None:
    fresh = preflight.check_api_gateway_role(api_gateway(None), config(), ACCOUNT, REGION)
    assert fresh.status == "ok"
    assert fresh.found == (
        "none set yet: the stack creates the role and the account setting "
        "(api_gateway_cloudwatch_role=create)"
    )
    taken = preflight.check_api_gateway_role(api_gateway(ROLE), config(), ACCOUNT, REGION)
    assert taken.status == "WARN"
    assert ROLE in taken.found
    assert taken.fix == "keep the account's role with -c api_gateway_cloudwatch_role=existing"


# ---------------------------------------------------------------------------------------------------------
# Docker


class FakeDocker:
    """`which` and a command runner for a machine with or without docker, buildx and a daemon."""

    def __init__(self, *, installed: bool = True, buildx: bool = True, daemon: bool = True) -> None:
        self.installed, self.buildx, self.daemon = installed, buildx, daemon
        self.commands: list[list[str]] = []

    def which(self, name: str) -> str | None:
        return "/usr/bin/docker" if self.installed and name == "docker" else None

    def run(self, argv: Sequence[str]) -> CommandResult:
        self.commands.append(list(argv))
        if list(argv[1:3]) == ["buildx", "version"]:
            if self.buildx:
                return CommandResult(0, "github.com/docker/buildx v0.19.3 48d6a39")
            return CommandResult(1, "docker: 'buildx' is not a docker command.\nSee 'docker --help'")
        if argv[1] == "info":
            if self.daemon:
                return CommandResult(0, "27.5.1")
            return CommandResult(1, "Cannot connect to the Docker daemon at unix:///var/run/docker.sock.")
        raise AssertionError(f"unexpected command {argv}")


def test_docker_with_buildx_and_daemon_passes() -> None:
    docker = FakeDocker()
    assert preflight.check_docker(docker.which, docker.run).line() == (
        "ok   docker: /usr/bin/docker with github.com/docker/buildx v0.19.3 48d6a39"
    )
    assert preflight.check_docker_daemon(docker.which, docker.run).line() == (
        "ok   docker daemon: docker info answers (server 27.5.1)"
    )


def test_docker_absent_fails_and_the_daemon_is_not_asked() -> None:
    docker = FakeDocker(installed=False)
    result = preflight.check_docker(docker.which, docker.run)
    assert result.blocks
    assert result.found.startswith("docker is not on PATH")
    assert "buildx" in result.fix
    assert preflight.check_docker_daemon(docker.which, docker.run).line() == (
        "WARN docker daemon: not checked: docker is not installed"
    )
    assert docker.commands == []


def test_docker_without_buildx_fails() -> None:
    docker = FakeDocker(buildx=False)
    result = preflight.check_docker(docker.which, docker.run)
    assert result.blocks
    assert result.found.startswith(
        "/usr/bin/docker has no buildx (docker: 'buildx' is not a docker command.)"
    )
    assert "docker-buildx-plugin" in result.fix


def test_docker_daemon_down_is_a_warning_only() -> None:
    docker = FakeDocker(daemon=False)
    assert preflight.check_docker(docker.which, docker.run).status == "ok"
    result = preflight.check_docker_daemon(docker.which, docker.run)
    assert result.status == "WARN"
    assert not result.blocks
    assert "systemctl start docker" in result.fix


# ---------------------------------------------------------------------------------------------------------
# Region

IMAGES = {"registries": {"eu-west-1": {"fm": "438346466558", "blazingtext": "685385470294"}}}


def test_region_in_the_image_map_passes() -> None:
    assert preflight.check_region("eu-west-1", "config region", IMAGES).line() == (
        "ok   region: eu-west-1 (config region) has both algorithm images (fm from 438346466558, blazingtext "
        "from 685385470294)"
    )


def test_region_missing_from_the_image_map_fails_listing_those_that_work() -> None:
    result = preflight.check_region("eu-south-9", "the credentials' default region", IMAGES)
    assert result.blocks
    assert result.found == (
        "eu-south-9 (the credentials' default region) has no Factorization Machines and BlazingText "
        "images in stacks/algorithm_images.json"
    )
    assert result.fix.startswith("deploy to a region that has both with -c region=...: eu-west-1 ")


def test_no_region_at_all_fails() -> None:
    result = preflight.check_region(None, "the credentials' default region", IMAGES)
    assert result.blocks
    assert result.fix == 'pass CDK_ARGS="-c region=eu-west-1" (as for make deploy) or set AWS_REGION'


def test_region_comes_from_the_config_before_the_credentials() -> None:
    assert preflight.resolve_region(config(region="us-west-2"), REGION) == ("us-west-2", "config region")
    assert preflight.resolve_region(config(), REGION) == (REGION, "the credentials' default region")
    assert preflight.resolve_region(config(), None) == (None, "the credentials' default region")


# ---------------------------------------------------------------------------------------------------------
# Raw data in S3


@pytest.fixture
def s3(moto: None) -> Any:
    aws = client("s3")
    aws.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    return aws


def test_a_non_empty_review_file_under_the_prefix_passes(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="reviews/", Body=b"")  # the console's folder marker
    s3.put_object(Bucket=BUCKET, Key="reviews/README.txt", Body=b"about")
    s3.put_object(Bucket=BUCKET, Key="reviews/2015/video.tsv.gz", Body=b"x" * 1234)
    assert preflight.check_raw_data(s3, config()).line() == (
        f"ok   raw data: s3://{BUCKET}/reviews/2015/video.tsv.gz (1,234 bytes) under {RAW}"
    )


def test_an_empty_prefix_fails(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="reviews-old/video.tsv", Body=b"not under the prefix")
    s3.put_object(Bucket=BUCKET, Key="reviews/.hidden.tsv", Body=b"the prep job skips hidden files")
    result = preflight.check_raw_data(s3, config())
    assert result.blocks
    assert result.found == f"no .tsv or .tsv.gz object under {RAW} (1 objects)"
    assert result.fix.startswith(f"upload the reviews (aws s3 cp reviews.tsv.gz {RAW})")


def test_only_zero_byte_review_files_fail(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="reviews/a.tsv", Body=b"")
    s3.put_object(Bucket=BUCKET, Key="reviews/b.tsv.gz", Body=b"")
    result = preflight.check_raw_data(s3, config())
    assert result.blocks
    assert result.found == (
        f"2 .tsv/.tsv.gz object(s) under {RAW}, all empty (zero bytes), e.g. s3://{BUCKET}/reviews/a.tsv"
    )


def test_a_missing_bucket_fails(moto: None) -> None:
    result = preflight.check_raw_data(client("s3"), config())
    assert result.line() == (
        f"FAIL raw data: bucket {BUCKET} does not exist -> correct raw_data_uri (RAW_DATA_URI=s3://BUCKET/PREFIX/)"
    )


def test_access_denied_names_the_bucket() -> None:
    s3, stubber = stubbed("s3")
    error(
        stubber, "list_objects_v2", "AccessDenied", "Access Denied", {"Bucket": BUCKET, "Prefix": "reviews/"}
    )
    result = preflight.check_raw_data(s3, config())
    assert result.blocks
    assert result.found == f"access denied listing bucket {BUCKET} (prefix reviews/) with these credentials"
    assert f"allow s3:ListBucket on arn:aws:s3:::{BUCKET}" in result.fix
    assert result.fix.endswith(f"aws s3 ls {RAW}")


def test_raw_data_uri_not_set_fails() -> None:
    s3, _ = stubbed("s3")
    result = preflight.check_raw_data(s3, config(raw_data_uri=None))
    assert result.blocks
    assert result.fix.startswith("make preflight RAW_DATA_URI=s3://BUCKET/PREFIX/")


# ---------------------------------------------------------------------------------------------------------
# CDK bootstrap

BOOTSTRAP = f"npx cdk bootstrap aws://{ACCOUNT}/{REGION} (after make install)"


def toolkit(outputs: dict[str, str] | None) -> Any:
    """CloudFormation answering DescribeStacks CDKToolkit with a stack (its outputs) or 'does not exist'."""
    cloudformation, stubber = stubbed("cloudformation")
    params = {"StackName": "CDKToolkit"}
    if outputs is None:
        error(
            stubber, "describe_stacks", "ValidationError", "Stack with id CDKToolkit does not exist", params
        )
    else:
        stack = {
            "StackName": "CDKToolkit",
            "CreationTime": "2026-01-01T00:00:00Z",
            "StackStatus": "CREATE_COMPLETE",
            "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()],
        }
        stubber.add_response("describe_stacks", {"Stacks": [stack]}, params)
    return cloudformation


def test_bootstrap_parameter_present_passes(moto: None) -> None:
    ssm = client("ssm")
    ssm.put_parameter(Name="/cdk-bootstrap/hnb659fds/version", Value="29", Type="String")
    cloudformation, _ = stubbed("cloudformation")
    assert preflight.check_bootstrap(ssm, cloudformation, ACCOUNT, REGION).line() == (
        "ok   cdk bootstrap: /cdk-bootstrap/hnb659fds/version = 29"
    )


def test_not_bootstrapped_fails_with_the_bootstrap_command(moto: None) -> None:
    result = preflight.check_bootstrap(client("ssm"), toolkit(None), ACCOUNT, REGION)
    assert result.line() == (
        "FAIL cdk bootstrap: not bootstrapped: no /cdk-bootstrap/hnb659fds/version and no CDKToolkit "
        f"stack in {ACCOUNT}/{REGION} -> {BOOTSTRAP}"
    )


def test_toolkit_stack_without_the_parameter_fails(moto: None) -> None:
    result = preflight.check_bootstrap(client("ssm"), toolkit({"BootstrapVersion": "29"}), ACCOUNT, REGION)
    assert result.blocks
    assert "the CDKToolkit stack exists but /cdk-bootstrap/hnb659fds/version does not" in result.found
    assert result.fix == BOOTSTRAP


def test_bootstrap_older_than_the_templates_need_fails(moto: None) -> None:
    ssm = client("ssm")
    ssm.put_parameter(Name="/cdk-bootstrap/hnb659fds/version", Value="5", Type="String")
    result = preflight.check_bootstrap(ssm, toolkit(None), ACCOUNT, REGION)
    assert result.line() == (
        "FAIL cdk bootstrap: /cdk-bootstrap/hnb659fds/version = 5: the templates need version 6 or later -> "
        f"{BOOTSTRAP}"
    )


def test_unreadable_parameter_falls_back_to_the_toolkit_stack() -> None:
    ssm, stubber = stubbed("ssm")
    error(stubber, "get_parameter", "AccessDeniedException", "not authorized")
    result = preflight.check_bootstrap(ssm, toolkit({"BootstrapVersion": "29"}), ACCOUNT, REGION)
    assert result.status == "ok"
    assert result.found.startswith("CDKToolkit stack output BootstrapVersion = 29 (ssm:GetParameter denied")


# ---------------------------------------------------------------------------------------------------------
# Account


def test_account_of_the_credentials_is_named(moto: None) -> None:
    result, account = preflight.check_account(client("sts"), config())
    assert account == ACCOUNT
    assert (
        result.line()
        == f"ok   account: {ACCOUNT} as arn:aws:sts::{ACCOUNT}:user/moto (account of the credentials)"
    )


def test_configured_account_that_matches_passes(moto: None) -> None:
    result, account = preflight.check_account(client("sts"), config(account=ACCOUNT))
    assert (result.status, account) == ("ok", ACCOUNT)
    assert result.found.endswith("(configured account)")


def test_account_mismatch_fails_and_stops_the_aws_checks(moto: None) -> None:
    result, account = preflight.check_account(client("sts"), config(account="210987654321"))
    assert account is None
    assert result.blocks
    assert result.found == (
        f"the credentials are for account {ACCOUNT} (arn:aws:sts::{ACCOUNT}:user/moto) but the configuration "
        "deploys to account 210987654321"
    )


def test_no_credentials_fail() -> None:
    class NoCredentials:
        def get_caller_identity(self) -> Any:
            raise NoCredentialsError()

    result, account = preflight.check_account(NoCredentials(), config())
    assert account is None
    assert result.found == "no usable AWS credentials (Unable to locate credentials)"
    assert result.fix.endswith("aws sts get-caller-identity")


# ---------------------------------------------------------------------------------------------------------
# Whole runs through main()


class FakeSession:
    """What main() needs of a boto3 Session: a default region and clients."""

    def __init__(self, region: str | None, clients: Mapping[str, Any]) -> None:
        self.region_name = region
        self._clients = clients
        self.asked: list[tuple[str, str]] = []

    def client(self, name: str, region_name: str) -> Any:
        self.asked.append((name, region_name))
        # A client the test did not prepare answers nothing: a call to it fails the test.
        return self._clients[name] if name in self._clients else stubbed(name)[0]


def healthy_account(
    wanted: Config, quotas: Mapping[str, tuple[str, float | None, float]] = QUOTAS
) -> dict[str, Any]:
    """Clients for an account where everything the defaults need is in place (moto must be active)."""
    service_quotas, quota_stub = stubbed("service-quotas")
    stub_quotas(quota_stub, wanted, quotas)
    lambda_, lambda_stub = stubbed("lambda")
    stub_account_settings(lambda_stub, 1000, 1000)
    cloudformation, cfn_stub = stubbed("cloudformation")
    stub_no_stack(cfn_stub)
    apigateway, apigateway_stub = stubbed("apigateway")
    apigateway_stub.add_response("get_account", {}, {})
    ssm = client("ssm")
    ssm.put_parameter(Name="/cdk-bootstrap/hnb659fds/version", Value="29", Type="String")
    s3 = client("s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket=BUCKET, Key="reviews/video.tsv.gz", Body=b"x" * 100)
    return {
        "sts": client("sts"),
        "service-quotas": service_quotas,
        "lambda": lambda_,
        "apigateway": apigateway,
        "s3": s3,
        "ssm": ssm,
        "cloudformation": cloudformation,
    }


def run_main(argv: Sequence[str], session: Any, docker: FakeDocker | None = None) -> tuple[int, list[str]]:
    docker = docker or FakeDocker()
    lines: list[str] = []
    code = preflight.main(
        list(argv),
        session_factory=lambda profile: session,
        which=docker.which,
        run=docker.run,
        out=lines.append,
    )
    return code, lines


def test_whole_run_on_a_ready_account_exits_0(moto: None) -> None:
    session = FakeSession(REGION, healthy_account(config()))
    code, lines = run_main(["-c", f"raw_data_uri={RAW}"], session)
    assert code == 0
    assert lines == [
        f"ok   region: {REGION} (the credentials' default region) has both algorithm images (fm from "
        "438346466558, blazingtext from 685385470294)",
        "ok   docker: /usr/bin/docker with github.com/docker/buildx v0.19.3 48d6a39",
        "ok   docker daemon: docker info answers (server 27.5.1)",
        f"ok   account: {ACCOUNT} as arn:aws:sts::{ACCOUNT}:user/moto (account of the credentials)",
        "ok   quota ml.c5.2xlarge for training job usage: need 4 (FM 4 training in parallel), applied "
        "value 8 (L-49679826)",
        "ok   quota ml.p3.2xlarge for training job usage: need 1 (BlazingText 1 training in parallel), "
        "applied value 2 (L-TESTP3TR)",
        "ok   quota Number of instances across all training jobs: need 5 (FM 4 + BlazingText 1 in "
        "parallel), AWS default value 20 (L-00C91CB5)",
        "ok   quota ml.m5.xlarge for processing job usage: need 1 (the prep job, later the batch "
        "recommendations job), applied value 1 (L-0307F515)",
        "ok   quota Number of instances across all processing jobs: need 1 (the prep job, later the batch "
        "recommendations job), AWS default value 8 (L-F311B08F)",
        "ok   quota ml.m4.xlarge for endpoint usage: need 16 (2 endpoints x autoscaling_max_instances 4 x 2 "
        "fleets during a blue/green update), applied value 16 (L-TESTM4EP)",
        "ok   quota Number of instances across active endpoints: need 16 (2 endpoints x "
        "autoscaling_max_instances 4 x 2 fleets during a blue/green update), applied value 200 (L-7A3DF611)",
        "ok   quota ml.m4.xlarge for transform job usage: need 1 (the quality gate's Batch Transform of the "
        "test rows), AWS default value 1 (L-TESTM4TR)",
        "ok   quota Number of instances across all transform jobs: need 1 (the quality gate's Batch "
        "Transform of the test rows), AWS default value 8 (L-TESTTRAN)",
        "ok   lambda concurrency: serving_reserved_concurrency is not set: the shims use the unreserved pool",
        "ok   api gateway cloudwatch role: none set yet: the stack creates the role and the account setting "
        "(api_gateway_cloudwatch_role=create)",
        f"ok   raw data: s3://{BUCKET}/reviews/video.tsv.gz (100 bytes) under {RAW}",
        "ok   cdk bootstrap: /cdk-bootstrap/hnb659fds/version = 29",
        "preflight: nothing blocks deployment, 0 warnings",
    ]
    # Each client made once, for the one region.
    assert sorted(session.asked) == sorted((name, REGION) for name in session._clients)


def test_whole_run_with_a_blocking_check_exits_1_and_warnings_alone_do_not(moto: None) -> None:
    low = {**QUOTAS, "ml.m4.xlarge for endpoint usage": ("L-TESTM4EP", 8.0, 0.0)}
    code, lines = run_main(
        ["-c", f"raw_data_uri={RAW}"],
        FakeSession(REGION, healthy_account(config(), low)),
        FakeDocker(daemon=False),
    )
    assert code == 1
    assert [line.split(":")[0] for line in lines if not line.startswith("ok   ")] == [
        "WARN docker daemon",
        "FAIL quota ml.m4.xlarge for endpoint usage",
        "preflight",
    ]
    assert lines[-1] == "preflight: 1 check blocks deployment, 1 warning"
    fail_line = next(line for line in lines if line.startswith("FAIL"))
    assert " -> aws service-quotas request-service-quota-increase " in fail_line


def test_overrides_reach_the_checks_as_for_cdk_deploy(moto: None) -> None:
    """-c keys from CDK_ARGS change what is needed: one endpoint instance at most needs 4 at the peak."""
    wanted = config(autoscaling_max_instances="1", autoscaling_min_instances="1")
    low = {**QUOTAS, "ml.m4.xlarge for endpoint usage": ("L-TESTM4EP", 4.0, 0.0)}
    argv = [
        "-c",
        f"raw_data_uri={RAW}",
        "-c",
        "autoscaling_max_instances=1",
        "-c",
        "autoscaling_min_instances=1",
    ]
    code, lines = run_main(argv, FakeSession(REGION, healthy_account(wanted, low)))
    assert code == 0, lines
    assert any(line.startswith("ok   quota ml.m4.xlarge for endpoint usage: need 4 (") for line in lines)


def test_account_mismatch_skips_the_aws_checks(moto: None) -> None:
    session = FakeSession(REGION, {"sts": client("sts")})
    code, lines = run_main(["-c", f"raw_data_uri={RAW}", "-c", "account=210987654321"], session)
    assert code == 1
    assert lines[3].startswith("FAIL account: the credentials are for account 123456789012")
    assert lines[4:-1] == [
        f"FAIL {name}: not checked (see the account check) -> fix the checks above, then run make "
        "preflight again"
        for name in (
            "quotas",
            "lambda concurrency",
            "api gateway cloudwatch role",
            "raw data",
            "cdk bootstrap",
        )
    ]
    assert lines[-1] == "preflight: 6 checks block deployment, 0 warnings"


def test_no_region_makes_no_client() -> None:
    session = FakeSession(None, {})
    code, lines = run_main([], session)
    assert code == 1
    assert lines[0].startswith("FAIL region: no region")
    assert lines[3] == (
        "FAIL account: not checked (no region) -> fix the checks above, then run make preflight again"
    )
    assert session.asked == []


def test_an_unexpected_aws_error_is_its_checks_fail_line(moto: None) -> None:
    clients = healthy_account(RESERVED)
    lambda_, lambda_stub = stubbed("lambda")
    error(
        lambda_stub, "get_account_settings", "AccessDeniedException", "not authorized to GetAccountSettings"
    )
    clients["lambda"] = lambda_
    code, lines = run_main(
        ["-c", f"raw_data_uri={RAW}", "-c", "serving_reserved_concurrency=10"], FakeSession(REGION, clients)
    )
    assert code == 1
    [line] = [line for line in lines if line.startswith("FAIL")]
    assert line == (
        "FAIL lambda concurrency: GetAccountSettings failed: AccessDeniedException: not authorized to "
        "GetAccountSettings -> allow lambda:GetAccountSettings, lambda:GetFunctionConcurrency and "
        "cloudformation:ListStackResources to these credentials, or retry if AWS was throttling"
    )


def refuse_session(profile: str | None) -> Any:
    raise AssertionError("bad arguments must stop before any AWS session")


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["-c", "fm_instance_count=0"],
            "loftrec: invalid configuration: fm_instance_count=0 is not allowed: an integer >= 1",
        ),
        (
            ["-c", "api_gateway_cloudwatch_role=maybe"],
            "loftrec: invalid configuration: api_gateway_cloudwatch_role='maybe' is not allowed: create",
        ),
        (
            ["-c", "fm_instance_cont=2"],
            "loftrec: invalid configuration: the CDK context key fm_instance_cont",
        ),
        (["-c", "novalue"], "preflight: bad arguments: -c 'novalue' is not allowed: -c takes key=value"),
        (
            ["--require-approval", "never"],
            "preflight: bad arguments: unrecognized arguments: --require-approval",
        ),
    ],
)
def test_bad_arguments_and_config_exit_2_with_one_line(argv: list[str], line: str) -> None:
    lines: list[str] = []
    code = preflight.main(argv, session_factory=refuse_session, out=lines.append)
    assert code == 2
    [only] = lines
    assert only.startswith(line), only


def test_importing_the_module_needs_no_boto3_session() -> None:
    """No AWS client or session at import: the module imports with boto3 unavailable."""
    code = "import sys; sys.modules['boto3'] = None; import tools.preflight"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stderr


def test_an_unknown_profile_exits_2() -> None:
    def no_profile(profile: str | None) -> Any:
        raise ProfileNotFound(profile=profile)

    lines: list[str] = []
    assert preflight.main(["--profile", "nope"], session_factory=no_profile, out=lines.append) == 2
    assert lines == ["preflight: bad arguments: The config profile (nope) could not be found"]
