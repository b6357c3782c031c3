"""Pre-deployment checks against the target account: `make preflight` (python -m tools.preflight).

Reads the same typed configuration as `cdk deploy` (cdk.json's context overridden by `-c key=value`) and
asks the account, with the credentials of whoever runs it, whether a deployment of that configuration can
succeed and its pipeline can run: SageMaker quotas for what the configuration runs at its peak, Lambda
concurrency headroom, the API Gateway CloudWatch Logs role, Docker with buildx for the prep image, the
region's algorithm images, the raw data, the CDK bootstrap. It changes nothing.

One line per check, `ok   <check>: <what was found>`, `WARN <check>: <finding> -> <what to do>` or
`FAIL <check>: <what is wrong> -> <what to do>`, then one summary line. Exit 0 when nothing blocks, 1 when a
check blocks, 2 for bad arguments or configuration.

Each check is a function of the boto3 clients it needs (created once in `main` and injected) and the
Config, returning a `CheckResult`; `run_checks` calls them and `main` prints. Nothing calls AWS at import.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NoReturn

from botocore.exceptions import BotoCoreError, ClientError

from contract import layout
from stacks.config import STACK_NAME, Config, ConfigError, cdk_json_context, load_config

Status = Literal["ok", "WARN", "FAIL"]

ALGORITHM_IMAGES = Path(__file__).resolve().parent.parent / "stacks" / "algorithm_images.json"

# The shims that reserve serving_reserved_concurrency each (stacks/serving.py: Predict, SimilarTitles).
SERVING_SHIMS = 2
# "You can reserve concurrency for as many functions as you like, as long as you leave at least 100
# simultaneous executions unreserved for functions that aren't configured with a per-function limit."
# https://docs.aws.amazon.com/lambda/latest/api/API_PutFunctionConcurrency.html (and "You can reserve up to
# the Unreserved account concurrency value minus 100", lambda/latest/dg/configuration-concurrency.html).
# Accounts whose whole limit is lower (10 or 50 on new accounts) refuse any reservation with "decreases
# account's UnreservedConcurrentExecution below its minimum value of [10]": the same rule fails them.
LAMBDA_UNRESERVED_FLOOR = 100
LAMBDA_CONCURRENCY_QUOTA = "L-B99A9384"  # Service Quotas: lambda "Concurrent executions"

# The endpoints (FM, BlazingText), each scaled between autoscaling_min..autoscaling_max_instances. A
# blue/green update (stacks/pipeline/deploy.py, ALL_AT_ONCE) provisions a green fleet as large as the blue
# one and keeps both until the termination wait ends, and the two endpoints deploy in parallel.
ENDPOINTS = 2
BLUE_GREEN_FLEETS = 2
# The prep job's Processing cluster (stacks/pipeline/prepare.py: InstanceCount 1).
PREP_INSTANCE_COUNT = 1
TRANSFORM_INSTANCE_COUNT = 1  # stacks/pipeline/gate.py: the test rows' Batch Transform job

# The prep job reads every non-hidden .tsv/.tsv.gz object under the prefix.
RAW_SUFFIXES = layout.RAW_INPUT_SUFFIXES
# ListObjectsV2 answers at most 1,000 keys a page: give up after this many pages without a review file.
MAX_LIST_PAGES = 100

BOOTSTRAP_QUALIFIER = "hnb659fds"
BOOTSTRAP_PARAMETER = f"/cdk-bootstrap/{BOOTSTRAP_QUALIFIER}/version"
BOOTSTRAP_STACK = "CDKToolkit"
# The synthesized template's CheckBootstrapVersion rule: "CDK bootstrap stack version 6 required".
MIN_BOOTSTRAP_VERSION = 6

SAGEMAKER = "sagemaker"


@dataclasses.dataclass(frozen=True)
class CheckResult:
    status: Status
    check: str
    found: str  # what was found, or what is wrong
    fix: str = ""  # what to do; required for FAIL

    @property
    def blocks(self) -> bool:
        return self.status == "FAIL"

    def line(self) -> str:
        text = f"{self.status:<4} {self.check}: {self.found}"
        return f"{text} -> {self.fix}" if self.fix else text


def ok(check: str, found: str) -> CheckResult:
    return CheckResult("ok", check, found)


def warn(check: str, found: str, fix: str = "") -> CheckResult:
    return CheckResult("WARN", check, found, fix)


def fail(check: str, found: str, fix: str) -> CheckResult:
    return CheckResult("FAIL", check, found, fix)


@dataclasses.dataclass(frozen=True)
class Clients:
    """boto3 clients for the target region, created once (`make_clients`) and handed to the checks."""

    sts: Any
    service_quotas: Any
    lambda_: Any
    apigateway: Any
    s3: Any
    ssm: Any
    cloudformation: Any


def make_clients(session: Any, region: str) -> Clients:
    def client(name: str) -> Any:
        return session.client(name, region_name=region)

    return Clients(
        sts=client("sts"),
        service_quotas=client("service-quotas"),
        lambda_=client("lambda"),
        apigateway=client("apigateway"),
        s3=client("s3"),
        ssm=client("ssm"),
        cloudformation=client("cloudformation"),
    )


@dataclasses.dataclass(frozen=True)
class CommandResult:
    returncode: int
    output: str  # stdout and stderr


Which = Callable[[str], str | None]
Runner = Callable[[Sequence[str]], CommandResult]


def run_command(argv: Sequence[str]) -> CommandResult:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return CommandResult(returncode=127, output=str(error))
    return CommandResult(returncode=done.returncode, output=(done.stdout + done.stderr).strip())


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


# ---------------------------------------------------------------------------------------------------------
# Account and region


def check_account(sts: Any, config: Config) -> tuple[CheckResult, str | None]:
    """STS GetCallerIdentity. Returns the account id only when the checks that follow should run on it."""
    check = "account"
    try:
        identity = sts.get_caller_identity()
    except (ClientError, BotoCoreError) as error:
        return fail(
            check,
            f"no usable AWS credentials ({error})",
            "configure credentials for the target account (aws configure, AWS_PROFILE=NAME or aws sso login) "
            "and confirm with: aws sts get-caller-identity",
        ), None
    account, arn = str(identity["Account"]), str(identity["Arn"])
    if config.account is not None and config.account != account:
        return fail(
            check,
            f"the credentials are for account {account} ({arn}) but the configuration deploys to account "
            f"{config.account}",
            f"use credentials for {config.account} (e.g. AWS_PROFILE=NAME make preflight ...) or correct "
            "-c account=... in CDK_ARGS",
        ), None
    target = "configured account" if config.account is not None else "account of the credentials"
    return ok(check, f"{account} as {arn} ({target})"), account


def resolve_region(config: Config, session_region: str | None) -> tuple[str | None, str]:
    if config.region is not None:
        return config.region, "config region"
    return session_region, "the credentials' default region"


def check_region(region: str | None, source: str, images: Mapping[str, Any]) -> CheckResult:
    """The region must have both built-in algorithm images in stacks/algorithm_images.json."""
    check = "region"
    if region is None:
        return fail(
            check,
            "no region: the configuration has none and the credentials have no default region",
            'pass CDK_ARGS="-c region=eu-west-1" (as for make deploy) or set AWS_REGION',
        )
    registries: Mapping[str, Mapping[str, str]] = images["registries"]
    if region not in registries:
        return fail(
            check,
            f"{region} ({source}) has no Factorization Machines and BlazingText images in "
            "stacks/algorithm_images.json",
            "deploy to a region that has both with -c region=...: "
            + ", ".join(sorted(registries))
            + " (a region newer than the pinned SageMaker SDK needs its upgrade, then "
            "tools/generate_algorithm_images.py)",
        )
    accounts = registries[region]
    return ok(
        check,
        f"{region} ({source}) has both algorithm images (fm from {accounts['fm']}, blazingtext from "
        f"{accounts['blazingtext']})",
    )


# ---------------------------------------------------------------------------------------------------------
# SageMaker quotas


@dataclasses.dataclass(frozen=True)
class QuotaNeed:
    name: str  # the quota's exact name in Service Quotas (service code sagemaker)
    need: int
    why: str
    # Per instance type: a region without the quota does not offer the type. The account-wide totals are
    # only checked where the region lists them.
    instance_type: bool = True


def sagemaker_quota_needs(config: Config) -> list[QuotaNeed]:
    """What the configuration runs at its peak, per SageMaker quota.

    - Training: FM (fm_instance_count x fm_instance_type) and BlazingText (blazingtext_instance_count x
      blazingtext_instance_type) train in parallel, so each instance type needs the sum of the jobs on it
      and "Number of instances across all training jobs" needs fm_instance_count + blazingtext_instance_count
      (the spot quotas instead with use_spot_training).
      With fm_tuning ranges configured a run may tune FM: its tuning job runs max_parallel_jobs FM jobs at
      once, each on fm_instance_count instances.
    - Processing: the prep job runs alone on PREP_INSTANCE_COUNT (1) prep_instance_type, and so does the
      batch recommendations job later in the run.
    - Transform: the quality gate's Batch Transform job predicts the test rows on TRANSFORM_INSTANCE_COUNT
      (1) endpoint_instance_type.
    - Endpoints: ENDPOINTS (2) x autoscaling_max_instances x BLUE_GREEN_FLEETS (2): each endpoint may have
      scaled to its maximum when a blue/green update starts a green fleet of the same size beside it, and
      both endpoints update at once. The same figure for "Number of instances across active endpoints".
    """
    usage = "spot training job usage" if config.use_spot_training else "training job usage"
    tuning = config.fm_tuning
    fm_peak = config.fm_instance_count * (tuning.max_parallel_jobs if tuning.ranges else 1)
    jobs = (
        ("FM", config.fm_instance_type, fm_peak),
        ("BlazingText", config.blazingtext_instance_type, config.blazingtext_instance_count),
    )
    per_type: dict[str, list[tuple[str, int]]] = collections.defaultdict(list)
    for label, instance_type, count in jobs:
        per_type[instance_type].append((label, count))
    needs = [
        QuotaNeed(
            f"{instance_type} for {usage}",
            sum(count for _, count in on_type),
            " + ".join(f"{label} {count}" for label, count in on_type) + " training in parallel",
        )
        for instance_type, on_type in per_type.items()
    ]
    total_training = fm_peak + config.blazingtext_instance_count
    spot = " spot" if config.use_spot_training else ""
    needs.append(
        QuotaNeed(
            f"Number of instances across all{spot} training jobs",
            total_training,
            f"FM {fm_peak} + BlazingText {config.blazingtext_instance_count} in parallel",
            instance_type=False,
        )
    )
    processing = "the prep job, later the batch recommendations job"
    needs.append(
        QuotaNeed(f"{config.prep_instance_type} for processing job usage", PREP_INSTANCE_COUNT, processing)
    )
    needs.append(
        QuotaNeed(
            "Number of instances across all processing jobs",
            PREP_INSTANCE_COUNT,
            processing,
            instance_type=False,
        )
    )
    endpoint_peak = ENDPOINTS * config.autoscaling_max_instances * BLUE_GREEN_FLEETS
    why = (
        f"{ENDPOINTS} endpoints x autoscaling_max_instances {config.autoscaling_max_instances} x "
        f"{BLUE_GREEN_FLEETS} fleets during a blue/green update"
    )
    needs.append(QuotaNeed(f"{config.endpoint_instance_type} for endpoint usage", endpoint_peak, why))
    needs.append(
        QuotaNeed("Number of instances across active endpoints", endpoint_peak, why, instance_type=False)
    )
    transform = "the quality gate's Batch Transform of the test rows"
    needs.append(
        QuotaNeed(
            f"{config.endpoint_instance_type} for transform job usage", TRANSFORM_INSTANCE_COUNT, transform
        )
    )
    needs.append(
        QuotaNeed(
            "Number of instances across all transform jobs",
            TRANSFORM_INSTANCE_COUNT,
            transform,
            instance_type=False,
        )
    )
    return needs


def sagemaker_quota_codes(service_quotas: Any) -> dict[str, str]:
    """Every SageMaker quota of the region by exact name -> quota code (ListAWSDefaultServiceQuotas)."""
    codes: dict[str, str] = {}
    paginator = service_quotas.get_paginator("list_aws_default_service_quotas")
    for page in paginator.paginate(ServiceCode=SAGEMAKER, PaginationConfig={"PageSize": 100}):
        for quota in page.get("Quotas", []):
            codes[str(quota["QuotaName"])] = str(quota["QuotaCode"])
    return codes


def quota_value(service_quotas: Any, service_code: str, code: str) -> tuple[dict[str, Any], str]:
    """The applied value (GetServiceQuota) or, when the account has none, AWS's default."""
    try:
        quota = service_quotas.get_service_quota(ServiceCode=service_code, QuotaCode=code)["Quota"]
        return quota, "applied"
    except ClientError as error:
        if _error_code(error) != "NoSuchResourceException":
            raise
    quota = service_quotas.get_aws_default_service_quota(ServiceCode=service_code, QuotaCode=code)["Quota"]
    return quota, "AWS default"


