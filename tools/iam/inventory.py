"""Every AWS call the system makes, with the role it makes it as.

1. The state machine's Task states, as its role (tools/iam/states.py, with a sample execution's values).
2. The calls AWS makes as a role because of how a resource is configured: Lambda's logs and traces, the
   state machine's log delivery and traces, EventBridge starting a target, API Gateway writing a stage's
   logs (tools/iam/documented.py).
3. The boto3 calls each Lambda function made in the tests, recorded (tools/iam/recorder.py) and stored as a
   deterministic inventory; the function's Handler names its role in the template.
4. What SageMaker does as the execution role is derived from the calls that pass it (tools/iam/required.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from . import documented
from .recorder import substitute
from .required import Call, Invocation
from .states import task_calls
from .template import Template


def state_machine_invocations(template: Template, state: Any, context: Any) -> Iterator[Invocation]:
    machine_id = template.state_machine_id()
    role = template.resolve(template.properties(machine_id)["RoleArn"])
    for task in task_calls(template.definition(), state, context):
        yield Invocation(role, task.call, f"state {task.state!r} of {machine_id}")


def function_roles(template: Template) -> dict[str, tuple[str, str]]:
    """Function logical id -> (Handler, role ARN)."""
    return {
        logical_id: (str(body["Properties"]["Handler"]), str(template.resolve(body["Properties"]["Role"])))
        for logical_id, body in template.of_type("AWS::Lambda::Function").items()
    }


def platform_invocations(template: Template) -> Iterator[Invocation]:
    yield from _lambda_platform(template)
    yield from _state_machine_platform(template)
    yield from _event_targets(template)
    yield from _api_gateway_logs(template)


def _lambda_platform(template: Template) -> Iterator[Invocation]:
    for logical_id, body in template.of_type("AWS::Lambda::Function").items():
        properties = body["Properties"]
        role = template.resolve(properties["Role"])
        group = properties.get("LoggingConfig", {}).get("LogGroup")
        name = template.resolve(group) if group is not None else f"/aws/lambda/{logical_id}"
        stream = "2024/01/01/[$LATEST]00000000000000000000000000000000"
        for operation in ("CreateLogStream", "PutLogEvents"):
            yield Invocation(
                role,
                Call("logs", operation, {"logGroupName": name, "logStreamName": stream}),
                f"Lambda for {logical_id}",
                documented.LAMBDA_LOGS.url,
            )
        if properties.get("TracingConfig", {}).get("Mode") == "Active":
            for operation in ("PutTraceSegments", "PutTelemetryRecords"):
                yield Invocation(
                    role, Call("xray", operation), f"Lambda for {logical_id}", documented.LAMBDA_XRAY.url
                )


def _state_machine_platform(template: Template) -> Iterator[Invocation]:
    for logical_id, body in template.of_type("AWS::StepFunctions::StateMachine").items():
        properties = body["Properties"]
        role = template.resolve(properties["RoleArn"])
        rows = []
        if properties.get("LoggingConfiguration", {}).get("Destinations"):
            rows.append((documented.STEP_FUNCTIONS_LOGGING, f"log delivery of {logical_id}"))
        if properties.get("TracingConfiguration", {}).get("Enabled"):
            rows.append((documented.STEP_FUNCTIONS_XRAY, f"tracing of {logical_id}"))
        for row, origin in rows:
            for action in row.actions:
                service, operation = action.split(":")
                yield Invocation(
                    role, Call("logs" if service == "logs" else "xray", operation), origin, row.url
                )


def _api_gateway_logs(template: Template) -> Iterator[Invocation]:
    """The calls API Gateway makes as the role the template's account setting names (none without one: the
    account's own role is then outside the template)."""
    accounts = template.of_type("AWS::ApiGateway::Account")
    roles = [template.resolve(body["Properties"]["CloudWatchRoleArn"]) for body in accounts.values()]
    if len(roles) > 1:
        raise ValueError(f"{len(roles)} AWS::ApiGateway::Account resources: one account setting per region")
    if not roles:
        return
    row = documented.API_GATEWAY_LOGS
    for logical_id, body in template.of_type("AWS::ApiGateway::Stage").items():
        properties = body["Properties"]
        groups = []
        destination = properties.get("AccessLogSetting", {}).get("DestinationArn")
        if destination is not None:
            groups.append(str(template.resolve(destination)).split(":log-group:", 1)[1].removesuffix(":*"))
        levels = {setting.get("LoggingLevel") for setting in properties.get("MethodSettings", [])}
        if levels & {"ERROR", "INFO"}:
            api = template.resolve(properties["RestApiId"])
            groups.append(f"API-Gateway-Execution-Logs_{api}/{properties['StageName']}")
        for group in groups:
            operations = ["CreateLogGroup"] if group.startswith("API-Gateway-Execution-Logs_") else []
            for operation in [*operations, "DescribeLogStreams"]:
                yield Invocation(
                    roles[0],
                    Call("logs", operation, {"logGroupName": group}),
                    f"logs of {logical_id}",
                    row.url,
                )
            stream = "0123456789abcdef0123456789abcdef"
            for operation in ("CreateLogStream", "PutLogEvents"):
                yield Invocation(
                    roles[0],
                    Call("logs", operation, {"logGroupName": group, "logStreamName": stream}),
                    f"logs of {logical_id}",
                    row.url,
                )


def _event_targets(template: Template) -> Iterator[Invocation]:
    for logical_id, body in template.of_type("AWS::Events::Rule").items():
        for target in body["Properties"].get("Targets", []):
            if "RoleArn" not in target:
                continue
            arn = template.resolve(target["Arn"])
            if ":states:" not in arn:
                raise ValueError(f"{logical_id}: no documented call for a target {arn} with a role")
            yield Invocation(
                template.resolve(target["RoleArn"]),
                Call("stepfunctions", "StartExecution", {"stateMachineArn": arn}),
                f"EventBridge rule {logical_id}",
                documented.EVENTBRIDGE_TARGET_ROLE.url,
            )


def recorded_invocations(
    template: Template, entries: list[dict[str, Any]], symbols: Mapping[str, str]
) -> Iterator[Invocation]:
    """The stored inventory's calls as made by each function whose Handler recorded them."""
    roles: dict[str, list[tuple[str, str]]] = {}
    for logical_id, (handler, role) in function_roles(template).items():
        roles.setdefault(handler, []).append((logical_id, role))
    for entry in entries:
        handler = entry["handler"]
        if handler not in roles:
            raise ValueError(f"recorded calls of {handler!r}, which no function in the template runs")
        call = Call(
            entry["service"], entry["operation"], substitute(entry["params"], symbols), error=entry["error"]
        )
        for logical_id, role in roles[handler]:
            yield Invocation(role, call, f"recorded: {handler} ({logical_id})")


def load(path: Path) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads(path.read_text())
    return entries


def dump(entries: list[dict[str, Any]]) -> str:
    return json.dumps(entries, indent=1, sort_keys=True) + "\n"
