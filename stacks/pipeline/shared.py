"""What every phase of the pipeline builds on, and the grants several of them make.

`SharedResources` holds the pieces the pipeline creates once (the SageMaker role) or is given (storage,
topic, endpoint names). The grant helpers give a role one permission together with the cdk-nag
acknowledgements that permission causes (as DataStorage's grant methods do for the data bucket), so that a
grant and its reasons never drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from contract.algorithms import RESOURCE_PREFIX, resource_pattern
from contract.instances import has_local_storage
from stacks.config import Config
from stacks.nag import acknowledge, wildcard_finding
from stacks.pipeline import paths
from stacks.storage import DataStorage


@dataclass(frozen=True)
class SharedResources:
    config: Config
    storage: DataStorage
    topic: sns.ITopic
    sagemaker_role: iam.IRole
    """What the prep job, the training jobs and the models run as."""
    endpoint_names: dict[str, str]
    run_record_uri: str
    functions: Construct
    """Where the pipeline's Lambda functions live: one scope for all, so that a function's logical id (and
    with it the deployed function and its log group) does not depend on the phase that invokes it."""


class Phase(Protocol):
    """A phase of the pipeline: a StateMachineFragment that can say what the state machine's role needs."""

    def grant(self, role: iam.IRole) -> None:
        """Add what this phase's states need to the state machine's role (statements, invoke grants) and
        acknowledge the findings they cause."""


Fallible = sfn.CustomState | sfn.Parallel
"""A state whose uncaught errors the pipeline routes to its failure handling (a Pass cannot catch)."""
TAGS = [{"Key": "project", "Value": RESOURCE_PREFIX}]
"""The tags of every SageMaker resource a run creates, as app.py tags the stack's."""
FM_VOLUME_SIZE_GB = 30
"""FM's training volume per instance: the shards of one host and the model."""


def volume_key(instance_type: str, key_arn: str) -> dict[str, str]:
    """The request member that names a volume's KMS key, when the instance type fixed at synth has no local
    storage (contract.instances: SageMaker refuses a key for local storage, which it encrypts itself); types
    a run may override are decided by "Start run"."""
    return {} if has_local_storage(instance_type) else {"VolumeKmsKeyId": key_arn}


def processing_input(name: str, local_path: str, uri: dict[str, str]) -> dict[str, object]:
    """One File-mode S3Prefix input of a Processing job, copied whole to every instance; `uri` is
    {"S3Uri": <fixed>} or {"S3Uri.$": <a path in the state>}."""
    return {
        "InputName": name,
        "S3Input": {
            **uri,
            "LocalPath": local_path,
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated",
        },
    }


def state_array(fixed: list[str], *computed: tuple[str, str]) -> str:
    """A container's arguments as States.Array: the fixed strings, then (option, an intrinsic that makes
    its value) pairs."""
    items = [f"'{argument}'" for argument in fixed]
    for option, value in computed:
        items += [f"'{option}'", value]
    return "States.Array(" + ", ".join(items) + ")"