def check_sagemaker_quotas(service_quotas: Any, config: Config, region: str) -> list[CheckResult]:
    codes = sagemaker_quota_codes(service_quotas)
    results = []
    for need in sagemaker_quota_needs(config):
        check = f"quota {need.name}"
        code = codes.get(need.name)
        if code is None and not need.instance_type:
            results.append(
                warn(check, f"not listed in {region}: not checked (needed: {need.need}, {need.why})")
            )
            continue
        if code is None:
            results.append(
                fail(
                    check,
                    f"no SageMaker quota of that name in {region}: the instance type is not offered there "
                    f"for this use (needed: {need.need}, {need.why})",
                    "choose an instance type that SageMaker offers in this region (-c ..._instance_type=...) "
                    "or another region; the names are listed by: aws service-quotas "
                    f"list-aws-default-service-quotas --service-code sagemaker --region {region}",
                )
            )
            continue
        quota, source = quota_value(service_quotas, SAGEMAKER, code)
        value = float(quota["Value"])
        found = f"need {need.need} ({need.why}), {source} value {_number(value)} ({code})"
        if value >= need.need:
            results.append(ok(check, found))
        elif quota.get("Adjustable") is False:
            results.append(
                fail(check, found, "this quota is not adjustable: lower the configuration's instance counts")
            )
        else:
            results.append(
                fail(
                    check,
                    found,
                    "aws service-quotas request-service-quota-increase --service-code sagemaker "
                    f"--quota-code {code} --desired-value {need.need} --region {region} (console: Service "
                    f"Quotas > AWS services > Amazon SageMaker > {need.name} > Request increase at account "
                    "level)",
                )
            )
    return results


