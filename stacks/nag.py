"""cdk-nag acknowledgements, one finding at a time, each with its reason next to its resource."""

from __future__ import annotations

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
