"""From API calls to IAM requirements, on hand-made calls with the answers written out."""

from __future__ import annotations

import pytest

from tools.iam.required import Call, Facts, Invocation, RequirementError, iam_action, requirements
from tools.iam.template import Environment

ROLE = "arn:aws:iam::123456789012:role/Caller"
KEY = "arn:aws:kms:us-east-1:123456789012:key/k"


def _needs(call: Call, facts: Facts | None = None) -> set[tuple[str, str]]:
    found = requirements(Invocation(ROLE, call, "test"), facts or Facts(Environment()))
    assert {r.principal for r in found} <= {ROLE, "arn:aws:iam::123456789012:role/Exec"}
    return {(r.action, r.resource) for r in found}


def test_operation_names_that_differ_from_their_actions() -> None:
    assert iam_action("s3", "ListObjectsV2") == "s3:ListBucket"
    assert iam_action("lambda", "Invoke") == "lambda:InvokeFunction"
    assert iam_action("sagemaker-runtime", "InvokeEndpoint") == "sagemaker:InvokeEndpoint"
    assert iam_action("stepfunctions", "StartExecution") == "states:StartExecution"
    assert iam_action("application-autoscaling", "DescribeScalableTargets") == (
        "application-autoscaling:DescribeScalableTargets"
    )
    with pytest.raises(RequirementError, match="no such action"):
        iam_action("s3", "GetObjectz")


def test_s3_objects_buckets_and_the_buckets_kms_key() -> None:
    facts = Facts(Environment(), bucket_keys={"data": KEY})
    assert _needs(Call("s3", "GetObject", {"Bucket": "data", "Key": "runs/r/x"}), facts) == {
        ("s3:GetObject", "arn:aws:s3:::data/runs/r/x"),
        ("kms:Decrypt", KEY),
    }
    assert _needs(Call("s3", "PutObject", {"Bucket": "data", "Key": "k"}), facts) == {
        ("s3:PutObject", "arn:aws:s3:::data/k"),
        ("kms:GenerateDataKey", KEY),
    }
    missing = Call("s3", "GetObject", {"Bucket": "other", "Key": "k"}, error="NoSuchKey")
    assert _needs(missing) == {
        ("s3:GetObject", "arn:aws:s3:::other/k"),
        ("s3:ListBucket", "arn:aws:s3:::other"),
    }
    listed = requirements(
        Invocation(ROLE, Call("s3", "ListObjectsV2", {"Bucket": "b", "Prefix": "us/"}), "t"),
        Facts(Environment()),
    )
    assert [(r.action, r.resource, r.context_map["s3:prefix"]) for r in listed] == [
        ("s3:ListBucket", "arn:aws:s3:::b", "us/")
    ]


def test_dependent_actions_pass_role_and_tags_only_when_the_request_needs_them() -> None:
    params = {"ModelName": "m", "ExecutionRoleArn": "arn:aws:iam::123456789012:role/Exec"}
    found = requirements(
        Invocation(ROLE, Call("sagemaker", "CreateModel", params), "t"), Facts(Environment())
    )
    pass_role = [r for r in found if r.action == "iam:PassRole"]
    assert [(r.resource, r.context_map["iam:PassedToService"]) for r in pass_role] == [
        ("arn:aws:iam::123456789012:role/Exec", "sagemaker.amazonaws.com")
    ]
    assert "sagemaker:AddTags" not in {r.action for r in found}
    tagged = _needs(
        Call("sagemaker", "CreateEndpoint", {"EndpointName": "e", "EndpointConfigName": "c", "Tags": [1]})
    )
    assert tagged == {
        ("sagemaker:CreateEndpoint", "arn:aws:sagemaker:us-east-1:123456789012:endpoint/e"),
        ("sagemaker:CreateEndpoint", "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/c"),
        ("sagemaker:AddTags", "arn:aws:sagemaker:us-east-1:123456789012:endpoint/e"),
    }