# ---------------------------------------------------------------------------------------------------------
# Lambda, API Gateway


def reserved_by_deployed_stack(lambda_: Any, cloudformation: Any) -> int:
    """Concurrency the deployed stack's functions hold now (0 before the first deployment): an update
    re-reserves it, so it counts as available."""
    reserved = 0
    try:
        paginator = cloudformation.get_paginator("list_stack_resources")
        for page in paginator.paginate(StackName=STACK_NAME):
            for resource in page.get("StackResourceSummaries", []):
                if resource["ResourceType"] != "AWS::Lambda::Function" or not resource.get(
                    "PhysicalResourceId"
                ):
                    continue
                answer = lambda_.get_function_concurrency(FunctionName=resource["PhysicalResourceId"])
                reserved += int(answer.get("ReservedConcurrentExecutions", 0))
    except ClientError as error:
        # CloudFormation answers ValidationError "Stack with id Loftrec does not exist".
        if _error_code(error) == "ValidationError" and "does not exist" in str(error):
            return 0
        raise
    return reserved


def check_lambda_concurrency(lambda_: Any, cloudformation: Any, config: Config, region: str) -> CheckResult:
    check = "lambda concurrency"
    per_shim = config.serving_reserved_concurrency
    if per_shim is None:
        return ok(check, "serving_reserved_concurrency is not set: the shims use the unreserved pool")
    limits = lambda_.get_account_settings()["AccountLimit"]
    total, unreserved = int(limits["ConcurrentExecutions"]), int(limits["UnreservedConcurrentExecutions"])
    held = reserved_by_deployed_stack(lambda_, cloudformation)
    after = unreserved + held - SERVING_SHIMS * per_shim
    held_text = f" + {held} the deployed stack holds" if held else ""
    found = (
        f"{unreserved} unreserved of {total}{held_text}; reserving {SERVING_SHIMS} shims x {per_shim} leaves "
        f"{after} (AWS keeps at least {LAMBDA_UNRESERVED_FLOOR} unreserved)"
    )
    if after >= LAMBDA_UNRESERVED_FLOOR:
        return ok(check, found)
    return fail(
        check,
        found,
        "aws service-quotas request-service-quota-increase --service-code lambda --quota-code "
        f"{LAMBDA_CONCURRENCY_QUOTA} --desired-value {total + LAMBDA_UNRESERVED_FLOOR - after} --region "
        f"{region} (Concurrent executions), or deploy without reservation: "
        "-c serving_reserved_concurrency=null",
    )


