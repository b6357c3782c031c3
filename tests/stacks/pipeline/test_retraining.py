"""The retraining pipeline around its definition: schedule, logging, tracing, images, roles."""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import assertions
from aws_cdk.assertions import Match

from tests.stacks import asl
from tests.stacks.conftest import synth_template
from tools.generate_algorithm_images import render

ROOT = Path(__file__).resolve().parents[3]


def test_schedule_starts_the_state_machine_with_the_default_input(template: assertions.Template) -> None:
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "ScheduleExpression": "cron(0 3 ? * SUN *)",
            "State": "ENABLED",
            "Targets": [
                Match.object_like(
                    {
                        "Arn": {"Ref": Match.string_like_regexp("StateMachine")},
                        "Input": '{"trigger":"schedule"}',
                    }
                )
            ],
        },
    )


def test_schedule_expression_and_switch_from_configuration() -> None:
    template = synth_template(retrain_schedule="rate(1 day)", retrain_enabled=False)
    template.has_resource_properties(
        "AWS::Events::Rule", {"ScheduleExpression": "rate(1 day)", "State": "DISABLED"}
    )


def test_state_machine_logs_everything_and_traces(template: assertions.Template) -> None:
    template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "LoggingConfiguration": {
                "Level": "ALL",
                "IncludeExecutionData": True,
                "Destinations": Match.any_value(),
            },
            "TracingConfiguration": {"Enabled": True},
        },
    )
    groups = template.find_resources("AWS::Logs::LogGroup")
    assert groups and all("RetentionInDays" in g["Properties"] for g in groups.values())


def test_algorithm_images_mapped_per_region(template: assertions.Template) -> None:
    mappings = template.find_mappings("*")
    assert len(mappings) == 1
    regions = next(iter(mappings.values()))
    assert regions["us-east-1"] == {"fm": "382416733822", "blazingtext": "811284229777"}
    assert len(regions) > 25


def test_checked_in_image_table_is_what_the_sdk_says() -> None:
    assert (ROOT / "stacks" / "algorithm_images.json").read_text() == render()


def test_prep_image_is_an_asset_built_at_deploy_not_synth(template: assertions.Template) -> None:
    definition = json.dumps(template.find_resources("AWS::StepFunctions::StateMachine"))
    assert "container-assets" in definition or "cdk-hnb659fds-container-assets" in definition


def test_sagemaker_role_reads_only_the_configured_raw_prefix(template: assertions.Template) -> None:
    statements = [
        s
        for p in template.find_resources("AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s["Action"] == "s3:GetObject" and "example-reviews" in json.dumps(s["Resource"])
    ]
    assert len(statements) == 1
    assert statements[0]["Resource"] == {
        "Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::example-reviews/us/video/*"]]
    }


def test_state_machine_passes_only_the_sagemaker_role(template: assertions.Template) -> None:
    passes = [
        s
        for p in template.find_resources("AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s["Action"] == "iam:PassRole"
    ]
    assert len(passes) == 1
    assert passes[0]["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    assert passes[0]["Resource"]["Fn::GetAtt"][0].startswith("PipelineSageMakerRole")


def test_sagemaker_may_create_kms_grants_only_for_aws_resources(template: assertions.Template) -> None:
    grants = [
        s
        for p in template.find_resources("AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s["Action"] == "kms:CreateGrant"
    ]
    assert len(grants) == 2  # the SageMaker role and the state machine's
    for statement in grants:
        assert statement["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}


def test_sagemaker_may_pull_the_two_algorithm_images_of_the_region(template: assertions.Template) -> None:
    document = dict(template.to_json())
    pulls = [
        s
        for p in template.find_resources("AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if "ecr:BatchGetImage" in s["Action"] and "repository/blazingtext" in json.dumps(s["Resource"])
    ]
    assert len(pulls) == 1
    assert sorted(pulls[0]["Action"]) == [
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
    ]
    # In the deploying region, the repositories of the registry accounts the image URIs name, beside the
    # prep image's asset repository (CDK's pull grant, merged into the same statement).
    resolved = sorted(asl.resolve(document, arn) for arn in pulls[0]["Resource"])
    assert resolved == [
        f"arn:aws:ecr:{asl.REGION}:{asl.ACCOUNT}:repository/cdk-hnb659fds-container-assets-{asl.ACCOUNT}-"
        f"{asl.REGION}",
        f"arn:aws:ecr:{asl.REGION}:382416733822:repository/factorization-machines",
        f"arn:aws:ecr:{asl.REGION}:811284229777:repository/blazingtext",
    ]
