"""loftrec's Lambda functions share one shape: Python on arm64, one code asset (lambdas/ and the run contract,
under the import paths they have in the repository), X-Ray on, a log group with retention. `python_function`
is that shape; the constructs add what differs."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, IgnoreMode, RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.nag import acknowledge

ROOT = Path(__file__).resolve().parent.parent
# The asset holds these folders of the repository and nothing else (Docker ignore-file semantics).
LAMBDA_ASSET_FOLDERS = ("lambdas", "contract")
RUNTIME = lambda_.Runtime.PYTHON_3_14


def code_asset(folders: tuple[str, ...]) -> list[str]:
    """The exclude patterns of an asset staged from the repository root that keeps only `folders`."""
    return ["*", *(f"!{folder}/" for folder in folders), "**/__pycache__", "**/*.pyc"]


def python_function(
    scope: Construct,
    construct_id: str,
    *,
    handler: str,
    description: str,
    environment: dict[str, str],
    timeout: Duration,
    memory_size: int,
    layers: list[lambda_.ILayerVersion] | None = None,
    reserved_concurrent_executions: int | None = None,
    extra_wildcard_reason: str = "",
) -> lambda_.Function:
    """A function whose handler is a dotted path from the repository root (e.g.
    "lambdas.serving.handlers.predict_handler")."""
    function = lambda_.Function(
        scope,
        construct_id,
        runtime=RUNTIME,
        architecture=lambda_.Architecture.ARM_64,
        handler=handler,
        code=lambda_.Code.from_asset(
            str(ROOT), exclude=code_asset(LAMBDA_ASSET_FOLDERS), ignore_mode=IgnoreMode.DOCKER
        ),
        description=f"loftrec: {description}",
        environment=environment,
        timeout=timeout,
        memory_size=memory_size,
        layers=layers,
        reserved_concurrent_executions=reserved_concurrent_executions,
        tracing=lambda_.Tracing.ACTIVE,
        log_group=logs.LogGroup(
            scope,
            f"{construct_id}Logs",
            retention=logs.RetentionDays.THREE_MONTHS,
            removal_policy=RemovalPolicy.DESTROY,
        ),
    )
    role = function.role
    assert role is not None
    acknowledge(
        role,
        "AwsSolutions-IAM5[Resource::*]",
        "X-Ray tracing: xray:PutTraceSegments and PutTelemetryRecords take no resource."
        + extra_wildcard_reason,
    )
    acknowledge(
        function,
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
        "The AWS-managed basic execution policy only lets the function write its own logs.",
    )
    return function