def check_api_gateway_role(apigateway: Any, config: Config, account: str, region: str) -> CheckResult:
    """The account-wide API Gateway setting naming the CloudWatch Logs role (GetAccount cloudwatchRoleArn)."""
    check = "api gateway cloudwatch role"
    role = apigateway.get_account().get("cloudwatchRoleArn") or None
    mode = f"api_gateway_cloudwatch_role={config.api_gateway_cloudwatch_role}"
    if config.api_gateway_cloudwatch_role == "existing":
        if role is not None:
            return ok(check, f"the account's role is {role} ({mode})")
        return fail(
            check,
            f"{mode} but the account has no API Gateway CloudWatch Logs role (GetAccount has no "
            "cloudwatchRoleArn)",
            "create a role that apigateway.amazonaws.com may assume with the managed policy "
            "AmazonAPIGatewayPushToCloudWatchLogs, then: aws apigateway update-account --patch-operations "
            f"op=replace,path=/cloudwatchRoleArn,value=arn:aws:iam::{account}:role/ROLE_NAME --region "
            f"{region} (console: API Gateway > Settings > Logging); or let the stack own it: "
            "-c api_gateway_cloudwatch_role=create",
        )
    if role is not None:
        return warn(
            check,
            f"the account already has {role}; with {mode} the stack replaces this account-wide setting with "
            "its own role",
            "keep the account's role with -c api_gateway_cloudwatch_role=existing",
        )
    return ok(check, f"none set yet: the stack creates the role and the account setting ({mode})")


