"""Alarms (the blue/green rollback alarms among them), notifications and the dashboard."""

from __future__ import annotations

import json

from aws_cdk import assertions
from aws_cdk.assertions import Match

from tests.stacks.conftest import synth_template


def test_endpoint_alarms_that_deployments_roll_back_on(template: assertions.Template) -> None:
    for endpoint in ("loftrec-fm", "loftrec-blazingtext"):
        dimensions = [
            {"Name": "EndpointName", "Value": endpoint},
            {"Name": "VariantName", "Value": "AllTraffic"},
        ]
        template.has_resource_properties(
            "AWS::CloudWatch::Alarm",
            {
                "AlarmName": f"{endpoint}-invocation-5xx",
                "MetricName": "Invocation5XXErrors",
                "Namespace": "AWS/SageMaker",
                "Dimensions": dimensions,
            },
        )
        template.has_resource_properties(
            "AWS::CloudWatch::Alarm",
            {
                "AlarmName": f"{endpoint}-model-latency-p99",
                "MetricName": "ModelLatency",
                "ExtendedStatistic": "p99",
                "Dimensions": dimensions,
            },
        )


def test_shim_api_and_pipeline_alarms_notify(template: assertions.Template) -> None:
    alarms = template.find_resources("AWS::CloudWatch::Alarm")
    metrics = sorted(a["Properties"].get("MetricName", "") for a in alarms.values())
    assert metrics.count("Errors") == 3  # one per shim
    assert metrics.count("Throttles") == 3
    assert metrics.count("5XXError") == 1
    assert metrics.count("ExecutionsFailed") == 1
    for alarm in alarms.values():
        [action] = alarm["Properties"]["AlarmActions"]
        assert action["Ref"].startswith("NotificationsTopic")


def test_dashboard_shows_pipeline_endpoints_and_shims(template: assertions.Template) -> None:
    dashboards = template.find_resources("AWS::CloudWatch::Dashboard")
    assert len(dashboards) == 1
    (dashboard,) = dashboards.values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for needle in ("ExecutionsFailed", "Invocations", "ModelLatency", "Duration", "Errors", "5XXError"):
        assert needle in body


def test_topic_is_encrypted_tls_only_and_mails_when_configured() -> None:
    template = synth_template(notification_email="ops@example.com")
    template.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})
    template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
                        )
                    ]
                )
            }
        },
    )
    template.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "ops@example.com"}
    )


def test_no_subscription_without_an_address(template: assertions.Template) -> None:
    template.resource_count_is("AWS::SNS::Subscription", 0)


def test_the_dashboard_name_is_unique_per_stack_and_region(template: assertions.Template) -> None:
    # Dashboards are global per account: the stack in a second region must not reuse the first's name.
    (dashboard,) = template.find_resources("AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == {
        "Fn::Join": ["", [{"Ref": "AWS::StackName"}, "-", {"Ref": "AWS::Region"}]]
    }