def test_autoscaling_validates_the_callers_sagemaker_and_cloudwatch_permissions() -> None:
    facts = Facts(Environment(), endpoint_configs={"e": {"c1"}})
    call = Call(
        "application-autoscaling",
        "RegisterScalableTarget",
        {"ServiceNamespace": "sagemaker", "ResourceId": "endpoint/e/variant/AllTraffic"},
    )
    arn = "arn:aws:{}:us-east-1:123456789012:{}".format
    assert _needs(call, facts) == {
        (
            "application-autoscaling:RegisterScalableTarget",
            arn("application-autoscaling", "scalable-target/generated-id"),
        ),
        ("sagemaker:DescribeEndpoint", arn("sagemaker", "endpoint/e")),
        ("sagemaker:DescribeEndpointConfig", arn("sagemaker", "endpoint-config/c1")),
        ("sagemaker:UpdateEndpointWeightsAndCapacities", arn("sagemaker", "endpoint/e")),
        ("cloudwatch:PutMetricAlarm", arn("cloudwatch", "alarm:*")),
        ("cloudwatch:DescribeAlarms", arn("cloudwatch", "alarm:*")),
        ("cloudwatch:DeleteAlarms", arn("cloudwatch", "alarm:*")),
        (
            "iam:CreateServiceLinkedRole",
            "arn:aws:iam::123456789012:role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
            "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint",
        ),
    }
    delete = Call("sagemaker", "DeleteEndpoint", {"EndpointName": "e"})
    assert (
        "application-autoscaling:DeregisterScalableTarget",
        arn("application-autoscaling", "scalable-target/generated-id"),
    ) in _needs(delete, Facts(Environment(), autoscaled_endpoints={"e"}))
    assert len(_needs(delete)) == 1


def test_sync_jobs_and_what_sagemaker_does_as_the_execution_role() -> None:
    params = {
        "TrainingJobName": "loftrec-r-fm",
        "RoleArn": "arn:aws:iam::123456789012:role/Exec",
        "AlgorithmSpecification": {"TrainingImage": "382416733822.dkr.ecr.us-east-1.amazonaws.com/fm:1"},
        "InputDataConfig": [{"DataSource": {"S3DataSource": {"S3Uri": "s3://data/runs/r/train/"}}}],
        "OutputDataConfig": {"S3OutputPath": "s3://data/runs/r/fm/", "KmsKeyId": KEY},
        "ResourceConfig": {"VolumeKmsKeyId": KEY},
    }
    found = requirements(
        Invocation(ROLE, Call("sagemaker", "CreateTrainingJob", params, "optimized", "sync"), "t"),
        Facts(Environment(), bucket_keys={"data": KEY}),
    )
    caller = {(r.action, r.resource) for r in found if r.principal == ROLE}
    job = "arn:aws:sagemaker:us-east-1:123456789012:training-job/loftrec-r-fm"
    rule = "arn:aws:events:us-east-1:123456789012:rule/StepFunctionsGetEventsForSageMakerTrainingJobsRule"
    assert {
        ("sagemaker:DescribeTrainingJob", job),
        ("sagemaker:StopTrainingJob", job),
        ("events:PutRule", rule),
    } <= caller
    role = {(r.action, r.resource) for r in found if r.principal.endswith("/Exec")}
    assert {
        ("ecr:GetAuthorizationToken", "*"),
        ("ecr:BatchGetImage", "arn:aws:ecr:us-east-1:382416733822:repository/fm"),
        ("s3:ListBucket", "arn:aws:s3:::data"),
        ("s3:GetObject", "arn:aws:s3:::data/runs/r/train/part-00000"),
        ("kms:Decrypt", KEY),
        ("s3:PutObject", "arn:aws:s3:::data/runs/r/fm/part-00000"),
        ("kms:GenerateDataKey", KEY),
        ("kms:Encrypt", KEY),
        ("kms:CreateGrant", KEY),
        (
            "logs:CreateLogStream",
            "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/TrainingJobs:log-stream:loftrec-r-fm/algo-1-0000000000",
        ),
        ("cloudwatch:PutMetricData", "*"),
    } <= role
    grant = next(r for r in found if r.action == "kms:CreateGrant")
    assert grant.context_map["kms:GrantIsForAWSResource"] == "true"


def test_a_request_that_names_no_resource_fails_loudly() -> None:
    with pytest.raises(RequirementError, match="names no endpoint"):
        _needs(Call("sagemaker", "DescribeEndpoint", {}))
