"""One phase of the retraining pipeline built alone: a small stack with what the phase builds on (storage,
topic, a SageMaker role), a state machine wrapping the phase, and cdk-nag's AwsSolutions checks, so that a
test sees the phase's states, the grants it gives the state machine's role, and that it acknowledges every
finding those grants cause by itself."""

from __future__ import annotations

import json
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from cdk_nag import AwsSolutionsChecks

from stacks.config import cdk_json_context, load_config
from stacks.nag import acknowledge
from stacks.notifications import Notifications
from stacks.pipeline.shared import Phase, SharedResources
from stacks.storage import DataStorage
from tests.stacks import asl

P = TypeVar("P", bound=Phase)
ENDPOINT_NAMES = {"fm": "test-fm", "blazingtext": "test-blazingtext"}
RAW_DATA_URI = "s3://example-reviews/us/video/"


@dataclass(frozen=True)
class Alone(Generic[P]):
    phase: P
    document: dict[str, Any]
    """The synthesized template."""
    machine: dict[str, Any]
    """The state machine's definition, tokens resolved (tests/stacks/asl.py)."""

    def states(self) -> dict[str, str]:
        """Every state's name and type, those in Parallel branches included."""
        return {name: state["Type"] for name, state in asl.iter_states(self.machine)}

    def state(self, name: str) -> dict[str, Any]:
        return asl.states_by_name(self.machine)[name]

    def logical_id(self, kind: str, prefix: str) -> str:
        (logical_id,) = (
            k for k, v in self.document["Resources"].items() if v["Type"] == kind and k.startswith(prefix)
        )
        return str(logical_id)

    def grants(self, role_prefix: str = "StateMachineRole") -> dict[str, list[Any]]:
        """Action -> the resources the role's policy grants it on (each with its condition, if any), with
        tokens resolved as tests/stacks/asl.py resolves them."""
        role = self.logical_id("AWS::IAM::Role", role_prefix)
        granted: dict[str, list[Any]] = {}
        for resource in self.document["Resources"].values():
            properties = resource.get("Properties", {})
            if resource["Type"] != "AWS::IAM::Policy" or {"Ref": role} not in properties["Roles"]:
                continue
            for statement in properties["PolicyDocument"]["Statement"]:
                actions = (
                    statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                )
                targets = (
                    statement["Resource"]
                    if isinstance(statement["Resource"], list)
                    else [statement["Resource"]]
                )
                for action in actions:
                    for target in targets:
                        value = asl.resolve(self.document, target)
                        if "Condition" in statement:
                            value = (value, json.dumps(statement["Condition"], sort_keys=True))
                        granted.setdefault(action, []).append(value)
        return {action: sorted(targets, key=str) for action, targets in granted.items()}

    def function(self, handler: str) -> dict[str, Any]:
        """The properties of the one function with this handler."""
        (properties,) = (
            r["Properties"]
            for r in self.document["Resources"].values()
            if r["Type"] == "AWS::Lambda::Function" and r["Properties"]["Handler"] == handler
        )
        return dict(properties)


def shared_resources(stack: cdk.Stack, **settings: Any) -> SharedResources:
    config = load_config({**cdk_json_context(), "raw_data_uri": RAW_DATA_URI, **settings})
    storage = DataStorage(stack, "Storage", removal_policy=cdk.RemovalPolicy.DESTROY)
    return SharedResources(
        config=config,
        storage=storage,
        topic=Notifications(stack, "Notifications", key=storage.key, email=None).topic,
        sagemaker_role=iam.Role(
            stack, "SageMakerRole", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com")
        ),
        endpoint_names=ENDPOINT_NAMES,
        run_record_uri=f"s3://{storage.bucket.bucket_name}/serving/current.json",
        functions=stack,
    )


def build(
    make: Callable[[cdk.Stack, SharedResources], P],
    chain: Callable[[cdk.Stack, P], sfn.IChainable] | None = None,
    **settings: Any,
) -> Alone[P]:
    """Synthesize `make`'s phase in a small stack, wrapped in a state machine (by `chain`, if given: for a
    phase that is no fragment to start a definition with). Raises on any unacknowledged cdk-nag finding."""
    app = cdk.App(context=cdk_json_context())
    stack = cdk.Stack(app, "PhaseAlone")
    phase = make(stack, shared_resources(stack, **settings))
    start = chain(stack, phase) if chain is not None else typing.cast(sfn.IChainable, phase)
    machine = sfn.StateMachine(
        stack, "StateMachine", definition_body=sfn.DefinitionBody.from_chainable(start)
    )
    phase.grant(machine.role)
    acknowledge(machine, "AwsSolutions-SF1", "A phase alone: the pipeline's state machine logs everything.")
    acknowledge(machine, "AwsSolutions-SF2", "A phase alone: the pipeline's state machine traces with X-Ray.")
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    assembly = app.synth()  # raises ValidationFailed on any unacknowledged finding
    document: dict[str, Any] = assembly.get_stack_by_name("PhaseAlone").template
    return Alone(phase=phase, document=document, machine=asl.definition(document))