# ---------------------------------------------------------------------------------------------------------
# Docker


def check_docker(which: Which, run: Runner) -> CheckResult:
    """Docker and buildx: the prep image is a linux/amd64 DockerImageAsset built by `cdk deploy`."""
    check = "docker"
    docker = which("docker")
    if docker is None:
        return fail(
            check,
            "docker is not on PATH; cdk deploy builds the prep image (jobs/prep/Dockerfile, linux/amd64)",
            "install Docker Engine with its buildx plugin (https://docs.docker.com/engine/install/) or "
            "Docker Desktop",
        )
    buildx = run([docker, "buildx", "version"])
    if buildx.returncode != 0:
        return fail(
            check,
            f"{docker} has no buildx ({buildx.output.splitlines()[0] if buildx.output else 'no output'}); "
            "the prep image is built for --platform linux/amd64",
            "install the buildx plugin (Docker's apt repository: docker-buildx-plugin; Debian's: "
            "docker-buildx) and check with: docker buildx version",
        )
    version = buildx.output.splitlines()[0] if buildx.output else "buildx"
    return ok(check, f"{docker} with {version}")


def check_docker_daemon(which: Which, run: Runner) -> CheckResult:
    check = "docker daemon"
    docker = which("docker")
    if docker is None:
        return warn(check, "not checked: docker is not installed")
    info = run([docker, "info", "--format", "{{.ServerVersion}}"])
    if info.returncode != 0 or not info.output:
        return warn(
            check,
            "docker info does not answer: the daemon is not running or this user may not reach it",
            "start it before make deploy (sudo systemctl start docker, or open Docker Desktop)",
        )
    return ok(check, f"docker info answers (server {info.output.splitlines()[-1]})")


