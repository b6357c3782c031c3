"""Alarms on the endpoints: the ones blue/green deployments roll back on, and the ones operators watch."""

from __future__ import annotations

from aws_cdk import Aws, Duration
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from contract.algorithms import VARIANT_NAME

# p99 model latency above this, for 3 minutes, rolls a deployment back and pages.
MODEL_LATENCY_P99_MICROSECONDS = 500_000


class EndpointAlarms(Construct):
    """Per endpoint: Invocation5XXErrors and ModelLatency p99. Endpoints are created by the pipeline at run
    time with fixed names, so the alarms can exist before the endpoints do (no data: not breaching)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, endpoint_names: dict[str, str], topic: sns.ITopic
    ) -> None:
        super().__init__(scope, construct_id)
        self.alarms: dict[str, list[cloudwatch.IAlarm]] = {}
        for key, endpoint in endpoint_names.items():
            dimensions = {"EndpointName": endpoint, "VariantName": VARIANT_NAME}
            errors = cloudwatch.Alarm(
                self,
                f"{key}Errors",
                alarm_name=f"{endpoint}-invocation-5xx",
                alarm_description=f"{endpoint} answers with 5xx errors",
                metric=cloudwatch.Metric(
                    namespace="AWS/SageMaker",
                    metric_name="Invocation5XXErrors",
                    dimensions_map=dimensions,
                    statistic="Sum",
                    period=Duration.minutes(1),
                ),
                threshold=1,
                evaluation_periods=2,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            latency = cloudwatch.Alarm(
                self,
                f"{key}Latency",
                alarm_name=f"{endpoint}-model-latency-p99",
                alarm_description=f"{endpoint}: p99 model latency above {MODEL_LATENCY_P99_MICROSECONDS} us",
                metric=cloudwatch.Metric(
                    namespace="AWS/SageMaker",
                    metric_name="ModelLatency",
                    dimensions_map=dimensions,
                    statistic="p99",
                    period=Duration.minutes(1),
                ),
                threshold=MODEL_LATENCY_P99_MICROSECONDS,
                evaluation_periods=3,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            for alarm in (errors, latency):
                alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))
            self.alarms[key] = [errors, latency]


class OperationsDashboard(Construct):
    """Alarms on the shims and the API, and one dashboard: pipeline executions, endpoint invocations and
    latency, the shims' errors and duration."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        topic: sns.ITopic,
        functions: dict[str, lambda_.IFunction],
        api: apigateway.RestApi,
        state_machine: sfn.IStateMachine,
        endpoint_names: dict[str, str],
    ) -> None:
        super().__init__(scope, construct_id)
        five_minutes = Duration.minutes(5)
        self.alarms: list[cloudwatch.Alarm] = []
        for name, function in functions.items():
            for kind, metric in (
                ("Errors", function.metric_errors(period=five_minutes, statistic="Sum")),
                ("Throttles", function.metric_throttles(period=five_minutes, statistic="Sum")),
            ):
                self.alarms.append(
                    cloudwatch.Alarm(
                        self,
                        f"{name}{kind}",
                        alarm_description=f"loftrec's {name} shim: {kind.lower()}",
                        metric=metric,
                        threshold=1,
                        evaluation_periods=1,
                        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                    )
                )
        self.alarms.append(
            cloudwatch.Alarm(
                self,
                "Api5xx",
                alarm_description="loftrec's API answers with 5xx errors",
                metric=api.metric_server_error(period=five_minutes, statistic="Sum"),
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        )
        for alarm in self.alarms:
            alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))

        def endpoint_metric(endpoint: str, metric: str, statistic: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace="AWS/SageMaker",
                metric_name=metric,
                dimensions_map={"EndpointName": endpoint, "VariantName": VARIANT_NAME},
                statistic=statistic,
                period=five_minutes,
                label=f"{endpoint} {metric} {statistic}",
            )

        # "All dashboards in your account are global, not region-specific"
        # (https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-cloudwatch-dashboard.html):
        # a fixed name would collide with the same stack's dashboard in another region of the account.
        self.dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=f"{Aws.STACK_NAME}-{Aws.REGION}"
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Retraining executions",
                left=[
                    state_machine.metric_started(period=Duration.hours(1), statistic="Sum"),
                    state_machine.metric_succeeded(period=Duration.hours(1), statistic="Sum"),
                    state_machine.metric_failed(period=Duration.hours(1), statistic="Sum"),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Endpoint invocations",
                left=[endpoint_metric(e, "Invocations", "Sum") for e in endpoint_names.values()],
                right=[endpoint_metric(e, "Invocation5XXErrors", "Sum") for e in endpoint_names.values()],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Endpoint model latency (us)",
                left=[endpoint_metric(e, "ModelLatency", "p50") for e in endpoint_names.values()]
                + [endpoint_metric(e, "ModelLatency", "p99") for e in endpoint_names.values()],
                width=8,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Shim errors and throttles",
                left=[f.metric_errors(period=five_minutes, statistic="Sum") for f in functions.values()]
                + [f.metric_throttles(period=five_minutes, statistic="Sum") for f in functions.values()],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Shim duration (ms)",
                left=[f.metric_duration(period=five_minutes, statistic="p50") for f in functions.values()]
                + [f.metric_duration(period=five_minutes, statistic="p99") for f in functions.values()],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="API requests and errors",
                left=[api.metric_count(period=five_minutes, statistic="Sum")],
                right=[
                    api.metric_client_error(period=five_minutes, statistic="Sum"),
                    api.metric_server_error(period=five_minutes, statistic="Sum"),
                ],
                width=8,
            ),
        )
