"""A synthesized CloudFormation template with its intrinsic functions resolved for a sample environment.

Every resource is named after its logical id, as tests/stacks/asl.py names them for the moto runs (bucket
names are the logical id in lower case, a KMS key id is a UUID derived from the logical id), so that what
the moto runs record and what the template grants name the same resources.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"
PARTITION = "aws"
URL_SUFFIX = "amazonaws.com"
STACK_NAME = "Loftrec"


class TemplateError(ValueError):
    """The template holds something this module cannot resolve; the message names it."""


@dataclass(frozen=True)
class Environment:
    account: str = ACCOUNT
    region: str = REGION
    partition: str = PARTITION
    url_suffix: str = URL_SUFFIX
    stack_name: str = STACK_NAME

    @property
    def pseudo_parameters(self) -> dict[str, str]:
        return {
            "AWS::Partition": self.partition,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::URLSuffix": self.url_suffix,
            "AWS::StackName": self.stack_name,
        }

    @property
    def account_root(self) -> str:
        return f"arn:{self.partition}:iam::{self.account}:root"


class Template:
    """The `Resources` of one synthesized stack and the literal value of any template expression."""

    def __init__(self, document: Mapping[str, Any], environment: Environment | None = None) -> None:
        self.document = document
        self.env = environment or Environment()
        resources = document.get("Resources")
        if not isinstance(resources, dict):
            raise TemplateError("the template has no Resources object")
        self.resources: dict[str, dict[str, Any]] = resources

    # ---- resources

    def resource(self, logical_id: str) -> dict[str, Any]:
        if logical_id not in self.resources:
            raise TemplateError(f"the template has no resource {logical_id!r}")
        return self.resources[logical_id]

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {name: body for name, body in self.resources.items() if body.get("Type") == kind}

    def properties(self, logical_id: str) -> dict[str, Any]:
        properties: dict[str, Any] = self.resource(logical_id).get("Properties", {})
        return properties

    # ---- names and ARNs

    def bucket_name(self, logical_id: str) -> str:
        return str(self.properties(logical_id).get("BucketName", logical_id.lower()))

    def key_id(self, logical_id: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, logical_id))

    def _name(self, logical_id: str, property_name: str) -> str:
        value = self.properties(logical_id).get(property_name, logical_id)
        return str(self.resolve(value))

    def arn(self, logical_id: str) -> str:
        """The ARN CloudFormation would give the resource (Fn::GetAtt Arn)."""
        env = self.env
        kind = self.resource(logical_id)["Type"]
        region, account, partition = env.region, env.account, env.partition
        forms: dict[str, Any] = {
            "AWS::Lambda::Function": lambda: (
                f"arn:{partition}:lambda:{region}:{account}:function:{logical_id}"
            ),
            "AWS::IAM::Role": lambda: f"arn:{partition}:iam::{account}:role/{logical_id}",
            "AWS::KMS::Key": lambda: f"arn:{partition}:kms:{region}:{account}:key/{self.key_id(logical_id)}",
            "AWS::SNS::Topic": lambda: f"arn:{partition}:sns:{region}:{account}:{logical_id}",
            "AWS::S3::Bucket": lambda: f"arn:{partition}:s3:::{self.bucket_name(logical_id)}",
            "AWS::StepFunctions::StateMachine": (
                lambda: f"arn:{partition}:states:{region}:{account}:stateMachine:{logical_id}"
            ),
            "AWS::Logs::LogGroup": lambda: (
                f"arn:{partition}:logs:{region}:{account}:log-group:{self._name(logical_id, 'LogGroupName')}"
                ":*"
            ),
            "AWS::CloudWatch::Alarm": lambda: (
                f"arn:{partition}:cloudwatch:{region}:{account}:alarm:{self._name(logical_id, 'AlarmName')}"
            ),
            "AWS::Events::Rule": lambda: f"arn:{partition}:events:{region}:{account}:rule/{logical_id}",
        }
        if kind not in forms:
            raise TemplateError(f"no ARN form for {logical_id} ({kind}); add one to tools/iam/template.py")
        return str(forms[kind]())

    def ref(self, name: str) -> str:
        """What Ref returns: a pseudo parameter, or the resource's name or ARN as CloudFormation gives it."""
        pseudo = self.env.pseudo_parameters
        if name in pseudo:
            return pseudo[name]
        kind = self.resource(name)["Type"]
        forms: dict[str, Any] = {
            "AWS::S3::Bucket": lambda: self.bucket_name(name),
            "AWS::SNS::Topic": lambda: self.arn(name),
            "AWS::StepFunctions::StateMachine": lambda: self.arn(name),
            "AWS::CloudWatch::Alarm": lambda: self._name(name, "AlarmName"),
            "AWS::Logs::LogGroup": lambda: self._name(name, "LogGroupName"),
            "AWS::Lambda::Function": lambda: name,
            "AWS::IAM::Role": lambda: name,
            "AWS::IAM::Policy": lambda: name,
            "AWS::KMS::Key": lambda: self.key_id(name),
            "AWS::Events::Rule": lambda: name,
            "AWS::ApiGateway::RestApi": name.lower,  # an API id, e.g. a1b2c3d4e5
        }
        if kind not in forms:
            raise TemplateError(f"no Ref form for {name} ({kind}); add one to tools/iam/template.py")
        return str(forms[kind]())

    # ---- expressions

    def resolve(self, value: Any) -> Any:
        """`value` with every intrinsic function replaced by its literal value."""
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref" or key.startswith("Fn::"):
                return self._intrinsic(key, argument)
        return {key: self.resolve(item) for key, item in value.items()}

    def _intrinsic(self, function: str, argument: Any) -> Any:
        functions: dict[str, Any] = {
            "Ref": self.ref,
            "Fn::GetAtt": self._get_att,
            "Fn::Join": lambda arg: arg[0].join(str(self.resolve(part)) for part in self.resolve(arg[1])),
            "Fn::FindInMap": self._find_in_map,
            "Fn::Select": lambda arg: self.resolve(arg[1])[int(self.resolve(arg[0]))],
            "Fn::Split": lambda arg: str(self.resolve(arg[1])).split(arg[0]),
            "Fn::Sub": self._sub,
        }
        if function not in functions:
            raise TemplateError(f"tools/iam/template.py cannot resolve {function}")
        return functions[function](argument)

    def _get_att(self, argument: Any) -> str:
        logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
        if attribute != "Arn":
            raise TemplateError(f"no value for Fn::GetAtt {logical_id}.{attribute}")
        return self.arn(logical_id)

    def _find_in_map(self, argument: Any) -> Any:
        mapping, first, second = (self.resolve(part) for part in argument)
        return self.document["Mappings"][mapping][first][second]

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], argument[1])

        def substitute(match: re.Match[str]) -> str:
            name = match[1]
            if name in variables:
                return str(self.resolve(variables[name]))
            if "." in name:
                logical_id, attribute = name.split(".", 1)
                return str(self._intrinsic("Fn::GetAtt", [logical_id, attribute]))
            return self.ref(name)

        return re.sub(r"\$\{([^}!]+)\}", substitute, text)

    # ---- the state machine

    def state_machine_id(self) -> str:
        machines = sorted(self.of_type("AWS::StepFunctions::StateMachine"))
        if len(machines) != 1:
            raise TemplateError(f"expected one state machine, found {machines}")
        return machines[0]

    def definition(self) -> dict[str, Any]:
        """The state machine's DefinitionString with its tokens resolved, parsed."""
        body = self.properties(self.state_machine_id())["DefinitionString"]
        if isinstance(body, dict):
            separator, parts = body["Fn::Join"]
            # Every token sits inside a JSON string literal: insert its value escaped as string content.
            body = separator.join(
                part if isinstance(part, str) else json.dumps(str(self.resolve(part)))[1:-1] for part in parts
            )
        parsed: dict[str, Any] = json.loads(body)
        return parsed


def iter_states(machine: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every state with its name, those of Parallel branches and Map processors included."""
    for name, state in machine["States"].items():
        yield name, state
        for branch in state.get("Branches", []):
            yield from iter_states(branch)
        for key in ("ItemProcessor", "Iterator"):
            if key in state:
                yield from iter_states(state[key])
