"""The retraining state machine as tests see it: the synthesized definition with its CloudFormation tokens
resolved to literal values, a walk over its states, and the request each AWS task state sends, checked
against botocore's model of the operation it calls.

Step Functions' optimized integrations (``arn:aws:states:::sagemaker:createTrainingJob.sync``,
``sns:publish``, ``lambda:invoke``) and its SDK integrations (``aws-sdk:<service>:<action>``) both take
the API's own member names, so one check serves both: every ``"Key.$"`` field (a JSONPath or intrinsic
evaluated at run time) becomes ``"Key"`` with a value of the type the model expects there, and botocore's
ParamValidator then reports any unknown, missing or mistyped field of the rest. `literal_errors` adds what
ParamValidator leaves out (enums, lengths, patterns, ranges) for the values written literally, and
`unknown_result_paths` checks that a ResultSelector reads fields the service's answer has.
"""

from __future__ import annotations

import datetime
import functools
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import botocore.session
from botocore.model import OperationModel, Shape
from botocore.validate import ParamValidator

ACCOUNT = "123456789012"
REGION = "us-east-1"
PSEUDO_PARAMETERS = {
    "AWS::Partition": "aws",
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "Loftrec",
}
STATE_MACHINE_TYPE = "AWS::StepFunctions::StateMachine"
# Step Functions' optimized integrations whose service name differs from botocore's.
OPTIMIZED_SERVICES = {"states": "stepfunctions"}
_BOTOCORE = botocore.session.get_session()


def state_machine_id(document: dict[str, Any]) -> str:
    (logical_id,) = (
        name for name, resource in document["Resources"].items() if resource["Type"] == STATE_MACHINE_TYPE
    )
    return str(logical_id)


# ---------------------------------------------------------------------------------------------------------
# CloudFormation tokens -> literal values


def bucket_name(logical_id: str) -> str:
    return logical_id.lower()


def resource_arn(document: dict[str, Any], logical_id: str) -> str:
    """The ARN CloudFormation would give the resource, with the logical id as its name."""
    kind = document["Resources"][logical_id]["Type"]
    if kind == "AWS::CloudWatch::Alarm":
        return f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{_ref(document, logical_id)}"
    arns = {
        "AWS::Lambda::Function": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{logical_id}",
        "AWS::IAM::Role": f"arn:aws:iam::{ACCOUNT}:role/{logical_id}",
        "AWS::KMS::Key": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{uuid.uuid5(uuid.NAMESPACE_URL, logical_id)}",
        "AWS::SNS::Topic": f"arn:aws:sns:{REGION}:{ACCOUNT}:{logical_id}",
        "AWS::S3::Bucket": f"arn:aws:s3:::{bucket_name(logical_id)}",
        "AWS::StepFunctions::StateMachine": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{logical_id}",
    }
    if kind not in arns:
        raise ValueError(f"no ARN form for {logical_id} ({kind}); add one to tests/stacks/asl.py")
    return arns[kind]


def _ref(document: dict[str, Any], name: str) -> str:
    if name in PSEUDO_PARAMETERS:
        return PSEUDO_PARAMETERS[name]
    resource = document["Resources"][name]
    kind, properties = resource["Type"], resource.get("Properties", {})
    refs: dict[str, Callable[[], str]] = {
        "AWS::S3::Bucket": lambda: bucket_name(name),
        "AWS::SNS::Topic": lambda: resource_arn(document, name),
        "AWS::StepFunctions::StateMachine": lambda: resource_arn(document, name),
        "AWS::CloudWatch::Alarm": lambda: str(properties.get("AlarmName", name)),
        "AWS::Lambda::Function": lambda: name,
        "AWS::IAM::Role": lambda: name,
        "AWS::KMS::Key": lambda: name,
    }
    if kind not in refs:
        raise ValueError(f"no Ref form for {name} ({kind}); add one to tests/stacks/asl.py")
    return refs[kind]()


