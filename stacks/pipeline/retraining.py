"""The retraining pipeline: a Step Functions state machine chained from its phases, with the pieces the
phases share (the SageMaker role, the prep image, the log group), its schedule and its failure alarm."""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from contract import layout
from contract.algorithms import FM
from stacks.config import Config
from stacks.nag import acknowledge, arn_finding
from stacks.pipeline.deploy import DeployModels
from stacks.pipeline.failure import FailureHandling
from stacks.pipeline.gate import QualityGate
from stacks.pipeline.images import grant_algorithm_pulls, prep_image
from stacks.pipeline.prepare import PrepareData
from stacks.pipeline.recommend import BatchRecommendations
from stacks.pipeline.record import RecordRun
from stacks.pipeline.shared import (
    Phase,
    SharedResources,
    allow,
    allow_kms_grants,
)
from stacks.pipeline.train import TrainModels
from stacks.storage import DataStorage

SAGEMAKER_LOG_GROUPS = "/aws/sagemaker/*"
SAGEMAKER_METRIC_NAMESPACES = ["/aws/sagemaker/*", "aws/sagemaker/*"]


class RetrainingPipeline(Construct):
    """Prepare data -> train models -> quality gate -> batch recommendations -> deploy models -> record the
    run; any failure notified, and serving rolled back once it may have changed. Scheduled, and alarmed on
    failed executions."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: Config,
        storage: DataStorage,
        topic: sns.ITopic,
        endpoint_names: dict[str, str],
        rollback_alarms: dict[str, list[cloudwatch.IAlarm]],
    ) -> None:
        super().__init__(scope, construct_id)
        self.run_record_uri = f"s3://{storage.bucket.bucket_name}/{layout.RUN_RECORD_KEY}"
        self.sagemaker_role = sagemaker_role(self, "SageMakerRole", config=config, storage=storage)
        self.prep_image = prep_image(self, "PrepImage")
        self.prep_image.repository.grant_pull(self.sagemaker_role)
        grant_algorithm_pulls(self.sagemaker_role)
        shared = SharedResources(
            config=config,
            storage=storage,
            topic=topic,
            sagemaker_role=self.sagemaker_role,
            endpoint_names=endpoint_names,
            run_record_uri=self.run_record_uri,
            functions=self,
        )

        failure = FailureHandling(self, "Failure", shared=shared)
        prepare = PrepareData(self, "PrepareData", shared=shared, image=self.prep_image)
        train = TrainModels(self, "TrainModels", shared=shared)
        # The quality gate creates FM's model (its Batch Transform job predicts the test rows with it).
        deploy = DeployModels(
            self, "DeployModels", shared=shared, rollback_alarms=rollback_alarms, created=frozenset({FM})
        )
        record = RecordRun(self, "RecordRun", shared=shared)
        recommend = BatchRecommendations(self, "Recommend", shared=shared, image=self.prep_image)
        gate = QualityGate(self, "QualityGate", shared=shared, approved=recommend.next(deploy).next(record))
        # Errors before any endpoint changed are notified; once one may have, serving is put back first.
        # Pass states cannot catch: an error in one ends the execution, which the failure alarm reports.
        failure.notify_on([*prepare.fallible, *train.fallible, *gate.fallible, *recommend.fallible])
        failure.roll_back_on([*deploy.fallible, *record.fallible])
        self.phases: tuple[Phase, ...] = (prepare, train, gate, recommend, deploy, record, failure)

        self.log_group = logs.LogGroup(
            self, "Logs", retention=logs.RetentionDays.THREE_MONTHS, removal_policy=RemovalPolicy.DESTROY
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            definition_body=sfn.DefinitionBody.from_chainable(prepare.next(train).next(gate)),
            logs=sfn.LogOptions(
                destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
            tracing_enabled=True,
            comment="loftrec retraining: prepare, train FM and BlazingText, gate, recommend, deploy, record",
        )
        role = self.state_machine.role
        for phase in self.phases:
            phase.grant(role)
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "Step Functions' own log delivery and X-Ray actions take no resource.",
        )

        self.schedule = events.Rule(
            self,
            "Schedule",
            description="Starts loftrec's retraining",
            schedule=events.Schedule.expression(config.retrain_schedule),
            enabled=config.retrain_enabled,
            targets=[
                targets.SfnStateMachine(
                    self.state_machine, input=events.RuleTargetInput.from_object({"trigger": "schedule"})
                )
            ],
        )
        self.failed_alarm = cloudwatch.Alarm(
            self,
            "FailedExecutions",
            alarm_description="A loftrec retraining run failed or was rejected by the quality gate",
            metric=self.state_machine.metric_failed(period=Duration.minutes(5), statistic="Sum"),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.failed_alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))


def sagemaker_role(scope: Construct, construct_id: str, *, config: Config, storage: DataStorage) -> iam.Role:
    """What the prep job, the training jobs and the models run as: the runs' objects, the configured raw
    data, SageMaker's logs and metrics, and the data key (also through KMS grants)."""
    role = iam.Role(
        scope,
        construct_id,
        assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
        description="loftrec: prep job, training jobs and models",
    )
    storage.bucket.grant_read_write(role, layout.any_run())
    storage.key.grant_encrypt_decrypt(role)
    allow_kms_grants(role, storage)
    if config.raw_data_bucket is not None:
        raw_prefix = (config.raw_data_uri or "")[len(f"s3://{config.raw_data_bucket}/") :]
        raw_objects = f"arn:{Aws.PARTITION}:s3:::{config.raw_data_bucket}/{raw_prefix}*"
        allow(
            role,
            ["s3:GetObject"],
            [raw_objects],
            reason="The prep job reads every file under the configured raw-data prefix.",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[f"arn:{Aws.PARTITION}:s3:::{config.raw_data_bucket}"],
                conditions={"StringLike": {"s3:prefix": [f"{raw_prefix}*"]}} if raw_prefix else None,
            )
        )
    allow(
        role,
        ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
        [f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:{SAGEMAKER_LOG_GROUPS}"],
        reason="SageMaker jobs write to log groups it names per job type under /aws/sagemaker/.",
    )
    allow(
        role,
        ["cloudwatch:PutMetricData"],
        ["*"],
        conditions={"StringLike": {"cloudwatch:namespace": SAGEMAKER_METRIC_NAMESPACES}},
        reason="cloudwatch:PutMetricData has no resource type; a condition limits it to SageMaker's.",
    )
    acknowledge(
        role,
        arn_finding(storage.bucket, "/" + layout.any_run()),
        "Jobs read and write the objects of runs, one prefix per run named at run time.",
    )
    for finding, reason in (
        (
            "Action::s3:GetObject*",
            "CDK's bucket grant for reading run objects (GetObject and its versions and tags).",
        ),
        ("Action::s3:GetBucket*", "CDK's bucket grant: bucket location for SDKs."),
        ("Action::s3:List*", "CDK's bucket grant: listing the run prefixes."),
        ("Action::s3:DeleteObject*", "Jobs overwrite their own outputs."),
        ("Action::s3:Abort*", "Multipart uploads of large shards and models."),
        ("Action::kms:ReEncrypt*", "CDK's key grant for encrypt/decrypt."),
        ("Action::kms:GenerateDataKey*", "CDK's key grant for encrypt/decrypt."),
    ):
        acknowledge(role, f"AwsSolutions-IAM5[{finding}]", reason)
    return role