def prep_image_job(
    shared: SharedResources,
    *,
    image_uri: str,
    name: str,
    arguments: str,
    inputs: list[dict[str, object]],
    output: tuple[str, str, str],
    entrypoint: list[str] | None = None,
) -> dict[str, object]:
    """CreateProcessingJob's request for a job on the prep image: one instance of prep_instance_type with
    its volume encrypted by the data key, `arguments` a States.Array expression, and one output
    (name, the run's path it is uploaded under, the container folder) uploaded at the end under the run."""
    config, key = shared.config, shared.storage.key
    output_name, run_path, local_path = output
    return {
        "ProcessingJobName.$": name,
        "RoleArn": shared.sagemaker_role.role_arn,
        "AppSpecification": {
            "ImageUri": image_uri,
            **({"ContainerEntrypoint": entrypoint} if entrypoint else {}),
            "ContainerArguments.$": arguments,
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": config.prep_instance_type,
                "VolumeSizeInGB": config.prep_volume_size_gb,
                **volume_key(config.prep_instance_type, key.key_arn),
            }
        },
        "ProcessingInputs": inputs,
        "ProcessingOutputConfig": {
            "KmsKeyId": key.key_arn,
            "Outputs": [
                {
                    "OutputName": output_name,
                    # Processing uploads the output folder's files under this URI.
                    "S3Output": {
                        "S3Uri.$": paths.in_run(run_path.rstrip("/")),
                        "LocalPath": local_path,
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ],
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": config.training_max_runtime_seconds},
        "Tags": TAGS,
    }


def sagemaker_arn(resource: str) -> str:
    """The ARN of a SageMaker resource in the stack's account and region, e.g. "endpoint/loftrec-fm"."""
    return f"arn:{Aws.PARTITION}:sagemaker:{Aws.REGION}:{Aws.ACCOUNT_ID}:{resource}"


def run_resources(kind: str) -> str:
    """The ARN pattern of every SageMaker resource of one kind (e.g. "training-job") that runs create."""
    return sagemaker_arn(f"{kind}/{resource_pattern()}")


def endpoint_arns(shared: SharedResources) -> list[str]:
    """The endpoints the pipeline creates and updates, and every endpoint configuration of a run."""
    return [
        *(sagemaker_arn(f"endpoint/{name}") for name in shared.endpoint_names.values()),
        run_resources("endpoint-config"),
    ]


def allow(
    role: iam.IRole,
    actions: list[str],
    resources: list[str],
    *,
    conditions: dict[str, object] | None = None,
    reason: str = "",
) -> None:
    """Add one statement to the role; each wildcard resource among `resources` is acknowledged with
    `reason` (required then)."""
    role.add_to_principal_policy(
        iam.PolicyStatement(actions=actions, resources=resources, conditions=conditions)
    )
    wildcards = [resource for resource in resources if "*" in resource]
    if wildcards and not reason:
        raise ValueError(f"a reason is needed for the wildcard resources {wildcards}")
    for resource in wildcards:
        finding = "AwsSolutions-IAM5[Resource::*]" if resource == "*" else wildcard_finding(role, resource)
        acknowledge(role, finding, reason)


AUTOSCALING_VALIDATION = (
    "https://docs.aws.amazon.com/autoscaling/application/userguide/security_iam_permission_validation.html"
)


def allow_autoscaling_validation(role: iam.IRole) -> None:
    """What Application Auto Scaling checks the caller of RegisterScalableTarget, PutScalingPolicy and
    DeregisterScalableTarget may do before it proceeds ("Making authorized requests to Application Auto
    Scaling API actions requires that the API caller has permissions to access AWS resources in the target
    service and in CloudWatch": AUTOSCALING_VALIDATION), for SageMaker endpoints the actions of the
    "SageMaker endpoints" policy of
    https://docs.aws.amazon.com/autoscaling/application/userguide/security_iam_id-based-policy-examples.html.

    Scoped to this account and region, any name: the checks are requests "with invalid parameters" (the
    page's example sends an empty instance ID) whose resource names AWS does not document, so no name of
    ours can be relied on; AWS's own example policy grants them on "*"."""
    allow(
        role,
        [
            "sagemaker:DescribeEndpoint",
            "sagemaker:DescribeEndpointConfig",
            "sagemaker:UpdateEndpointWeightsAndCapacities",
        ],
        [sagemaker_arn("endpoint/*"), sagemaker_arn("endpoint-config/*")],
        reason="Application Auto Scaling validates the caller's permissions with requests on resource names "
        "it makes up: any endpoint of this account and region.",
    )
    allow(
        role,
        ["cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"],
        [f"arn:{Aws.PARTITION}:cloudwatch:{Aws.REGION}:{Aws.ACCOUNT_ID}:alarm:*"],
        reason="Application Auto Scaling validates the caller's CloudWatch permissions with requests on "
        "alarm names it makes up: any alarm of this account and region.",
    )


def publish(role: iam.IRole, topic: sns.ITopic) -> None:
    """Publish notifications to the topic (encrypted with the data key: CDK's grant lets the role use it)."""
    topic.grant_publish(role)
    acknowledge(
        role,
        "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
        "CDK's publish grant: the topic is encrypted with the stack's key.",
    )


def allow_kms_grants(role: iam.IRole, storage: DataStorage) -> None:
    """SageMaker encrypts job volumes, outputs and endpoint storage with the data key through KMS grants,
    created on behalf of the role that calls it and the role it runs as."""
    key = storage.key.key_arn
    role.add_to_principal_policy(iam.PolicyStatement(actions=["kms:DescribeKey"], resources=[key]))
    role.add_to_principal_policy(
        iam.PolicyStatement(
            actions=["kms:CreateGrant"],
            resources=[key],
            conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
        )
    )


def start_sagemaker_work(role: iam.IRole, shared: SharedResources) -> None:
    """What the state machine needs to start any SageMaker job or model: pass the SageMaker role to
    SageMaker (only), and let SageMaker use the data key on its behalf."""
    role.add_to_principal_policy(
        iam.PolicyStatement(
            actions=["iam:PassRole"],
            resources=[shared.sagemaker_role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        )
    )
    allow_kms_grants(role, shared.storage)


def run_sagemaker_jobs(role: iam.IRole, job: str, *, kind: str, events: str) -> None:
    """Create, describe, stop and tag the SageMaker jobs of one type (`job`, e.g. "TrainingJob") that runs
    name (ARN resource `kind`, e.g. "training-job"), and follow them through the .sync integration's rule
    StepFunctionsGetEventsForSageMaker<events>JobsRule (`events`, e.g. "Training")."""
    allow(
        role,
        [
            f"sagemaker:Create{job}",
            f"sagemaker:Describe{job}",
            f"sagemaker:Stop{job}",
            "sagemaker:AddTags",
            "sagemaker:ListTags",
        ],
        [run_resources(kind)],
        reason=f"Each run names its {kind}s at run time; all of loftrec's start with loftrec-.",
    )
    follow_sagemaker_jobs(role, f"StepFunctionsGetEventsForSageMaker{events}JobsRule")


def follow_sagemaker_jobs(role: iam.IRole, rule: str) -> None:
    """A .sync integration follows its jobs through an EventBridge rule that Step Functions manages
    (https://docs.aws.amazon.com/step-functions/latest/dg/sagemaker-iam.html), e.g.
    StepFunctionsGetEventsForSageMakerTrainingJobsRule."""
    role.add_to_principal_policy(
        iam.PolicyStatement(
            actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
            resources=[f"arn:{Aws.PARTITION}:events:{Aws.REGION}:{Aws.ACCOUNT_ID}:rule/{rule}"],
        )
    )
