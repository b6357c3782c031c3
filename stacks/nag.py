"""cdk-nag acknowledgements, one finding at a time, each with its reason next to its resource."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge one cdk-nag finding (e.g. "AwsSolutions-IAM5[Resource::*]") on one construct."""
    Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=reason))
