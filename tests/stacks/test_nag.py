"""cdk-nag finding ids derived from the constructs and ARNs that were granted."""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3

from stacks.nag import arn_finding, wildcard_finding


def test_a_wildcard_arn_is_named_as_cdk_nag_renders_it() -> None:
    stack = cdk.Stack()
    arn = f"arn:{cdk.Aws.PARTITION}:sagemaker:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:training-job/loftrec-*"
    assert wildcard_finding(stack, arn) == (
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>"
        ":training-job/loftrec-*]"
    )
    assert wildcard_finding(stack, "*") == "AwsSolutions-IAM5[Resource::*]"


def test_a_resources_arn_is_named_by_its_logical_id_either_way() -> None:
    stack = cdk.Stack()
    bucket = s3.Bucket(stack, "Data")
    logical_id = stack.get_logical_id(bucket.node.default_child)  # type: ignore[arg-type]
    assert arn_finding(bucket, "/runs/*") == f"AwsSolutions-IAM5[Resource::<{logical_id}.Arn>/runs/*]"
    assert wildcard_finding(stack, bucket.arn_for_objects("runs/*")) == arn_finding(bucket, "/runs/*")


def test_a_resource_cdk_nag_cannot_name_is_refused() -> None:
    stack = cdk.Stack()
    with pytest.raises(TypeError, match="names no finding"):
        wildcard_finding(stack, cdk.Fn.select(0, cdk.Fn.split(",", cdk.Aws.STACK_NAME)) + "/*")
