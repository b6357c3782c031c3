"""The pipeline's notifications: one SNS topic, encrypted, TLS only, optionally mailed to an address."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct


class Notifications(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, key: kms.IKey, email: str | None) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self,
            "Topic",
            display_name="loftrec retraining and serving",
            master_key=key,
            enforce_ssl=True,
        )
        # CloudWatch alarms publish to the encrypted topic: the key must let CloudWatch use it.
        key.grant(iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*")
        if email is not None:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
