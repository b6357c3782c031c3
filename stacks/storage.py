"""Where every run lives: the encrypted data bucket, its key, and the bucket its access logs go to."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from contract import layout
from stacks.nag import acknowledge


class DataStorage(Construct):
    """The data bucket (customer-managed KMS key with rotation, versioned, SSL only, no public access,
    server access logs) and its log bucket.

    `removal_policy` applies to the key and both buckets; with DESTROY the buckets are emptied on stack
    deletion, with RETAIN (the default of the app) they outlive the stack.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        removal_policy: RemovalPolicy,
        noncurrent_version_days: int = 30,
        access_log_days: int = 365,
    ) -> None:
        super().__init__(scope, construct_id)
        destroy = removal_policy == RemovalPolicy.DESTROY

        self.key = kms.Key(
            self,
            "DataKey",
            description="loftrec data: training data, models, serving tables",
            enable_key_rotation=True,
            removal_policy=removal_policy,
        )

        # S3 server access logs can only be delivered to a bucket encrypted with S3-managed keys.
        self.log_bucket = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(id="expire-access-logs", expiration=Duration.days(access_log_days)),
            ],
            removal_policy=removal_policy,
            auto_delete_objects=destroy,
        )
        acknowledge(
            self.log_bucket,
            "AwsSolutions-S1",
            "This is the access-log bucket itself; logging it to itself would loop.",
        )

        self.bucket = s3.Bucket(
            self,
            "Data",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            versioned=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.log_bucket,
            server_access_logs_prefix="data-bucket/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-noncurrent-versions",
                    noncurrent_version_expiration=Duration.days(noncurrent_version_days),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                ),
                # Runs are kept (a deployed model's artifact must stay for its endpoint to scale out,
                # and old runs are what a rollback deploys); Intelligent-Tiering moves the ones nobody
                # reads to cheaper storage by itself.
                s3.LifecycleRule(
                    id="tier-runs",
                    prefix=layout.RUNS_PREFIX,
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.INTELLIGENT_TIERING,
                            transition_after=Duration.days(0),
                        )
                    ],
                ),
            ],
            removal_policy=removal_policy,
            auto_delete_objects=destroy,
        )
