"""The calls AWS makes as a role because of how a resource is configured: API Gateway's logs."""

from __future__ import annotations

from typing import Any

from tools.iam import documented
from tools.iam.inventory import platform_invocations
from tools.iam.template import Template

ROLE = {"Fn::GetAtt": ["CloudWatchRole", "Arn"]}


def _document(*, account: bool, logging_level: str = "ERROR") -> dict[str, Any]:
    resources: dict[str, Any] = {
        "CloudWatchRole": {"Type": "AWS::IAM::Role", "Properties": {}},
        "AccessLogs": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": "access"}},
        "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {}},
        "Stage": {
            "Type": "AWS::ApiGateway::Stage",
            "Properties": {
                "RestApiId": {"Ref": "Api"},
                "StageName": "v1",
                "AccessLogSetting": {"DestinationArn": {"Fn::GetAtt": ["AccessLogs", "Arn"]}},
                "MethodSettings": [{"HttpMethod": "*", "ResourcePath": "/*", "LoggingLevel": logging_level}],
            },
        },
    }
    if account:
        resources["Account"] = {"Type": "AWS::ApiGateway::Account", "Properties": {"CloudWatchRoleArn": ROLE}}
    return {"Resources": resources}


def _calls(document: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (i.principal.rsplit("/", 1)[1], i.call.operation, i.call.params["logGroupName"])
        for i in platform_invocations(Template(document))
        if i.source == documented.API_GATEWAY_LOGS.url
    ]


def test_the_accounts_role_writes_the_access_and_the_execution_logs() -> None:
    execution = "API-Gateway-Execution-Logs_api/v1"
    assert _calls(_document(account=True)) == [
        ("CloudWatchRole", "DescribeLogStreams", "access"),
        ("CloudWatchRole", "CreateLogStream", "access"),
        ("CloudWatchRole", "PutLogEvents", "access"),
        ("CloudWatchRole", "CreateLogGroup", execution),
        ("CloudWatchRole", "DescribeLogStreams", execution),
        ("CloudWatchRole", "CreateLogStream", execution),
        ("CloudWatchRole", "PutLogEvents", execution),
    ]


def test_execution_logging_off_writes_access_logs_only() -> None:
    assert {group for _, _, group in _calls(_document(account=True, logging_level="OFF"))} == {"access"}


def test_without_the_account_setting_in_the_template_the_role_is_the_accounts_own() -> None:
    assert _calls(_document(account=False)) == []
