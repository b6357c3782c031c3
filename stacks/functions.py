"""loftrec's Lambda functions share one shape: Python on arm64, one code asset (lambdas/, the run contract and
fm/ with FM's formats and math, under the import paths they have in the repository), Powertools for logs and
metrics from a layer, X-Ray on, a log group with retention. `python_function` is that shape; the constructs
add what differs.

The layers hold what the Lambda runtime lacks, unpacked by `make install` from the pinned wheels for the
runtime's platform (Python 3.14, arm64): Powertools (with typing_extensions) for every function, numpy for the
functions that compute with vectors. Each layer is created once per stack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from aws_cdk import Duration, IgnoreMode, RemovalPolicy, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.nag import acknowledge

ROOT = Path(__file__).resolve().parent.parent
# The asset holds these folders of the repository and nothing else (Docker ignore-file semantics).
LAMBDA_ASSET_FOLDERS = ("lambdas", "contract", "fm")
RUNTIME = lambda_.Runtime.PYTHON_3_14
LAYERS = ROOT / "build" / "layers"
# The package each layer must hold (under python/), and what it is for.
LAYER_PACKAGES = {
    "powertools": ("aws_lambda_powertools", "Powertools for AWS Lambda: structured logs, EMF metrics"),
    "numpy": ("numpy", "numpy: the title-vector search and FM scoring"),
}
METRICS_NAMESPACE = "loftrec"
Service = Literal["serving", "pipeline"]


def dependency_layer(scope: Construct, name: str) -> lambda_.ILayerVersion:
    """The stack's layer `name` (a key of LAYER_PACKAGES), created on first use."""
    stack = Stack.of(scope)
    construct_id = f"{name.title()}Layer"
    existing = stack.node.try_find_child(construct_id)
    if isinstance(existing, lambda_.LayerVersion):
        return existing
    package, description = LAYER_PACKAGES[name]
    folder = LAYERS / name
    if not (folder / "python" / package).is_dir():
        raise FileNotFoundError(f"{folder} holds no {package}: run `make install` to build the Lambda layers")
    return lambda_.LayerVersion(
        stack,
        construct_id,
        code=lambda_.Code.from_asset(str(folder)),
        compatible_runtimes=[RUNTIME],
        compatible_architectures=[lambda_.Architecture.ARM_64],
        description=f"loftrec: {description}",
    )


def code_asset(folders: tuple[str, ...]) -> list[str]:
    """The exclude patterns of an asset staged from the repository root that keeps only `folders`."""
    return ["*", *(f"!{folder}/" for folder in folders), "**/__pycache__", "**/*.pyc"]


def python_function(
    scope: Construct,
    construct_id: str,
    *,
    handler: str,
    description: str,
    service: Service,
    environment: dict[str, str],
    timeout: Duration,
    memory_size: int,
    numpy: bool = False,
    reserved_concurrent_executions: int | None = None,
    extra_wildcard_reason: str = "",
) -> lambda_.Function:
    """A function whose handler is a dotted path from the repository root (e.g.
    "lambdas.serving.handlers.predict_handler"); its logs and metrics name `service` (loftrec-<service>)."""
    layers = [dependency_layer(scope, "powertools")]
    if numpy:
        layers.append(dependency_layer(scope, "numpy"))
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
        environment={
            **environment,
            "POWERTOOLS_SERVICE_NAME": f"loftrec-{service}",
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
        },
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