# ---------------------------------------------------------------------------------------------------------
# S3 raw data, CDK bootstrap


def _is_review_file(key: str) -> bool:
    name = key.rsplit("/", 1)[-1]
    return name.endswith(RAW_SUFFIXES) and not name.startswith(".")


def check_raw_data(s3: Any, config: Config) -> CheckResult:
    check = "raw data"
    uri = config.raw_data_uri
    if uri is None:
        return fail(
            check,
            "raw_data_uri is not set: the pipeline has nothing to train on",
            "make preflight RAW_DATA_URI=s3://BUCKET/PREFIX/ (a prefix of .tsv/.tsv.gz review files), as for "
            "make deploy",
        )
    bucket = config.raw_data_bucket or ""
    prefix = uri[len(f"s3://{bucket}/") :]
    empty: list[str] = []
    listed, truncated = 0, False
    try:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for number, page in enumerate(pages, start=1):
            for item in page.get("Contents", []):
                listed += 1
                if not _is_review_file(str(item["Key"])):
                    continue
                if int(item["Size"]) > 0:
                    return ok(check, f"s3://{bucket}/{item['Key']} ({int(item['Size']):,} bytes) under {uri}")
                empty.append(str(item["Key"]))
            if number >= MAX_LIST_PAGES:
                truncated = True
                break
    except ClientError as error:
        code = _error_code(error)
        if code in ("AccessDenied", "AllAccessDisabled", "AccessDeniedException"):
            return fail(
                check,
                f"access denied listing bucket {bucket} (prefix {prefix or '/'}) with these credentials",
                f"allow s3:ListBucket on arn:aws:s3:::{bucket} (IAM policy, and the bucket policy if the "
                f"bucket is another account's); check with: aws s3 ls {uri}",
            )
        if code == "NoSuchBucket":
            return fail(
                check,
                f"bucket {bucket} does not exist",
                "correct raw_data_uri (RAW_DATA_URI=s3://BUCKET/PREFIX/)",
            )
        raise
    upload = (
        f"upload the reviews (aws s3 cp reviews.tsv.gz {uri}) or point RAW_DATA_URI at the prefix that "
        "holds them"
    )
    if empty:
        return fail(
            check,
            f"{len(empty)} .tsv/.tsv.gz object(s) under {uri}, all empty (zero bytes), e.g. "
            f"s3://{bucket}/{empty[0]}",
            upload,
        )
    scope = f"in the first {listed:,} objects" if truncated else f"({listed} objects)"
    return fail(check, f"no .tsv or .tsv.gz object under {uri} {scope}", upload)


