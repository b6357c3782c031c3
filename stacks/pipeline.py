"""The retraining pipeline: a Step Functions state machine that prepares data, trains FM and BlazingText
in parallel, gates on quality, deploys both endpoints blue/green with autoscaling and records the run.

The definition is written in the Amazon States Language's own terms (CustomState for every AWS call), so
that what we send to each service can be validated against botocore's models field for field (tests/).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import Aws, CfnMapping, Duration, Fn, IgnoreMode, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from contract import layout
from contract.algorithms import SCALABLE_DIMENSION, VARIANT_NAME, scalable_resource_id
from stacks.config import Config
from stacks.functions import code_asset, python_function
from stacks.nag import acknowledge
from stacks.storage import DataStorage

ROOT = Path(__file__).resolve().parent.parent
ALGORITHM_IMAGES = json.loads((Path(__file__).with_name("algorithm_images.json")).read_text())
# The prep image's build context: these folders of the repository, under their repository paths.
PREP_IMAGE_FOLDERS = ("jobs", "contract", "fm")
# How long a deployment may take before the run gives up (polled once a minute).
ENDPOINT_WAIT_SECONDS = 60
ENDPOINT_MAX_WAITS = 90
# Errors worth retrying: throttling and capacity. Everything else is caught and notified.
RETRYABLE = [
    "ThrottlingException",
    "SageMaker.ThrottlingException",
    "SageMaker.ResourceLimitExceededException",
    "SageMaker.AmazonSageMakerException",
    "ApplicationAutoScaling.ConcurrentUpdateException",
    "Lambda.TooManyRequestsException",
    "Lambda.ServiceException",
    "Lambda.SdkClientException",
    "S3.SlowDownException",
]


@dataclass(frozen=True)
class Model:
    """One of the two models the pipeline trains and serves."""

    key: str  # "fm" or "blazingtext": the key in names, mappings and the run record
    label: str  # how the console names it


FM = Model("fm", "FM")
BLAZINGTEXT = Model("blazingtext", "BlazingText")


def algorithm_image(scope: Construct, model: Model) -> str:
    """The built-in algorithm's image URI in the deploying region, from a CfnMapping generated from the
    SageMaker SDK (tools/generate_algorithm_images.py), so synth needs neither the SDK nor a region."""
    stack = Stack.of(scope)
    mapping = stack.node.try_find_child("AlgorithmImages")
    if not isinstance(mapping, CfnMapping):
        mapping = CfnMapping(stack, "AlgorithmImages", mapping=ALGORITHM_IMAGES["registries"])
    account = mapping.find_in_map(Aws.REGION, model.key)
    repository = ALGORITHM_IMAGES["repositories"][model.key]
    return Fn.join(
        "",
        [account, ".dkr.ecr.", Aws.REGION, ".", Aws.URL_SUFFIX, f"/{repository}:", ALGORITHM_IMAGES["tag"]],
    )


class RetrainingPipeline(Construct):
    """The state machine, its roles and Lambdas, its schedule, notifications and failure alarm."""

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
        self._config = config
        self._storage = storage
        self._topic = topic
        self._endpoints = endpoint_names
        self._rollback_alarms = rollback_alarms
        bucket = storage.bucket.bucket_name
        self.run_record_uri = f"s3://{bucket}/{layout.RUN_RECORD_KEY}"

        self.sagemaker_role = self._sagemaker_role()
        self.prep_image = ecr_assets.DockerImageAsset(
            self,
            "PrepImage",
            directory=str(ROOT),
            file="jobs/prep/Dockerfile",
            exclude=code_asset(PREP_IMAGE_FOLDERS),
            ignore_mode=IgnoreMode.DOCKER,
            platform=ecr_assets.Platform.LINUX_AMD64,
        )
        self.prep_image.repository.grant_pull(self.sagemaker_role)
        # SageMaker encrypts job volumes, outputs and endpoint storage with the key through KMS grants,
        # created on behalf of the role that calls it and the role it runs as.
        self._allow_kms_grants(self.sagemaker_role)

        self.functions = self._functions()
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=logs.RetentionDays.THREE_MONTHS,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            definition_body=sfn.DefinitionBody.from_chainable(self._definition()),
            logs=sfn.LogOptions(
                destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
            tracing_enabled=True,
            comment="loftrec retraining: prepare data, train FM and BlazingText, gate, deploy, record",
        )
        self._grant_state_machine()

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

    # ------------------------------------------------------------------------------------------------
    # Roles and functions

    def _sagemaker_role(self) -> iam.Role:
        """What the prep job, the training jobs and the models run as."""
        role = iam.Role(
            self,
            "SageMakerRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="loftrec: prep job, training jobs and models",
        )
        storage = self._storage
        storage.bucket.grant_read_write(role, "runs/*")
        storage.key.grant_encrypt_decrypt(role)
        if self._config.raw_data_bucket is not None:
            raw_prefix = (self._config.raw_data_uri or "")[len(f"s3://{self._config.raw_data_bucket}/") :]
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["s3:GetObject"],
                    resources=[f"arn:{Aws.PARTITION}:s3:::{self._config.raw_data_bucket}/{raw_prefix}*"],
                )
            )
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["s3:ListBucket"],
                    resources=[f"arn:{Aws.PARTITION}:s3:::{self._config.raw_data_bucket}"],
                    conditions={"StringLike": {"s3:prefix": [f"{raw_prefix}*"]}} if raw_prefix else None,
                )
            )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "logs:DescribeLogStreams",
                ],
                resources=[
                    f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:/aws/sagemaker/*"
                ],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/*", "aws/sagemaker/*"]}},
            )
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "cloudwatch:PutMetricData has no resource type; a condition limits it to SageMaker's namespaces.",
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws/sagemaker/*]",
            "SageMaker jobs write to log groups it names per job type under /aws/sagemaker/.",
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::<StorageData6BB23F4E.Arn>/runs/*]",
            "Jobs read and write the objects of runs, one prefix per run named at run time.",
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5[Action::s3:GetObject*]",
            "CDK's bucket grant for reading run objects (GetObject and its versions and tags).",
        )
        acknowledge(
            role, "AwsSolutions-IAM5[Action::s3:GetBucket*]", "CDK's bucket grant: bucket location for SDKs."
        )
        acknowledge(
            role, "AwsSolutions-IAM5[Action::s3:List*]", "CDK's bucket grant: listing the run prefixes."
        )
        acknowledge(role, "AwsSolutions-IAM5[Action::s3:DeleteObject*]", "Jobs overwrite their own outputs.")
        acknowledge(
            role, "AwsSolutions-IAM5[Action::s3:Abort*]", "Multipart uploads of large shards and models."
        )
        acknowledge(role, "AwsSolutions-IAM5[Action::kms:ReEncrypt*]", "CDK's key grant for encrypt/decrypt.")
        acknowledge(
            role, "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]", "CDK's key grant for encrypt/decrypt."
        )
        if self._config.raw_data_bucket is not None:
            acknowledge(
                role,
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{self._config.raw_data_bucket}/"
                f"{(self._config.raw_data_uri or '')[len(f's3://{self._config.raw_data_bucket}/') :]}*]",
                "The prep job reads every file under the configured raw-data prefix.",
            )
        return role

    def _functions(self) -> dict[str, lambda_.Function]:
        config = self._config
        common_env = {
            "RUN_RECORD_URI": self.run_record_uri,
            "GATE_MIN_IMPROVEMENT": str(config.gate_min_improvement),
            "GATE_MAX_REGRESSION": str(config.gate_max_regression),
        }
        defaults = {
            "fm_instance_type": config.fm_instance_type,
            "fm_instance_count": config.fm_instance_count,
            "fm_hyperparameters": dict(config.fm_hyperparameters),
            "blazingtext_instance_type": config.blazingtext_instance_type,
            "blazingtext_hyperparameters": dict(config.blazingtext_hyperparameters),
        }
        specs: dict[str, tuple[str, str, dict[str, str]]] = {
            "start_run": (
                "lambdas.pipeline.start_run.handler",
                "Validates a run's input and names its resources",
                {
                    "RUN_DEFAULTS": json.dumps(defaults, sort_keys=True),
                    "DATA_BUCKET": self._storage.bucket.bucket_name,
                },
            ),
            "gate": (
                "lambdas.pipeline.gate.handler",
                "Quality gate: FM against the baselines and the deployed model",
                common_env,
            ),
            "plan_endpoint": (
                "lambdas.pipeline.endpoints.plan_handler",
                "Decides between creating and updating an endpoint",
                common_env,
            ),
            "rollback": (
                "lambdas.pipeline.endpoints.rollback_handler",
                "Puts endpoints back on the deployed run's configurations",
                {
                    **common_env,
                    "FM_ENDPOINT": self._endpoints["fm"],
                    "BLAZINGTEXT_ENDPOINT": self._endpoints["blazingtext"],
                },
            ),
            "export_titles": (
                "lambdas.serving.title_table.handler",
                "Exports the known-title vector table of a run's BlazingText model",
                {},
            ),
        }
        functions: dict[str, lambda_.Function] = {}
        for name, (handler, description, environment) in specs.items():
            functions[name] = python_function(
                self,
                "".join(part.title() for part in name.split("_")) + "Function",
                handler=handler,
                description=description,
                environment=environment,
                timeout=Duration.minutes(5) if name == "export_titles" else Duration.minutes(1),
                memory_size=1024 if name == "export_titles" else 256,
                extra_wildcard_reason=(
                    " application-autoscaling:DescribeScalableTargets neither."
                    if name in ("plan_endpoint", "rollback")
                    else ""
                ),
            )
        bucket, key = self._storage.bucket, self._storage.key
        for name, fn in functions.items():
            if name != "start_run":
                key.grant_encrypt_decrypt(fn)
        bucket.grant_read(functions["gate"], layout.RUN_RECORD_KEY)
        bucket.grant_put(functions["gate"], "runs/*/gate.json")
        bucket.grant_read(functions["rollback"], layout.RUN_RECORD_KEY)
        bucket.grant_read(functions["export_titles"], "runs/*")
        bucket.grant_put(functions["export_titles"], "runs/*/serving/*")
        sagemaker_arn = f"arn:{Aws.PARTITION}:sagemaker:{Aws.REGION}:{Aws.ACCOUNT_ID}"
        functions["gate"].add_to_role_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DescribeTrainingJob"],
                resources=[f"{sagemaker_arn}:training-job/loftrec-*"],
            )
        )
        endpoint_arns = [f"{sagemaker_arn}:endpoint/{name}" for name in self._endpoints.values()]
        functions["plan_endpoint"].add_to_role_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig"],
                resources=[*endpoint_arns, f"{sagemaker_arn}:endpoint-config/loftrec-*"],
            )
        )
        for fn in (functions["plan_endpoint"], functions["rollback"]):
            fn.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["application-autoscaling:DescribeScalableTargets"], resources=["*"]
                )
            )
        functions["rollback"].add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "sagemaker:DescribeEndpoint",
                    "sagemaker:UpdateEndpoint",
                    "sagemaker:DeleteEndpoint",
                ],
                resources=[*endpoint_arns, f"{sagemaker_arn}:endpoint-config/loftrec-*"],
            )
        )
        for name in ("gate", "export_titles", "plan_endpoint", "rollback"):
            role = functions[name].role
            assert role is not None
            acknowledge(
                role,
                "AwsSolutions-IAM5[Action::kms:ReEncrypt*]",
                "CDK's key grant: the data bucket is encrypted with the stack's key.",
            )
            acknowledge(
                role,
                "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
                "CDK's key grant: the data bucket is encrypted with the stack's key.",
            )
        for name, reason in (
            ("gate", "Writes gate.json into the run being gated; run ids are made at run time."),
            (
                "export_titles",
                "Reads the run's model and index, writes its serving table; run ids are made at run time.",
            ),
        ):
            role = functions[name].role
            assert role is not None
            for finding in (
                "AwsSolutions-IAM5[Resource::<StorageData6BB23F4E.Arn>/runs/*/gate.json]",
                "AwsSolutions-IAM5[Resource::<StorageData6BB23F4E.Arn>/runs/*]",
                "AwsSolutions-IAM5[Resource::<StorageData6BB23F4E.Arn>/runs/*/serving/*]",
                "AwsSolutions-IAM5[Action::s3:GetObject*]",
                "AwsSolutions-IAM5[Action::s3:GetBucket*]",
                "AwsSolutions-IAM5[Action::s3:List*]",
                "AwsSolutions-IAM5[Action::s3:Abort*]",
            ):
                acknowledge(role, finding, reason)
        for name in ("gate", "rollback"):
            role = functions[name].role
            assert role is not None
            for finding in (
                "AwsSolutions-IAM5[Action::s3:GetObject*]",
                "AwsSolutions-IAM5[Action::s3:GetBucket*]",
                "AwsSolutions-IAM5[Action::s3:List*]",
            ):
                acknowledge(role, finding, "CDK's read grant, limited to the deployed-run record.")
        gate_role = functions["gate"].role
        assert gate_role is not None
        acknowledge(
            gate_role,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:training-job/loftrec-*]",
            "Training jobs are named per run at run time; all of loftrec's start with loftrec-.",
        )
        for name in ("plan_endpoint", "rollback"):
            role = functions[name].role
            assert role is not None
            acknowledge(
                role,
                "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:endpoint-config/loftrec-*]",
                "Endpoint configurations are named per run at run time; all start with loftrec-.",
            )
        return functions

    def _allow_kms_grants(self, grantee: iam.IGrantable) -> None:
        key = self._storage.key.key_arn
        policy = grantee.grant_principal
        policy.add_to_principal_policy(iam.PolicyStatement(actions=["kms:DescribeKey"], resources=[key]))
        policy.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["kms:CreateGrant"],
                resources=[key],
                conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            )
        )

    def _grant_state_machine(self) -> None:
        role = self.state_machine.role
        self._allow_kms_grants(role)
        sagemaker_arn = f"arn:{Aws.PARTITION}:sagemaker:{Aws.REGION}:{Aws.ACCOUNT_ID}"
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "sagemaker:CreateProcessingJob",
                    "sagemaker:DescribeProcessingJob",
                    "sagemaker:StopProcessingJob",
                    "sagemaker:CreateTrainingJob",
                    "sagemaker:DescribeTrainingJob",
                    "sagemaker:StopTrainingJob",
                    "sagemaker:CreateModel",
                    "sagemaker:CreateEndpointConfig",
                    "sagemaker:AddTags",
                    "sagemaker:ListTags",
                ],
                resources=[
                    f"{sagemaker_arn}:processing-job/loftrec-*",
                    f"{sagemaker_arn}:training-job/loftrec-*",
                    f"{sagemaker_arn}:model/loftrec-*",
                    f"{sagemaker_arn}:endpoint-config/loftrec-*",
                ],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "sagemaker:CreateEndpoint",
                    "sagemaker:UpdateEndpoint",
                    "sagemaker:DescribeEndpoint",
                    "sagemaker:AddTags",
                ],
                resources=[
                    *(f"{sagemaker_arn}:endpoint/{name}" for name in self._endpoints.values()),
                    f"{sagemaker_arn}:endpoint-config/loftrec-*",
                ],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[self.sagemaker_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )
        # The .sync integrations follow jobs through EventBridge rules that Step Functions manages.
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[
                    f"arn:{Aws.PARTITION}:events:{Aws.REGION}:{Aws.ACCOUNT_ID}:rule/StepFunctionsGetEventsForSageMakerTrainingJobsRule",
                    f"arn:{Aws.PARTITION}:events:{Aws.REGION}:{Aws.ACCOUNT_ID}:rule/StepFunctionsGetEventsForSageMakerProcessingJobsRule",
                ],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "application-autoscaling:RegisterScalableTarget",
                    "application-autoscaling:DeregisterScalableTarget",
                    "application-autoscaling:PutScalingPolicy",
                    "application-autoscaling:DescribeScalableTargets",
                    "application-autoscaling:DescribeScalingPolicies",
                ],
                resources=["*"],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["iam:CreateServiceLinkedRole"],
                resources=[
                    f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/*"
                ],
                conditions={
                    "StringLike": {"iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"}
                },
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:DescribeAlarms"],
                resources=[alarm.alarm_arn for alarms in self._rollback_alarms.values() for alarm in alarms],
            )
        )
        self._storage.bucket.grant_read(role, "runs/*/prep/manifest.json")
        self._storage.bucket.grant_put(role, layout.RUN_RECORD_KEY)
        self._storage.key.grant_encrypt_decrypt(role)
        self._topic.grant_publish(role)
        for fn in self.functions.values():
            fn.grant_invoke(role)

        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "Application Auto Scaling's scalable-target actions take no resource ARN for SageMaker variants.",
        )
        for kind in ("processing-job", "training-job", "model", "endpoint-config"):
            acknowledge(
                role,
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:{kind}/loftrec-*]",
                f"Each run names its {kind}s at run time; all of loftrec's start with loftrec-.",
            )
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/*]",
            "The service-linked role of SageMaker autoscaling, created on first registration.",
        )
        for finding in (
            "AwsSolutions-IAM5[Resource::<StorageData6BB23F4E.Arn>/runs/*/prep/manifest.json]",
            "AwsSolutions-IAM5[Action::s3:GetObject*]",
            "AwsSolutions-IAM5[Action::s3:GetBucket*]",
            "AwsSolutions-IAM5[Action::s3:List*]",
            "AwsSolutions-IAM5[Action::s3:Abort*]",
            "AwsSolutions-IAM5[Action::kms:ReEncrypt*]",
            "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
        ):
            acknowledge(
                role, finding, "CDK's grants: the run's manifest (one per run id) and the run record."
            )
        for fn in self.functions.values():
            acknowledge(
                role,
                f"AwsSolutions-IAM5[Resource::<{Stack.of(self).get_logical_id(fn.node.default_child)}.Arn>:*]",  # type: ignore[arg-type]
                "CDK's invoke grant covers the function's versions and aliases.",
            )

    # ------------------------------------------------------------------------------------------------
    # The definition

    def _task(
        self,
        name: str,
        resource: str,
        parameters: dict[str, Any],
        *,
        result_selector: dict[str, Any] | None = None,
        result_path: str | None = None,
        output_path: str | None = None,
        retry: bool = True,
    ) -> sfn.CustomState:
        state: dict[str, Any] = {"Type": "Task", "Resource": resource, "Parameters": parameters}
        if result_selector is not None:
            state["ResultSelector"] = result_selector
        # None discards the result (the state passes its input on). A Python None would vanish on its way
        # through jsii; JsonPath.DISCARD is the token CDK renders as JSON null.
        state["ResultPath"] = sfn.JsonPath.DISCARD if result_path is None else result_path
        if output_path is not None:
            state["OutputPath"] = output_path
        task = sfn.CustomState(self, name, state_json=state)
        if retry:
            task.add_retry(errors=RETRYABLE, interval=Duration.seconds(10), max_attempts=4, backoff_rate=2.0)
        return task

    def _lambda(
        self,
        name: str,
        function: str,
        payload: dict[str, Any],
        *,
        result_path: str | None,
        key: str = "value",
    ) -> sfn.CustomState:
        """Invoke one of the pipeline's functions; its answer lands at `result_path`.`key`."""
        return self._task(
            name,
            f"arn:{Aws.PARTITION}:states:::lambda:invoke",
            {"FunctionName": self.functions[function].function_arn, "Payload": payload},
            result_selector={f"{key}.$": "$.Payload"},
            result_path=result_path,
        )

    def _catch(self, state: sfn.CustomState | sfn.Parallel, handler: sfn.IChainable) -> None:
        """Send any uncaught error of `state` to `handler`, recording which state failed."""
        state_name = state.state_id
        note = sfn.Pass(
            self,
            f"Failed: {state_name}",
            parameters={
                "state": state_name,
                "error": sfn.JsonPath.string_at("$.error.Error"),
                "cause": sfn.JsonPath.string_at("$.error.Cause"),
            },
            result_path="$.failure",
        )
        note.next(handler)
        state.add_catch(note, errors=["States.ALL"], result_path="$.error")

    def _sns(self, name: str, subject: str, message: str) -> sfn.CustomState:
        return self._task(
            name,
            f"arn:{Aws.PARTITION}:states:::sns:publish",
            {"TopicArn": self._topic.topic_arn, "Subject": subject, "Message.$": message},
            result_path=None,
        )

    def _definition(self) -> sfn.IChainable:
        config = self._config
        partition = Aws.PARTITION
        bucket = self._storage.bucket.bucket_name
        console = f"https://{Aws.REGION}.console.aws.amazon.com/states/home?region={Aws.REGION}#/v2/executions/details/"

        notify_failure = self._sns(
            "Notify failure",
            "loftrec: retraining run failed",
            'States.Format(\'Run {} failed in state "{}": {}. Cause: {}. Serving is left on, or put back on, '
            "the previously deployed run, if any. Execution: "
            + console
            + "{}', $$.Execution.Name, $.failure.state, $.failure.error, $.failure.cause, $$.Execution.Id)",
        )
        run_failed = sfn.Fail(
            self, "Run failed", error="RunFailed", cause="See the notification and the failed state"
        )
        notify_failure.next(run_failed)
        # A failure after endpoints may have changed first puts serving back as the deployed run had it.
        rollback = self._lambda(
            "Roll back serving",
            "rollback",
            {
                "run_configs": {
                    "fm.$": "$.run.names.fm_config",
                    "blazingtext.$": "$.run.names.blazingtext_config",
                }
            },
            result_path="$.rollback",
        )
        rollback.add_retry(
            errors=["EndpointBusyError"],
            interval=Duration.minutes(1),
            max_attempts=30,
            backoff_rate=1.2,
            max_delay=Duration.minutes(5),  # at most about two hours in all
        )
        rollback.add_catch(notify_failure, errors=["States.ALL"], result_path="$.rollback_error")
        rollback.next(notify_failure)

        start = self._lambda(
            "Start run",
            "start_run",
            {
                "input.$": "$",
                "execution_name.$": "$$.Execution.Name",
                "start_time.$": "$$.Execution.StartTime",
            },
            # Every later state reads the run as $.run.*; the input's overrides are in it.
            result_path="$",
            key="run",
        )

        prep_args = [
            "--input",
            layout.CONTAINER_INPUT,
            "--output",
            layout.CONTAINER_OUTPUT,
            "--min-customer-reviews",
            str(config.min_customer_reviews),
            "--min-product-reviews",
            str(config.min_product_reviews),
            "--max-bad-row-fraction",
            str(config.max_bad_row_fraction),
            "--failure-message",
            layout.CONTAINER_FAILURE_MESSAGE,
        ]
        prepare = self._task(
            "Prepare data",
            f"arn:{partition}:states:::sagemaker:createProcessingJob.sync",
            {
                "ProcessingJobName.$": "$.run.names.prep",
                "RoleArn": self.sagemaker_role.role_arn,
                "AppSpecification": {
                    "ImageUri": self.prep_image.image_uri,
                    "ContainerArguments.$": "States.Array("
                    + ", ".join(f"'{arg}'" for arg in prep_args)
                    + ", '--fm-instance-count', States.Format('{}', $.run.fm.instance_count))",
                },
                "ProcessingResources": {
                    "ClusterConfig": {
                        "InstanceCount": 1,
                        "InstanceType": config.prep_instance_type,
                        "VolumeSizeInGB": config.prep_volume_size_gb,
                        "VolumeKmsKeyId": self._storage.key.key_arn,
                    }
                },
                "ProcessingInputs": [
                    {
                        "InputName": "reviews",
                        "S3Input": {
                            "S3Uri": config.raw_data_uri or "s3://configure-raw-data-uri/",
                            "LocalPath": layout.CONTAINER_INPUT,
                            "S3DataType": "S3Prefix",
                            "S3InputMode": "File",
                            "S3DataDistributionType": "FullyReplicated",
                        },
                    }
                ],
                "ProcessingOutputConfig": {
                    "KmsKeyId": self._storage.key.key_arn,
                    "Outputs": [
                        {
                            "OutputName": "prep",
                            "S3Output": {
                                "S3Uri.$": "States.Format('{}prep', $.run.run_uri)",
                                "LocalPath": layout.CONTAINER_OUTPUT,
                                "S3UploadMode": "EndOfJob",
                            },
                        }
                    ],
                },
                "StoppingCondition": {"MaxRuntimeInSeconds": config.training_max_runtime_seconds},
                "Tags": [{"Key": "project", "Value": "loftrec"}],
            },
            result_selector={"job_arn.$": "$.ProcessingJobArn"},
            result_path="$.prep",
        )
        read_manifest = self._task(
            "Read manifest",
            f"arn:{partition}:states:::aws-sdk:s3:getObject",
            {"Bucket": bucket, "Key.$": "States.Format('{}prep/manifest.json', $.run.run_prefix)"},
            result_selector={"content.$": "States.StringToJson($.Body)"},
            result_path="$.manifest",
        )
        # SageMaker hyperparameters are strings; the manifest's feature_dim is a number.
        fm_settings = sfn.CustomState(
            self,
            "Set FM feature_dim",
            state_json={
                "Type": "Pass",
                "Parameters": {"feature_dim.$": "States.Format('{}', $.manifest.content.feature_dim)"},
                "ResultPath": "$.fm_fixed",
            },
        )

        train = sfn.Parallel(
            self,
            "Train models",
            result_selector={"fm.$": "$[0]", "blazingtext.$": "$[1]"},
            result_path="$.training",
        )
        train.branch(self._train_fm())
        train.branch(self._train_blazingtext())

        gate = self._lambda(
            "Quality gate",
            "gate",
            {
                "training_job_name.$": "$.training.fm.job_name",
                "baselines.$": "$.manifest.content.baselines",
                "run_uri.$": "$.run.run_uri",
            },
            result_path="$.gate",
        )
        notify_rejection = self._sns(
            "Notify rejection",
            "loftrec: new model rejected, serving unchanged",
            "States.Format('Run {} was rejected by the quality gate; serving is unchanged. Reasons: {}. "
            "Execution: " + console + "{}', $$.Execution.Name, $.gate.value.reasons, $$.Execution.Id)",
        )
        rejected = sfn.Fail(
            self,
            "Rejected by quality gate",
            error="QualityGateRejected",
            cause="FM did not beat the bar; serving unchanged",
        )
        notify_rejection.next(rejected)

        deploy = sfn.Parallel(self, "Deploy models", result_path=sfn.JsonPath.DISCARD)
        deploy.branch(self._deploy(FM))
        deploy.branch(self._deploy(BLAZINGTEXT))

        record = sfn.Pass(
            self,
            "Describe deployed run",
            parameters={
                "schema_version": 1,
                "run_id": sfn.JsonPath.string_at("$.run.run_id"),
                "deployed_at": sfn.JsonPath.string_at("$$.State.EnteredTime"),
                "endpoints": dict(self._endpoints),
                "endpoint_configs": {
                    "fm": sfn.JsonPath.string_at("$.run.names.fm_config"),
                    "blazingtext": sfn.JsonPath.string_at("$.run.names.blazingtext_config"),
                },
                "run_uri": sfn.JsonPath.string_at("$.run.run_uri"),
                "index_uri": sfn.JsonPath.format("{}prep/index/", sfn.JsonPath.string_at("$.run.run_uri")),
                "title_table_uri": sfn.JsonPath.format("{}serving/", sfn.JsonPath.string_at("$.run.run_uri")),
                "manifest_uri": sfn.JsonPath.format(
                    "{}prep/manifest.json", sfn.JsonPath.string_at("$.run.run_uri")
                ),
                "metrics": {
                    "fm_test_rmse": sfn.JsonPath.number_at("$.gate.value.fm_test_rmse"),
                    "baseline_global_mean_rmse": sfn.JsonPath.number_at(
                        "$.gate.value.baseline_global_mean_rmse"
                    ),
                    "baseline_bias_rmse": sfn.JsonPath.number_at("$.gate.value.baseline_bias_rmse"),
                },
            },
            result_path="$.record",
        )
        write_record = self._task(
            "Record deployed run",
            f"arn:{partition}:states:::aws-sdk:s3:putObject",
            {
                "Bucket": bucket,
                "Key": layout.RUN_RECORD_KEY,
                "Body.$": "States.JsonToString($.record)",
                "ContentType": "application/json",
            },
            result_path=None,
        )
        notify_success = self._sns(
            "Notify deployed",
            "loftrec: new models deployed",
            "States.Format('Run {} is serving: FM test RMSE {} (global mean {}, bias model {}). Execution: "
            + console
            + "{}', $.run.run_id, $.gate.value.fm_test_rmse, $.gate.value.baseline_global_mean_rmse, "
            "$.gate.value.baseline_bias_rmse, $$.Execution.Id)",
        )
        done = sfn.Succeed(self, "Deployed")

        # Pass states cannot catch; an error in one ends the execution, which the failure alarm reports.
        for state in (start, prepare, read_manifest, train, gate, notify_rejection):
            self._catch(state, notify_failure)
        for state in (deploy, write_record):
            self._catch(state, rollback)
        # The models serve and the record is written: a lost notification does not undo that.
        notify_success.add_catch(done, errors=["States.ALL"], result_path="$.notify_error")
        return (
            start.next(prepare)
            .next(read_manifest)
            .next(fm_settings)
            .next(train)
            .next(gate)
            .next(
                sfn.Choice(self, "Deploy?")
                .when(
                    sfn.Condition.boolean_equals("$.gate.value.deploy", True),
                    deploy.next(record).next(write_record).next(notify_success).next(done),
                )
                .otherwise(notify_rejection)
            )
        )

    def _training_job(self, model: Model, parameters: dict[str, Any]) -> dict[str, Any]:
        config = self._config
        stopping: dict[str, Any] = {"MaxRuntimeInSeconds": config.training_max_runtime_seconds}
        job: dict[str, Any] = {
            "TrainingJobName.$": f"$.run.names.{model.key}",
            "AlgorithmSpecification": {
                "TrainingImage": algorithm_image(self, model),
                "TrainingInputMode": "File",
            },
            "RoleArn": self.sagemaker_role.role_arn,
            "OutputDataConfig": {
                "S3OutputPath.$": f"States.Format('{{}}{model.key}/', $.run.run_uri)",
                "KmsKeyId": self._storage.key.key_arn,
            },
            "StoppingCondition": stopping,
            "EnableNetworkIsolation": True,
            "Tags": [{"Key": "project", "Value": "loftrec"}],
            **parameters,
        }
        if config.use_spot_training:
            job["EnableManagedSpotTraining"] = True
            stopping["MaxWaitTimeInSeconds"] = 3600
        return job

    def _train_fm(self) -> sfn.IChainable:
        config = self._config
        return self._task(
            "Train FM",
            f"arn:{Aws.PARTITION}:states:::sagemaker:createTrainingJob.sync",
            self._training_job(
                FM,
                {
                    "HyperParameters.$": "States.JsonMerge($.run.fm.hyperparameters, $.fm_fixed, false)",
                    "InputDataConfig": [
                        self._channel(
                            "train", "prep/train/", "ShardedByS3Key", "application/x-recordio-protobuf"
                        ),
                        self._channel(
                            "test", "prep/test/", "FullyReplicated", "application/x-recordio-protobuf"
                        ),
                    ],
                    "ResourceConfig": {
                        "InstanceCount.$": "$.run.fm.instance_count",
                        "InstanceType.$": "$.run.fm.instance_type",
                        "VolumeSizeInGB": 30,
                        "VolumeKmsKeyId": self._storage.key.key_arn,
                    },
                    # Several hosts exchange model updates: keep that traffic encrypted.
                    "EnableInterContainerTrafficEncryption": config.fm_instance_count > 1,
                },
            ),
            result_selector={
                "job_name.$": "$.TrainingJobName",
                "model_data.$": "$.ModelArtifacts.S3ModelArtifacts",
            },
            result_path="$.result",
            output_path="$.result",
        )

    def _train_blazingtext(self) -> sfn.IChainable:
        config = self._config
        train = self._task(
            "Train BlazingText",
            f"arn:{Aws.PARTITION}:states:::sagemaker:createTrainingJob.sync",
            self._training_job(
                BLAZINGTEXT,
                {
                    "HyperParameters.$": "$.run.blazingtext.hyperparameters",
                    "InputDataConfig": [
                        self._channel("train", "prep/corpus/", "FullyReplicated", "text/plain")
                    ],
                    "ResourceConfig": {
                        "InstanceCount": config.blazingtext_instance_count,
                        "InstanceType.$": "$.run.blazingtext.instance_type",
                        "VolumeSizeInGB": config.blazingtext_volume_size_gb,
                        "VolumeKmsKeyId": self._storage.key.key_arn,
                    },
                },
            ),
            result_selector={
                "job_name.$": "$.TrainingJobName",
                "model_data.$": "$.ModelArtifacts.S3ModelArtifacts",
            },
            result_path="$.result",
        )
        export = self._lambda(
            "Export title table",
            "export_titles",
            {
                "model_artifact_uri.$": "$.result.model_data",
                "index_uri.$": "States.Format('{}prep/index/', $.run.run_uri)",
                "output_uri.$": "States.Format('{}serving/', $.run.run_uri)",
            },
            result_path=None,
        )
        export_done = sfn.Pass(self, "BlazingText ready", input_path="$.result")
        return train.next(export).next(export_done)

    @staticmethod
    def _channel(name: str, prefix: str, distribution: str, content_type: str) -> dict[str, Any]:
        return {
            "ChannelName": name,
            "ContentType": content_type,
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri.$": f"States.Format('{{}}{prefix}', $.run.run_uri)",
                    "S3DataDistributionType": distribution,
                }
            },
        }

    def _deploy(self, model: Model) -> sfn.IChainable:
        config = self._config
        partition = Aws.PARTITION
        label, key = model.label, model.key
        endpoint = self._endpoints[key]
        resource_id = scalable_resource_id(endpoint)

        create_model = self._task(
            f"Create {label} model",
            f"arn:{partition}:states:::sagemaker:createModel",
            {
                "ModelName.$": f"$.run.names.{key}_model",
                "ExecutionRoleArn": self.sagemaker_role.role_arn,
                "PrimaryContainer": {
                    "Image": algorithm_image(self, model),
                    "ModelDataUrl.$": f"$.training.{key}.model_data",
                },
                "EnableNetworkIsolation": True,
                "Tags": [{"Key": "project", "Value": "loftrec"}],
            },
            result_path=None,
        )
        create_config = self._task(
            f"Create {label} endpoint config",
            f"arn:{partition}:states:::sagemaker:createEndpointConfig",
            {
                "EndpointConfigName.$": f"$.run.names.{key}_config",
                "KmsKeyId": self._storage.key.key_arn,
                "ProductionVariants": [
                    {
                        "VariantName": VARIANT_NAME,
                        "ModelName.$": f"$.run.names.{key}_model",
                        "InitialInstanceCount": config.autoscaling_min_instances,
                        "InstanceType": config.endpoint_instance_type,
                    }
                ],
                "Tags": [{"Key": "project", "Value": "loftrec"}],
            },
            result_path=None,
        )
        plan = self._lambda(
            f"Plan {label} endpoint",
            "plan_endpoint",
            {"endpoint_name": endpoint, "instance_type": config.endpoint_instance_type},
            result_path=f"$.plan_{key}",
        )
        plan.add_retry(
            errors=["EndpointBusyError"],
            interval=Duration.minutes(1),
            max_attempts=30,
            backoff_rate=1.2,
            max_delay=Duration.minutes(5),  # at most about two hours in all
        )
        create_endpoint = self._task(
            f"Create {label} endpoint",
            f"arn:{partition}:states:::sagemaker:createEndpoint",
            {
                "EndpointName": endpoint,
                "EndpointConfigName.$": f"$.run.names.{key}_config",
                "Tags": [{"Key": "project", "Value": "loftrec"}],
            },
            result_path=None,
        )
        deregister = self._task(
            f"Deregister {label} autoscaling",
            f"arn:{partition}:states:::aws-sdk:applicationautoscaling:deregisterScalableTarget",
            {
                "ServiceNamespace": "sagemaker",
                "ResourceId": resource_id,
                "ScalableDimension": SCALABLE_DIMENSION,
            },
            result_path=None,
        )
        update_endpoint = self._task(
            f"Update {label} endpoint",
            f"arn:{partition}:states:::sagemaker:updateEndpoint",
            {
                "EndpointName": endpoint,
                "EndpointConfigName.$": f"$.run.names.{key}_config",
                "RetainAllVariantProperties": True,
                "DeploymentConfig": {
                    "BlueGreenUpdatePolicy": {
                        "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 300},
                        "TerminationWaitInSeconds": 300,
                        "MaximumExecutionTimeoutInSeconds": 3600,
                    },
                    "AutoRollbackConfiguration": {
                        "Alarms": [{"AlarmName": alarm.alarm_name} for alarm in self._rollback_alarms[key]]
                    },
                },
            },
            result_path=None,
        )
        start_wait = sfn.Pass(
            self, f"Start waiting for {label}", result=sfn.Result.from_number(0), result_path=f"$.waits_{key}"
        )
        wait = sfn.Wait(
            self,
            f"Wait for {label} endpoint",
            time=sfn.WaitTime.duration(Duration.seconds(ENDPOINT_WAIT_SECONDS)),
        )
        check = self._task(
            f"Check {label} endpoint",
            f"arn:{partition}:states:::aws-sdk:sagemaker:describeEndpoint",
            {"EndpointName": endpoint},
            result_selector={"status.$": "$.EndpointStatus", "config.$": "$.EndpointConfigName"},
            result_path=f"$.endpoint_{key}",
        )
        count = sfn.Pass(
            self,
            f"Count {label} waits",
            parameters={"n": sfn.JsonPath.math_add(sfn.JsonPath.number_at(f"$.waits_{key}"), 1)},
            result_path=f"$.count_{key}",
        )
        recount = sfn.Pass(
            self, f"Keep {label} count", input_path=f"$.count_{key}.n", result_path=f"$.waits_{key}"
        )
        failed = sfn.Fail(
            self, f"{label} endpoint failed", error="EndpointFailed", cause=f"Endpoint {endpoint} went Failed"
        )
        rolled_back = sfn.Fail(
            self,
            f"{label} update rolled back",
            error="EndpointRolledBack",
            cause=f"Endpoint {endpoint} is back on its previous configuration (deployment guardrail alarms)",
        )
        timed_out = sfn.Fail(
            self,
            f"{label} endpoint timed out",
            error="EndpointTimeout",
            cause=f"Endpoint {endpoint} not InService after {ENDPOINT_WAIT_SECONDS * ENDPOINT_MAX_WAITS} s",
        )
        register = self._task(
            f"Register {label} autoscaling",
            f"arn:{partition}:states:::aws-sdk:applicationautoscaling:registerScalableTarget",
            {
                "ServiceNamespace": "sagemaker",
                "ResourceId": resource_id,
                "ScalableDimension": SCALABLE_DIMENSION,
                "MinCapacity": config.autoscaling_min_instances,
                "MaxCapacity": config.autoscaling_max_instances,
            },
            result_path=None,
        )
        policy = self._task(
            f"Put {label} scaling policy",
            f"arn:{partition}:states:::aws-sdk:applicationautoscaling:putScalingPolicy",
            {
                "PolicyName": f"{endpoint}-invocations-per-instance",
                "ServiceNamespace": "sagemaker",
                "ResourceId": resource_id,
                "ScalableDimension": SCALABLE_DIMENSION,
                "PolicyType": "TargetTrackingScaling",
                "TargetTrackingScalingPolicyConfiguration": {
                    "TargetValue": config.autoscaling_target_invocations,
                    "PredefinedMetricSpecification": {
                        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
                    },
                    "ScaleInCooldown": 300,
                    "ScaleOutCooldown": 60,
                },
            },
            result_path=None,
        )

        waiting = (
            start_wait.next(wait)
            .next(check)
            .next(
                sfn.Choice(self, f"{label} endpoint ready?")
                .when(
                    sfn.Condition.and_(
                        sfn.Condition.string_equals(f"$.endpoint_{key}.status", "InService"),
                        sfn.Condition.string_equals_json_path(
                            f"$.endpoint_{key}.config", f"$.run.names.{key}_config"
                        ),
                    ),
                    register.next(policy),
                )
                .when(sfn.Condition.string_equals(f"$.endpoint_{key}.status", "InService"), rolled_back)
                .when(sfn.Condition.string_equals(f"$.endpoint_{key}.status", "Failed"), failed)
                .when(
                    sfn.Condition.number_greater_than_equals(f"$.waits_{key}", ENDPOINT_MAX_WAITS), timed_out
                )
                .otherwise(count.next(recount).next(wait))
            )
        )
        create_endpoint.next(waiting)
        update_endpoint.next(start_wait)
        return (
            create_model.next(create_config)
            .next(plan)
            .next(
                sfn.Choice(self, f"{label} endpoint exists?")
                .when(sfn.Condition.string_equals(f"$.plan_{key}.value.action", "create"), create_endpoint)
                .when(
                    sfn.Condition.boolean_equals(f"$.plan_{key}.value.deregister_first", True),
                    deregister.next(update_endpoint),
                )
                .otherwise(update_endpoint)
            )
        )