def resolve(document: dict[str, Any], value: Any) -> Any:
    """A template value with every intrinsic function the definition uses replaced by its literal value
    (pseudo parameters as in PSEUDO_PARAMETERS, resource names and ARNs derived from logical ids)."""
    if isinstance(value, list):
        return [resolve(document, item) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) != 1 or not next(iter(value)).startswith(("Ref", "Fn::")):
        return {key: resolve(document, item) for key, item in value.items()}
    ((function, argument),) = value.items()
    return _intrinsic(document, function, argument)


def _intrinsic(document: dict[str, Any], function: str, argument: Any) -> Any:
    if function == "Ref":
        return _ref(document, argument)
    if function == "Fn::GetAtt":
        logical_id, attribute = argument
        if attribute != "Arn":
            raise ValueError(f"no value for Fn::GetAtt {logical_id}.{attribute}")
        return resource_arn(document, logical_id)
    if function == "Fn::Join":
        separator, parts = argument
        return separator.join(str(resolve(document, part)) for part in parts)
    if function == "Fn::FindInMap":
        mapping, first, second = (resolve(document, part) for part in argument)
        return document["Mappings"][mapping][first][second]
    if function == "Fn::Sub":
        text = argument if isinstance(argument, str) else argument[0]

        def substitute(match: re.Match[str]) -> str:
            name = match[1]
            if "." in name:
                logical_id, attribute = name.split(".", 1)
                return str(resolve(document, {"Fn::GetAtt": [logical_id, attribute]}))
            return _ref(document, name)

        return re.sub(r"\$\{([^}!]+)\}", substitute, text)
    raise ValueError(f"tests/stacks/asl.py cannot resolve {function}")


def definition_text(document: dict[str, Any]) -> str:
    """The DefinitionString with its tokens resolved: the JSON text Step Functions would receive."""
    body = document["Resources"][state_machine_id(document)]["Properties"]["DefinitionString"]
    if isinstance(body, str):
        return body
    separator, parts = body["Fn::Join"]
    assert separator == ""
    # Every token sits inside a JSON string literal: insert its value escaped as string content.
    return "".join(
        part if isinstance(part, str) else json.dumps(str(resolve(document, part)))[1:-1] for part in parts
    )


def definition(document: dict[str, Any]) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(definition_text(document))
    return parsed


def iter_states(machine: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every state with its name, those of Parallel branches and Map processors included."""
    for name, state in machine["States"].items():
        yield name, state
        for branch in state.get("Branches", []):
            yield from iter_states(branch)
        for key in ("ItemProcessor", "Iterator"):
            if key in state:
                yield from iter_states(state[key])


def states_by_name(machine: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(iter_states(machine))


# ---------------------------------------------------------------------------------------------------------
# Task states -> botocore operations


@dataclass(frozen=True)
class Operation:
    service: str  # botocore's service name, e.g. "application-autoscaling"
    name: str  # the API operation, e.g. "RegisterScalableTarget"
    integration: str  # "optimized" or "aws-sdk"
    pattern: str  # "" (request-response), "sync" or "waitForTaskToken"

    @property
    def model(self) -> OperationModel:
        return _BOTOCORE.get_service_model(self.service).operation_model(self.name)


@functools.cache
def _sdk_services() -> dict[str, str]:
    """Step Functions' aws-sdk service names (botocore's without hyphens) -> botocore's."""
    return {name.replace("-", ""): name for name in _BOTOCORE.get_available_services()}