def check_bootstrap(ssm: Any, cloudformation: Any, account: str, region: str) -> CheckResult:
    """The SSM parameter every synthesized template reads (BootstrapVersion); the CDKToolkit stack's
    BootstrapVersion output when the parameter cannot be read."""
    check = "cdk bootstrap"
    bootstrap = f"npx cdk bootstrap aws://{account}/{region} (after make install)"
    denied = ""
    try:
        version = str(ssm.get_parameter(Name=BOOTSTRAP_PARAMETER)["Parameter"]["Value"])
        source = f"{BOOTSTRAP_PARAMETER} = {version}"
    except ClientError as error:
        code = _error_code(error)
        if code not in ("ParameterNotFound", "AccessDeniedException"):
            raise
        stack_version = _toolkit_stack_version(cloudformation)
        if code == "ParameterNotFound":
            why = (
                f"the {BOOTSTRAP_STACK} stack exists but {BOOTSTRAP_PARAMETER} does not (bootstrapped with "
                "another qualifier?)"
                if stack_version is not None
                else f"not bootstrapped: no {BOOTSTRAP_PARAMETER} and no {BOOTSTRAP_STACK} stack"
            )
            return fail(check, f"{why} in {account}/{region}", bootstrap)
        if stack_version is None:
            return fail(
                check,
                f"{BOOTSTRAP_PARAMETER} is not readable (ssm:GetParameter denied) and there is no "
                f"{BOOTSTRAP_STACK} stack",
                bootstrap,
            )
        version, source = stack_version, f"{BOOTSTRAP_STACK} stack output BootstrapVersion = {stack_version}"
        denied = " (ssm:GetParameter denied to these credentials; cdk deploy's roles read it)"
    if not version.isdigit() or int(version) < MIN_BOOTSTRAP_VERSION:
        return fail(
            check, f"{source}: the templates need version {MIN_BOOTSTRAP_VERSION} or later", bootstrap
        )
    return ok(check, f"{source}{denied}")


def _toolkit_stack_version(cloudformation: Any) -> str | None:
    try:
        stacks = cloudformation.describe_stacks(StackName=BOOTSTRAP_STACK)["Stacks"]
    except ClientError as error:
        if _error_code(error) == "ValidationError":
            return None
        raise
    for output in stacks[0].get("Outputs", []) if stacks else []:
        if output.get("OutputKey") == "BootstrapVersion":
            return str(output["OutputValue"])
    return "unknown" if stacks else None


# ---------------------------------------------------------------------------------------------------------
# The run


def _guard(
    check: str, permission: str, run: Callable[[], CheckResult | list[CheckResult]]
) -> list[CheckResult]:
    """A check that an unexpected AWS answer interrupts reports it as its own FAIL line."""
    try:
        result = run()
    except ClientError as error:
        return [
            fail(
                check,
                f"{error.operation_name} failed: {_error_code(error)}: "
                f"{error.response.get('Error', {}).get('Message', '')}",
                f"allow {permission} to these credentials, or retry if AWS was throttling",
            )
        ]
    except BotoCoreError as error:
        return [
            fail(check, f"the AWS call failed: {error}", "check the network and the credentials, then retry")
        ]
    return result if isinstance(result, list) else [result]


AWS_CHECKS = ("quotas", "lambda concurrency", "api gateway cloudwatch role", "raw data", "cdk bootstrap")


def run_checks(
    config: Config,
    *,
    region: str | None,
    region_source: str,
    clients: Callable[[str], Clients],
    which: Which,
    run: Runner,
    images: Mapping[str, Any],
) -> list[CheckResult]:
    """Every check in order. `clients(region)` makes the AWS clients, once, when there is a region."""
    results = [
        check_region(region, region_source, images),
        check_docker(which, run),
        check_docker_daemon(which, run),
    ]
    if region is None:
        return [*results, *(_not_checked(name, "no region") for name in ("account", *AWS_CHECKS))]
    aws = clients(region)
    identity, account = check_account(aws.sts, config)
    results.append(identity)
    if account is None:
        return [*results, *(_not_checked(name, "see the account check") for name in AWS_CHECKS)]
    results += _guard(
        "quotas",
        "servicequotas:ListAWSDefaultServiceQuotas, servicequotas:GetServiceQuota and "
        "servicequotas:GetAWSDefaultServiceQuota",
        lambda: check_sagemaker_quotas(aws.service_quotas, config, region),
    )
    results += _guard(
        "lambda concurrency",
        "lambda:GetAccountSettings, lambda:GetFunctionConcurrency and cloudformation:ListStackResources",
        lambda: check_lambda_concurrency(aws.lambda_, aws.cloudformation, config, region),
    )
    results += _guard(
        "api gateway cloudwatch role",
        f"apigateway:GET on arn:aws:apigateway:{region}::/account",
        lambda: check_api_gateway_role(aws.apigateway, config, account, region),
    )
    results += _guard("raw data", "s3:ListBucket", lambda: check_raw_data(aws.s3, config))
    results += _guard(
        "cdk bootstrap",
        "ssm:GetParameter and cloudformation:DescribeStacks",
        lambda: check_bootstrap(aws.ssm, aws.cloudformation, account, region),
    )
    return results


