"""Phase 4, deploy: both models at once ("Deploy models"), each as `DeployModel` has it: create the model and
its endpoint configuration, create the endpoint or update it blue/green (with the deployment guardrail's
alarms), wait until it serves the new configuration, then register its autoscaling."""

from __future__ import annotations

from aws_cdk import Aws, Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from contract.algorithms import LABELS, MODELS, SCALABLE_DIMENSION, VARIANT_NAME, scalable_resource_id
from contract.instances import has_local_storage
from stacks.pipeline import asl, paths
from stacks.pipeline.images import algorithm_image
from stacks.pipeline.shared import (
    TAGS,
    Fallible,
    SharedResources,
    allow,
    allow_autoscaling_validation,
    endpoint_arns,
    run_resources,
    start_sagemaker_work,
)
from stacks.pipeline.steps import LambdaStep, pipeline_settings

# How long a deployment may take before the run gives up (polled once a minute).
ENDPOINT_WAIT_SECONDS = 60
ENDPOINT_MAX_WAITS = 90
# Blue/green: all traffic to the new fleet at once, then watch the guardrail alarms before the old one goes.
BLUE_GREEN_UPDATE = {
    "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 300},
    "TerminationWaitInSeconds": 300,
    "MaximumExecutionTimeoutInSeconds": 3600,
}
AUTOSCALING_SERVICE = "sagemaker.application-autoscaling.amazonaws.com"


def _storage_key(instance_type: str, key_arn: str) -> dict[str, str]:
    """CreateEndpointConfig's KmsKeyId ("If you specify a value for KmsKeyId when using any nitro-based
    instances with local storage, the call to CreateEndpointConfig fails":
    https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateEndpointConfig.html)."""
    return {} if has_local_storage(instance_type) else {"KmsKeyId": key_arn}


def create_model(scope: Construct, shared: SharedResources, model: str) -> sfn.CustomState:
    """ "Create <label> model": the run's SageMaker model of a trained model's artifact."""
    return asl.task(
        scope,
        f"Create {LABELS[model]} model",
        asl.integration("sagemaker:createModel"),
        {
            "ModelName.$": paths.run("names", f"{model}_model"),
            "ExecutionRoleArn": shared.sagemaker_role.role_arn,
            "PrimaryContainer": {
                "Image": algorithm_image(scope, model),
                "ModelDataUrl.$": paths.trained(model, "model_data"),
            },
            "EnableNetworkIsolation": True,
            "Tags": TAGS,
        },
    )


def allow_models(role: iam.IRole, shared: SharedResources) -> None:
    """Create the run's models (and tag them), passing them the SageMaker role."""
    start_sagemaker_work(role, shared)
    allow(
        role,
        ["sagemaker:CreateModel", "sagemaker:AddTags", "sagemaker:ListTags"],
        [run_resources("model")],
        reason="Each run names its models at run time; all start with loftrec-.",
    )


class PlanEndpointStep(LambdaStep):
    """lambdas.pipeline.endpoints.plan_handler: create or update an endpoint, and whether its autoscaling
    must be deregistered first (an instance type change)."""

    def __init__(self, shared: SharedResources) -> None:
        super().__init__(
            shared,
            "PlanEndpoint",
            handler="lambdas.pipeline.endpoints.plan_handler",
            description="Decides between creating and updating an endpoint",
            environment=pipeline_settings(shared),
            extra_wildcard_reason=" Application Auto Scaling's DescribeScalableTargets neither (no resource "
            "ARN names an endpoint variant).",
        )
        shared.storage.grant_key(self.role)
        allow(
            self.role,
            ["sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig"],
            endpoint_arns(shared),
            reason="Endpoint configurations are named per run at run time; all start with loftrec-.",
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["application-autoscaling:DescribeScalableTargets"], resources=["*"])
        )