def task_operation(resource: str) -> Operation:
    """The API operation a Task state's Resource calls; ValueError for anything else."""
    match = re.fullmatch(
        r"arn:aws[a-z-]*:states:::([a-z0-9-]+):([a-zA-Z0-9:]+?)(?:\.(sync|waitForTaskToken))?(?::2)?",
        resource,
    )
    if match is None:
        raise ValueError(f"{resource!r} is not a Step Functions service integration ARN")
    service, action, pattern = match[1], match[2], match[3] or ""
    integration = "optimized"
    if service == "aws-sdk":
        sdk_service, _, action = action.partition(":")
        if sdk_service not in _sdk_services():
            raise ValueError(f"{resource!r}: no SDK service {sdk_service!r}")
        service, integration = _sdk_services()[sdk_service], "aws-sdk"
    service = OPTIMIZED_SERVICES.get(service, service)
    operation = Operation(service, action[:1].upper() + action[1:], integration, pattern)
    if operation.name not in _BOTOCORE.get_service_model(operation.service).operation_names:
        raise ValueError(f"{resource!r}: {operation.service} has no operation {operation.name}")
    return operation


_SCALARS: dict[str, Callable[[int], Any]] = {
    "integer": lambda minimum: minimum,
    "long": lambda minimum: minimum,
    "float": float,
    "double": float,
    "boolean": lambda _minimum: True,
    "blob": lambda minimum: b"p" * minimum,
    "timestamp": lambda _minimum: datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC),
}


def placeholder(shape: Shape) -> Any:
    """A value of the type `shape` takes, long enough for its minimum length."""
    minimum = max(int(shape.metadata.get("min", 1)), 1)
    kind = shape.type_name
    if kind == "string":
        enum = shape.metadata.get("enum")
        return enum[0] if enum else "p" * minimum
    if kind in _SCALARS:
        return _SCALARS[kind](minimum)
    if kind == "list":
        return [placeholder(shape.member) for _ in range(minimum)]
    if kind == "map":
        return {placeholder(shape.key): placeholder(shape.value)}
    if kind == "structure":
        members = shape.members
        return {name: placeholder(members[name]) for name in shape.required_members}
    raise ValueError(f"no placeholder for a {kind} shape")


def with_placeholders(value: Any, shape: Shape | None) -> Any:
    """`value` with every "Key.$" field replaced by "Key": a placeholder of Key's shape in `shape`.

    A dynamic field the shape does not know keeps its name (without ".$") and gets a string, so that the
    validator reports it as unknown.
    """
    if isinstance(value, list):
        item_shape = shape.member if shape is not None and shape.type_name == "list" else None
        return [with_placeholders(item, item_shape) for item in value]
    if not isinstance(value, dict):
        return value
    result: dict[str, Any] = {}
    for key, item in value.items():
        name = key.removesuffix(".$")
        member: Shape | None = None
        if shape is not None and shape.type_name == "structure":
            member = shape.members.get(name)
        elif shape is not None and shape.type_name == "map":
            member = shape.value
        if key.endswith(".$"):
            result[name] = placeholder(member) if member is not None else f"<{item}>"
        else:
            result[name] = with_placeholders(item, member)
    return result


def request(state: dict[str, Any]) -> tuple[Operation, dict[str, Any]]:
    """The operation a Task state calls and the parameters it sends, dynamic values as placeholders."""
    operation = task_operation(state["Resource"])
    input_shape = operation.model.input_shape
    parameters = state.get("Parameters", {})
    if (operation.service, operation.name) == ("lambda", "Invoke"):
        # The optimized integration serializes the Payload object to the function's JSON event.
        payload = with_placeholders(parameters.get("Payload", {}), None)
        params = with_placeholders({k: v for k, v in parameters.items() if k != "Payload"}, input_shape)
        return operation, {**params, "Payload": json.dumps(payload).encode()}
    return operation, with_placeholders(parameters, input_shape)


def request_errors(state: dict[str, Any]) -> str:
    """botocore's report on the request a Task state sends ("" when it is valid)."""
    operation, params = request(state)
    report = ParamValidator().validate(params, operation.model.input_shape)
    return str(report.generate_report()) if report.has_errors() else ""