def _not_checked(check: str, reason: str) -> CheckResult:
    return fail(check, f"not checked ({reason})", "fix the checks above, then run make preflight again")


def summary(results: Sequence[CheckResult]) -> str:
    blocking = sum(result.blocks for result in results)
    warnings = sum(result.status == "WARN" for result in results)
    tail = f", {warnings} warning{'s' if warnings != 1 else ''}"
    if blocking:
        verb = "check blocks" if blocking == 1 else "checks block"
        return f"preflight: {blocking} {verb} deployment{tail}"
    return f"preflight: nothing blocks deployment{tail}"


# ---------------------------------------------------------------------------------------------------------
# Command line


class ArgumentError(ValueError):
    """A command-line argument is not usable; the message is one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ArgumentError(message)


def parse_args(argv: Sequence[str]) -> tuple[dict[str, str], str | None]:
    """`-c key=value` (as the CDK CLI takes them, so CDK_ARGS passes through) and `--profile NAME`."""
    parser = _Parser(
        prog="python -m tools.preflight", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--profile", default=None, help="AWS profile (default: the usual credential chain)")
    args = parser.parse_args(list(argv))
    overrides: dict[str, str] = {}
    for item in args.context:
        key, separator, value = str(item).partition("=")
        if not separator or not key:
            raise ArgumentError(f"-c {item!r} is not allowed: -c takes key=value")
        overrides[key] = value
    return overrides, args.profile


def load_target_config(overrides: Mapping[str, str]) -> Config:
    """cdk.json's context with -c overrides, read by the same load_config as app.py."""
    return load_config({**cdk_json_context(), **overrides})


def _session(profile: str | None) -> Any:
    import boto3  # noqa: PLC0415 -- only the command needs it; importing this module stays light

    return boto3.Session(profile_name=profile)


def main(
    argv: Sequence[str] | None = None,
    *,
    session_factory: Callable[[str | None], Any] = _session,
    which: Which = shutil.which,
    run: Runner = run_command,
    out: Callable[[str], None] = print,
) -> int:
    try:
        overrides, profile = parse_args(sys.argv[1:] if argv is None else argv)
        config = load_target_config(overrides)
    except ArgumentError as error:
        out(f"preflight: bad arguments: {error}")
        return 2
    except ConfigError as error:
        out(f"loftrec: invalid configuration: {error}")
        return 2
    try:
        session = session_factory(profile)
    except BotoCoreError as error:  # e.g. ProfileNotFound
        out(f"preflight: bad arguments: {error}")
        return 2
    region, source = resolve_region(config, session.region_name)
    results = run_checks(
        config,
        region=region,
        region_source=source,
        clients=lambda name: make_clients(session, name),
        which=which,
        run=run,
        images=json.loads(ALGORITHM_IMAGES.read_text()),
    )
    for line in _lines(results):
        out(line)
    return 1 if any(result.blocks for result in results) else 0


def _lines(results: Sequence[CheckResult]) -> Iterator[str]:
    yield from (result.line() for result in results)
    yield summary(results)


if __name__ == "__main__":
    sys.exit(main())
