"""Alarms on the endpoints: the ones blue/green deployments roll back on, and the ones operators watch."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_sns as sns
from constructs import Construct

VARIANT = "AllTraffic"
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
            dimensions = {"EndpointName": endpoint, "VariantName": VARIANT}
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
