"""The AWS-managed policies loftrec's roles attach, with the page each document is copied from.

A role that attaches a managed policy not listed here makes the evaluator fail with its ARN: copy the
document from the AWS Managed Policy Reference into this table rather than guessing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ManagedPolicy:
    name: str  # the ARN's path and name after "policy/", e.g. "service-role/AWSLambdaBasicExecutionRole"
    document: dict[str, Any]
    url: str  # the AWS Managed Policy Reference page the document is copied from


MANAGED_POLICIES: dict[str, ManagedPolicy] = {
    policy.name: policy
    for policy in (
        ManagedPolicy(
            name="service-role/AWSLambdaBasicExecutionRole",
            document={
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                        "Resource": "*",
                    }
                ],
            },
            url="https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AWSLambdaBasicExecutionRole.html",
        ),
        ManagedPolicy(
            name="service-role/AmazonAPIGatewayPushToCloudWatchLogs",
            document={
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": [
                            "logs:CreateLogGroup",
                            "logs:CreateLogStream",
                            "logs:DescribeLogGroups",
                            "logs:DescribeLogStreams",
                            "logs:PutLogEvents",
                            "logs:GetLogEvents",
                            "logs:FilterLogEvents",
                        ],
                        "Resource": "*",
                    }
                ],
            },
            url="https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AmazonAPIGatewayPushToCloudWatchLogs.html",
        ),
    )
}


def managed_policy(arn: str) -> ManagedPolicy:
    """The table's policy for an ARN like arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole."""
    prefix, separator, name = arn.partition(":iam::aws:policy/")
    if not separator or not prefix.startswith("arn:"):
        raise ValueError(f"{arn!r} is not an AWS-managed policy ARN (arn:<partition>:iam::aws:policy/...)")
    if name not in MANAGED_POLICIES:
        raise ValueError(
            f"AWS-managed policy {arn} is not in tools/iam/managed.py: copy its document from the AWS "
            "Managed Policy Reference"
        )
    return MANAGED_POLICIES[name]
