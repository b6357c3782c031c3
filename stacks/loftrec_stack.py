"""The loftrec stack: composes the constructs and grants between them."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from constructs import Construct

from contract.algorithms import ENDPOINT_NAMES
from stacks.config import Config
from stacks.monitoring import EndpointAlarms, OperationsDashboard
from stacks.notifications import Notifications
from stacks.pipeline import RetrainingPipeline
from stacks.serving import ServingApi
from stacks.storage import DataStorage


class LoftrecStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: Config, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        removal = RemovalPolicy.RETAIN if config.data_removal_policy == "retain" else RemovalPolicy.DESTROY
        self.storage = DataStorage(self, "Storage", removal_policy=removal)
        self.notifications = Notifications(
            self, "Notifications", key=self.storage.key, email=config.notification_email
        )
        self.endpoint_alarms = EndpointAlarms(
            self, "EndpointAlarms", endpoint_names=ENDPOINT_NAMES, topic=self.notifications.topic
        )
        self.pipeline = RetrainingPipeline(
            self,
            "Pipeline",
            config=config,
            storage=self.storage,
            topic=self.notifications.topic,
            endpoint_names=ENDPOINT_NAMES,
            rollback_alarms=self.endpoint_alarms.alarms,
        )
        self.serving = ServingApi(
            self,
            "Serving",
            config=config,
            storage=self.storage,
            run_record_uri=self.pipeline.run_record_uri,
            endpoint_names=ENDPOINT_NAMES,
        )
        self.operations = OperationsDashboard(
            self,
            "Operations",
            topic=self.notifications.topic,
            functions=dict(self.serving.functions),
            api=self.serving.api,
            state_machine=self.pipeline.state_machine,
            endpoint_names=ENDPOINT_NAMES,
        )
        CfnOutput(
            self, "DataBucket", value=self.storage.bucket.bucket_name, description="Runs and the run record"
        )
        CfnOutput(
            self,
            "StateMachineArn",
            value=self.pipeline.state_machine.state_machine_arn,
            description="Start a run by hand: aws stepfunctions start-execution --state-machine-arn ...",
        )
        CfnOutput(
            self,
            "ApiUrl",
            value=self.serving.api.url,
            description="POST predictions, similar-titles and recommendations",
        )
        CfnOutput(self, "NotificationTopicArn", value=self.notifications.topic.topic_arn)
