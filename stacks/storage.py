"""Where every run lives: the encrypted data bucket, its key, and the bucket its access logs go to."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from contract import layout
from stacks.nag import acknowledge, arn_finding


class DataStorage(Construct):
    """The data bucket (customer-managed KMS key with rotation, versioned, SSL only, no public access,
    server access logs) and its log bucket.

    `removal_policy` applies to the key and both buckets; with DESTROY the buckets are emptied on stack
    deletion, with RETAIN (the default of the app) they outlive the stack.

    The grant methods give a role access to the data bucket's objects and key together with the cdk-nag
    acknowledgements CDK's grants cause, so that a grant and its reasons never drift apart.
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

    def grant_read_objects(self, role: iam.IRole, pattern: str, reason: str) -> None:
        """Read the objects whose keys match `pattern` (CDK's read grant: GetObject*, GetBucket*, List*)."""
        self.bucket.grant_read(role, pattern)
        for finding in (
            "AwsSolutions-IAM5[Action::s3:GetObject*]",
            "AwsSolutions-IAM5[Action::s3:GetBucket*]",
            "AwsSolutions-IAM5[Action::s3:List*]",
        ):
            acknowledge(role, finding, f"CDK's read grant. {reason}")
        if "*" in pattern:
            acknowledge(role, arn_finding(self.bucket, "/" + pattern), reason)

    def grant_put_objects(self, role: iam.IRole, pattern: str, reason: str) -> None:
        """Write the objects whose keys match `pattern` (CDK's put grant, multipart aborts included)."""
        self.bucket.grant_put(role, pattern)
        acknowledge(
            role, "AwsSolutions-IAM5[Action::s3:Abort*]", f"CDK's put grant: multipart uploads. {reason}"
        )
        if "*" in pattern:
            acknowledge(role, arn_finding(self.bucket, "/" + pattern), reason)

    def grant_key(self, role: iam.IRole) -> None:
        """Encrypt and decrypt with the data key: what writing (and reading) the encrypted bucket needs."""
        self.key.grant_encrypt_decrypt(role)
        for finding in (
            "AwsSolutions-IAM5[Action::kms:ReEncrypt*]",
            "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
        ):
            acknowledge(role, finding, "CDK's key grant: the data bucket is encrypted with the stack's key.")