class DeployModel(sfn.StateMachineFragment):
    """One model's deployment, from "Create <label> model" (unless `model_created`: the quality gate creates
    FM's, to predict the test rows with it) to "Put <label> scaling policy"; the Fail states end the branch
    (EndpointFailed, EndpointRolledBack, EndpointTimeout)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        shared: SharedResources,
        model: str,
        plan: PlanEndpointStep,
        rollback_alarms: list[cloudwatch.IAlarm],
        model_created: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        config = shared.config
        label = LABELS[model]
        endpoint = shared.endpoint_names[model]
        resource_id = scalable_resource_id(endpoint)
        model_name, config_name = paths.run("names", f"{model}_model"), paths.run("names", f"{model}_config")
        planned, status = f"$.plan_{model}", f"$.endpoint_{model}"
        waits, count_path = f"$.waits_{model}", f"$.count_{model}"

        create_config = asl.task(
            self,
            f"Create {label} endpoint config",
            asl.integration("sagemaker:createEndpointConfig"),
            {
                "EndpointConfigName.$": config_name,
                # The instances' storage volume; local storage takes no key (contract.instances).
                **_storage_key(config.endpoint_instance_type, shared.storage.key.key_arn),
                "ProductionVariants": [
                    {
                        "VariantName": VARIANT_NAME,
                        "ModelName.$": model_name,
                        "InitialInstanceCount": config.autoscaling_min_instances,
                        "InstanceType": config.endpoint_instance_type,
                    }
                ],
                "Tags": TAGS,
            },
        )
        plan_state = plan.state(
            self,
            f"Plan {label} endpoint",
            {"endpoint_name": endpoint, "instance_type": config.endpoint_instance_type},
            result_path=planned,
        )
        asl.retry_while_endpoint_busy(plan_state)
        create_endpoint = asl.task(
            self,
            f"Create {label} endpoint",
            asl.integration("sagemaker:createEndpoint"),
            {"EndpointName": endpoint, "EndpointConfigName.$": config_name, "Tags": TAGS},
        )
        scalable_target = {
            "ServiceNamespace": "sagemaker",
            "ResourceId": resource_id,
            "ScalableDimension": SCALABLE_DIMENSION,
        }
        deregister = asl.task(
            self,
            f"Deregister {label} autoscaling",
            asl.sdk("applicationautoscaling", "deregisterScalableTarget"),
            dict(scalable_target),
        )
        update_endpoint = asl.task(
            self,
            f"Update {label} endpoint",
            asl.integration("sagemaker:updateEndpoint"),
            {
                "EndpointName": endpoint,
                "EndpointConfigName.$": config_name,
                "RetainAllVariantProperties": True,
                "DeploymentConfig": {
                    "BlueGreenUpdatePolicy": BLUE_GREEN_UPDATE,
                    "AutoRollbackConfiguration": {
                        "Alarms": [{"AlarmName": alarm.alarm_name} for alarm in rollback_alarms]
                    },
                },
            },
        )

        start_wait = sfn.Pass(
            self, f"Start waiting for {label}", result=sfn.Result.from_number(0), result_path=waits
        )
        wait = sfn.Wait(
            self,
            f"Wait for {label} endpoint",
            time=sfn.WaitTime.duration(Duration.seconds(ENDPOINT_WAIT_SECONDS)),
        )
        check = asl.task(
            self,
            f"Check {label} endpoint",
            asl.sdk("sagemaker", "describeEndpoint"),
            {"EndpointName": endpoint},
            result_selector={"status.$": "$.EndpointStatus", "config.$": "$.EndpointConfigName"},
            result_path=status,
        )
        count = sfn.Pass(
            self,
            f"Count {label} waits",
            parameters={"n": sfn.JsonPath.math_add(sfn.JsonPath.number_at(waits), 1)},
            result_path=count_path,
        )
        recount = sfn.Pass(self, f"Keep {label} count", input_path=f"{count_path}.n", result_path=waits)
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
        register = asl.task(
            self,
            f"Register {label} autoscaling",
            asl.sdk("applicationautoscaling", "registerScalableTarget"),
            {
                **scalable_target,
                "MinCapacity": config.autoscaling_min_instances,
                "MaxCapacity": config.autoscaling_max_instances,
            },
        )
        self._policy = asl.task(
            self,
            f"Put {label} scaling policy",
            asl.sdk("applicationautoscaling", "putScalingPolicy"),
            {
                "PolicyName": f"{endpoint}-invocations-per-instance",
                **scalable_target,
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
        )

        in_service = sfn.Condition.string_equals(f"{status}.status", "InService")
        start_wait.next(wait).next(check).next(
            sfn.Choice(self, f"{label} endpoint ready?")
            .when(
                sfn.Condition.and_(
                    in_service, sfn.Condition.string_equals_json_path(f"{status}.config", config_name)
                ),
                register.next(self._policy),
            )
            .when(in_service, rolled_back)
            .when(sfn.Condition.string_equals(f"{status}.status", "Failed"), failed)
            .when(sfn.Condition.number_greater_than_equals(waits, ENDPOINT_MAX_WAITS), timed_out)
            .otherwise(count.next(recount).next(wait))
        )
        create_endpoint.next(start_wait)
        update_endpoint.next(start_wait)
        self._start: sfn.State = create_config
        if not model_created:
            self._start = create_model(self, shared, model)
            self._start.next(create_config)
        create_config.next(plan_state).next(
            sfn.Choice(self, f"{label} endpoint exists?")
            .when(sfn.Condition.string_equals(f"{planned}.value.action", "create"), create_endpoint)
            .when(
                sfn.Condition.boolean_equals(f"{planned}.value.deregister_first", True),
                deregister.next(update_endpoint),
            )
            .otherwise(update_endpoint)
        )

    @property
    def start_state(self) -> sfn.State:
        return self._start

    @property
    def end_states(self) -> list[sfn.INextable]:
        return [self._policy]


class DeployModels(sfn.StateMachineFragment):
    """One Parallel state, "Deploy models", with a DeployModel branch per model (one plan function for
    both); the models in `created` exist already (the quality gate's FM)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        shared: SharedResources,
        rollback_alarms: dict[str, list[cloudwatch.IAlarm]],
        created: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(scope, construct_id)
        self._shared = shared
        self._alarms = [alarm for model in MODELS for alarm in rollback_alarms[model]]
        self.plan = PlanEndpointStep(shared)
        self._parallel = sfn.Parallel(self, "Deploy models", result_path=sfn.JsonPath.DISCARD)
        for model in MODELS:
            self._parallel.branch(
                DeployModel(
                    self,
                    LABELS[model],
                    shared=shared,
                    model=model,
                    plan=self.plan,
                    rollback_alarms=rollback_alarms[model],
                    model_created=model in created,
                )
            )
        self.fallible: list[Fallible] = [self._parallel]

    @property
    def start_state(self) -> sfn.State:
        return self._parallel

    @property
    def end_states(self) -> list[sfn.INextable]:
        return [self._parallel]

    def grant(self, role: iam.IRole) -> None:
        """What the state machine's role needs for this phase's states."""
        self.plan.grant(role)
        allow_models(role, self._shared)
        allow(
            role,
            ["sagemaker:CreateEndpointConfig", "sagemaker:AddTags", "sagemaker:ListTags"],
            [run_resources("endpoint-config")],
            reason="Each run names its endpoint-configs at run time; all start with loftrec-.",
        )
        allow(
            role,
            [
                "sagemaker:CreateEndpoint",
                "sagemaker:UpdateEndpoint",
                "sagemaker:DescribeEndpoint",
                "sagemaker:AddTags",
            ],
            endpoint_arns(self._shared),
            reason="Each run names its endpoint-configs at run time; all of loftrec's start with loftrec-.",
        )
        allow(
            role,
            [
                "application-autoscaling:RegisterScalableTarget",
                "application-autoscaling:DeregisterScalableTarget",
                "application-autoscaling:PutScalingPolicy",
                "application-autoscaling:DescribeScalableTargets",
                "application-autoscaling:DescribeScalingPolicies",
            ],
            ["*"],
            reason="Application Auto Scaling's scalable-target actions take no resource ARN for variants.",
        )
        allow_autoscaling_validation(role)
        allow(
            role,
            ["iam:CreateServiceLinkedRole"],
            [f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/aws-service-role/{AUTOSCALING_SERVICE}/*"],
            conditions={"StringLike": {"iam:AWSServiceName": AUTOSCALING_SERVICE}},
            reason="The service-linked role of SageMaker autoscaling, created on first registration.",
        )
        # A blue/green update watches the guardrail alarms of the endpoint it updates.
        allow(role, ["cloudwatch:DescribeAlarms"], [alarm.alarm_arn for alarm in self._alarms])
