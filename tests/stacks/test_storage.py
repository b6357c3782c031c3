"""The storage construct: the data bucket, its key and its access-log bucket."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import assertions
from aws_cdk.assertions import Match

from stacks.config import cdk_json_context
from stacks.storage import DataStorage


def synth(removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN) -> assertions.Template:
    stack = cdk.Stack(cdk.App(context=cdk_json_context()))
    DataStorage(stack, "Storage", removal_policy=removal_policy)
    return assertions.Template.from_stack(stack)


def test_customer_managed_key_rotates() -> None:
    template = synth()
    template.resource_count_is("AWS::KMS::Key", 1)
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_data_bucket_encrypted_with_the_key_versioned_private_and_logged() -> None:
    template = synth()
    key = assertions.Capture()
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {
                        "BucketKeyEnabled": True,
                        "ServerSideEncryptionByDefault": {
                            "SSEAlgorithm": "aws:kms",
                            "KMSMasterKeyID": {"Fn::GetAtt": [key, "Arn"]},
                        },
                    }
                ]
            },
            "VersioningConfiguration": {"Status": "Enabled"},
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "LoggingConfiguration": {
                "DestinationBucketName": {"Ref": Match.string_like_regexp("StorageAccessLogs")},
                "LogFilePrefix": "data-bucket/",
            },
        },
    )
    assert key.as_string().startswith("StorageDataKey")


def test_lifecycle_expires_noncurrent_versions_and_tiers_runs() -> None:
    template = synth()
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "LifecycleConfiguration": {
                "Rules": Match.array_with(
                    [
                        Match.object_like(
                            {"NoncurrentVersionExpiration": {"NoncurrentDays": 30}, "Status": "Enabled"}
                        ),
                        Match.object_like(
                            {
                                "Prefix": "runs/",
                                "Transitions": [
                                    {"StorageClass": "INTELLIGENT_TIERING", "TransitionInDays": 0}
                                ],
                            }
                        ),
                    ]
                )
            }
        },
    )


def test_both_buckets_deny_requests_without_tls() -> None:
    template = synth()
    policies = template.find_resources("AWS::S3::BucketPolicy")
    assert len(policies) == 2
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements
        )


def test_retained_on_stack_deletion_by_default() -> None:
    template = synth()
    for resource_type in ("AWS::S3::Bucket", "AWS::KMS::Key"):
        for resource in template.find_resources(resource_type).values():
            assert resource["DeletionPolicy"] == "Retain"
            assert resource["UpdateReplacePolicy"] == "Retain"
    template.resource_count_is("Custom::S3AutoDeleteObjects", 0)


def test_destroy_policy_empties_and_deletes() -> None:
    template = synth(cdk.RemovalPolicy.DESTROY)
    for resource in template.find_resources("AWS::S3::Bucket").values():
        assert resource["DeletionPolicy"] == "Delete"
    template.resource_count_is("Custom::S3AutoDeleteObjects", 2)
