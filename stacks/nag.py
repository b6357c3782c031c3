"""cdk-nag acknowledgements, one finding at a time, each with its reason next to its resource.

A finding on a wildcard resource is named by the resource as cdk-nag renders it (logical ids and pseudo
parameters in angle brackets): `arn_finding` and `wildcard_finding` derive that name from the construct or
the very ARN that was granted, so that no logical id is ever spelled by hand.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Acknowledgment, CfnElement, Stack, Validations
from constructs import IConstruct


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge one cdk-nag finding (e.g. "AwsSolutions-IAM5[Resource::*]") on one construct."""
    Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=reason))


def arn_finding(resource: IConstruct, suffix: str = "") -> str:
    """The id of the AwsSolutions-IAM5 finding on a wildcard resource made of `resource`'s ARN and a suffix
    (e.g. a bucket's objects: suffix "/runs/*"), as cdk-nag names it: by the resource's logical id."""
    child = resource.node.default_child
    if not isinstance(child, CfnElement):
        raise TypeError(f"{resource.node.path} has no CloudFormation resource to name")
    return f"AwsSolutions-IAM5[Resource::<{Stack.of(resource).get_logical_id(child)}.Arn>{suffix}]"


def wildcard_finding(scope: IConstruct, resource: str) -> str:
    """The id of the AwsSolutions-IAM5 finding on a granted wildcard resource (an ARN that may hold tokens,
    e.g. f"arn:{Aws.PARTITION}:sagemaker:...:training-job/loftrec-*"), as cdk-nag names it."""
    return f"AwsSolutions-IAM5[Resource::{_flatten(Stack.of(scope).resolve(resource))}]"


def _flatten(value: Any) -> str:
    """A resolved CloudFormation value as one string, the way cdk-nag 3 flattens a policy's resources
    (src/utils/flatten-cfn-reference.ts): Ref X -> <X>, Fn::GetAtt [X, Arn] -> <X.Arn>, Fn::Join joined.
    Other intrinsics, which cdk-nag renders as their JSON, are refused: no grant of ours uses them."""
    if isinstance(value, str):
        return value.replace("${", "<").replace("}", ">")
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Fn::Join":
            separator, parts = argument
            return str(separator).join(_flatten(part) for part in parts)
        if function in ("Fn::Sub", "Fn::ImportValue"):
            return _flatten(argument)
        if function == "Fn::GetAtt":
            logical_id, attribute = argument
            return f"<{_flatten(logical_id)}.{_flatten(attribute)}>"
        if function == "Ref":
            return f"<{_flatten(argument)}>"
    raise TypeError(f"cdk-nag names no finding for the resource {value!r}")
