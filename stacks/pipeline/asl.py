"""The Amazon States Language in its own terms: the few shapes of state the retraining pipeline is made of.

Every AWS call is a CustomState whose Parameters are the API's request, member for member as the service
model names it (Step Functions' optimized and SDK integrations both take the API's own names), so that
tests/stacks/asl.py can validate each task against botocore. Every task retries the transient errors in
RETRYABLE; what is not retried goes to the Catch the pipeline routes it to.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import Aws, Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

# Errors worth retrying: throttling and transient service errors. Everything else is caught and notified at
# once, SageMaker's quota error above all: SageMaker.ResourceLimitExceededException ("The account-level
# service limit 'ml.p3.2xlarge for training job usage' is 0 Instances, ...") does not go away in minutes,
# and its message, which names the quota, reaches the failure notification as the error's cause.
RETRYABLE = [
    "ThrottlingException",
    "SageMaker.ThrottlingException",
    "SageMaker.AmazonSageMakerException",
    "ApplicationAutoScaling.ConcurrentUpdateException",
    "Lambda.TooManyRequestsException",
    "Lambda.ServiceException",
    "Lambda.SdkClientException",
    "S3.SlowDownException",
]
ENDPOINT_BUSY = "EndpointBusyError"
"""What the endpoint Lambdas raise while an endpoint is Creating or Updating (lambdas.pipeline.endpoints)."""
EXECUTION_CONSOLE = (
    f"https://{Aws.REGION}.console.aws.amazon.com/states/home?region={Aws.REGION}#/v2/executions/details/"
)
"""The Step Functions console page of an execution, followed by its ARN."""


def integration(name: str) -> str:
    """The Resource of a service integration, e.g. integration("sagemaker:createTrainingJob.sync")."""
    return f"arn:{Aws.PARTITION}:states:::{name}"


def sdk(service: str, action: str) -> str:
    """The Resource of an AWS SDK integration, e.g. sdk("applicationautoscaling", "putScalingPolicy")."""
    return integration(f"aws-sdk:{service}:{action}")


def task(
    scope: Construct,
    name: str,
    resource: str,
    parameters: dict[str, Any],
    *,
    result_selector: dict[str, Any] | None = None,
    result_path: str | None = None,
    output_path: str | None = None,
) -> sfn.CustomState:
    """A Task state calling `resource` with `parameters`; its (selected) result lands at `result_path`, or
    nowhere when that is None (the state passes its input on)."""
    state: dict[str, Any] = {"Type": "Task", "Resource": resource, "Parameters": parameters}
    if result_selector is not None:
        state["ResultSelector"] = result_selector
    # A Python None would vanish on its way through jsii; JsonPath.DISCARD is the token CDK renders as null.
    state["ResultPath"] = sfn.JsonPath.DISCARD if result_path is None else result_path
    if output_path is not None:
        state["OutputPath"] = output_path
    custom = sfn.CustomState(scope, name, state_json=state)
    custom.add_retry(errors=RETRYABLE, interval=Duration.seconds(10), max_attempts=4, backoff_rate=2.0)
    return custom


def invoke(
    scope: Construct,
    name: str,
    function: lambda_.IFunction,
    payload: dict[str, Any],
    *,
    result_path: str | None,
    key: str = "value",
) -> sfn.CustomState:
    """Invoke a function with `payload` as its event; its answer lands at `result_path`.`key`."""
    return task(
        scope,
        name,
        integration("lambda:invoke"),
        {"FunctionName": function.function_arn, "Payload": payload},
        result_selector={f"{key}.$": "$.Payload"},
        result_path=result_path,
    )


def retry_while_endpoint_busy(state: sfn.CustomState) -> None:
    """An endpoint that is Creating or Updating takes no change: try again every minute or more, at most about
    two hours in all (an endpoint deployment takes minutes; a blue/green update up to its 3600 s timeout)."""
    state.add_retry(
        errors=[ENDPOINT_BUSY],
        interval=Duration.minutes(1),
        max_attempts=30,
        backoff_rate=1.2,
        max_delay=Duration.minutes(5),
    )


def notify(
    scope: Construct, name: str, *, topic: sns.ITopic, subject: str, text: str, values: Sequence[str]
) -> sfn.CustomState:
    """Publish `text` to the topic, its {} filled from `values` (JSONPaths) and followed by a link to the
    execution in the console."""
    if "'" in text:
        raise ValueError(f"a notification's text goes into a States.Format string: no ' in {text!r}")
    message = (
        f"States.Format('{text} Execution: {EXECUTION_CONSOLE}{{}}', {', '.join(values)}, $$.Execution.Id)"
    )
    return task(
        scope,
        name,
        integration("sns:publish"),
        {"TopicArn": topic.topic_arn, "Subject": subject, "Message.$": message},
    )