def _string_errors(value: str, metadata: dict[str, Any], path: str) -> Iterator[str]:
    if "enum" in metadata and value not in metadata["enum"]:
        yield f"{path}={value!r} is not one of {metadata['enum']}"
    if not metadata.get("min", 0) <= len(value) <= metadata.get("max", len(value)):
        yield f"{path}={value!r} is not {metadata.get('min', 0)} to {metadata.get('max')} characters long"
    try:
        pattern = re.compile(metadata.get("pattern", ".*"))
    except re.error:  # a Java-only construct: the pattern cannot be checked here
        return
    if not pattern.fullmatch(value):
        yield f"{path}={value!r} does not match {pattern.pattern!r}"


def _constraint_errors(value: Any, shape: Shape, path: str) -> Iterator[str]:
    metadata = shape.metadata
    kind = shape.type_name
    if kind == "string" and isinstance(value, str):
        yield from _string_errors(value, metadata, path)
    elif kind in ("integer", "long", "float", "double") and isinstance(value, int | float):
        if not metadata.get("min", value) <= value <= metadata.get("max", value):
            yield f"{path}={value!r} is not within {metadata.get('min')} to {metadata.get('max')}"
    elif kind == "list" and isinstance(value, list):
        if not metadata.get("min", 0) <= len(value) <= metadata.get("max", len(value)):
            yield f"{path} has {len(value)} items, not {metadata.get('min', 0)} to {metadata.get('max')}"
        for index, item in enumerate(value):
            yield from _constraint_errors(item, shape.member, f"{path}[{index}]")
    elif kind in ("map", "structure") and isinstance(value, dict):
        for key, item in value.items():
            member = shape.value if kind == "map" else shape.members.get(key)
            if member is not None and not key.endswith(".$"):
                yield from _constraint_errors(item, member, f"{path}.{key}" if path else key)


def literal_errors(state: dict[str, Any]) -> list[str]:
    """What botocore's ParamValidator leaves unchecked, for the values the definition writes literally:
    enums, lengths, patterns and ranges of the service model."""
    operation = task_operation(state["Resource"])
    parameters = {k: v for k, v in state.get("Parameters", {}).items() if k != "Payload"}
    return list(_constraint_errors(parameters, operation.model.input_shape, ""))


def task_states(machine: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: state for name, state in iter_states(machine) if state["Type"] == "Task"}


# ---------------------------------------------------------------------------------------------------------
# What a Task state reads from the service's answer


def output_shape(operation: Operation) -> Shape:
    """The shape of the result a Task state receives: for .sync jobs, the Describe<Job> answer."""
    if operation.pattern == "sync" and operation.name.startswith("Create"):
        describe = "Describe" + operation.name.removeprefix("Create")
        return _BOTOCORE.get_service_model(operation.service).operation_model(describe).output_shape
    shape = operation.model.output_shape
    assert shape is not None, f"{operation.name} returns nothing"
    return shape


def selected_paths(selector: Any) -> Iterator[str]:
    """The JSONPaths a ResultSelector reads, those inside intrinsic functions included."""
    if isinstance(selector, dict):
        for key, value in selector.items():
            if key.endswith(".$") and isinstance(value, str):
                yield from re.findall(r"(?<!\$)\$(?:\.[A-Za-z0-9_]+)*", value)
            else:
                yield from selected_paths(value)


def unknown_result_paths(state: dict[str, Any]) -> list[str]:
    """ResultSelector paths that name no field of the service's answer."""
    shape = output_shape(task_operation(state["Resource"]))
    unknown = []
    for path in selected_paths(state.get("ResultSelector", {})):
        current: Shape | None = shape
        for field in path.split(".")[1:]:
            members = current.members if current is not None and current.type_name == "structure" else {}
            current = members.get(field)
            if current is None:
                unknown.append(path)
                break
    return unknown


# ---------------------------------------------------------------------------------------------------------
# Edits for broken copies and test runs


def edit_states(machine: dict[str, Any], edit: Callable[[str, dict[str, Any]], None]) -> dict[str, Any]:
    """A deep copy of `machine` with `edit(name, state)` applied to every state."""
    copy: dict[str, Any] = json.loads(json.dumps(machine))
    for name, state in iter_states(copy):
        edit(name, state)
    return copy
