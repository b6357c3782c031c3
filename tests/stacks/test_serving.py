"""The serving construct: one IAM-authorized, throttled, logged API in front of three shims."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import assertions
from aws_cdk.assertions import Match

from app import build_app
from stacks.config import cdk_json_context
from tests.stacks.conftest import synth_template


def test_every_call_is_a_post_method_with_iam_authorization(template: assertions.Template) -> None:
    template.resource_count_is("AWS::ApiGateway::RestApi", 1)
    methods = template.find_resources("AWS::ApiGateway::Method")
    assert len(methods) == 3
    for method in methods.values():
        assert method["Properties"]["HttpMethod"] == "POST"
        assert method["Properties"]["AuthorizationType"] == "AWS_IAM"
        assert method["Properties"]["Integration"]["Type"] == "AWS_PROXY"
    paths = {
        r["Properties"]["PathPart"] for r in template.find_resources("AWS::ApiGateway::Resource").values()
    }
    assert paths == {"predictions", "similar-titles", "recommendations"}


def test_stage_throttles_logs_access_and_errors_and_traces(template: assertions.Template) -> None:
    template.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "StageName": "v1",
            "TracingEnabled": True,
            "AccessLogSetting": {
                "DestinationArn": Match.any_value(),
                "Format": Match.string_like_regexp("requestId"),
            },
            "MethodSettings": [
                {
                    "HttpMethod": "*",
                    "ResourcePath": "/*",
                    "ThrottlingRateLimit": 50,
                    "ThrottlingBurstLimit": 100,
                    # Execution logs of errors, no request or response bodies.
                    "LoggingLevel": "ERROR",
                    "DataTraceEnabled": False,
                }
            ],
        },
    )


def test_the_stack_owns_the_accounts_api_gateway_logging_role_and_keeps_it(
    template: assertions.Template,
) -> None:
    # api_gateway_cloudwatch_role=create (cdk.json): the account setting names the stack's role; the stage
    # waits for it, and both outlive the stack so that the setting never names a deleted role.
    (account_id,) = template.find_resources("AWS::ApiGateway::Account")
    account = template.find_resources("AWS::ApiGateway::Account")[account_id]
    role_id = account["Properties"]["CloudWatchRoleArn"]["Fn::GetAtt"][0]
    role = template.find_resources("AWS::IAM::Role")[role_id]
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"] == [
        {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"}}
    ]
    assert role["Properties"]["ManagedPolicyArns"] == [
        {
            "Fn::Join": [
                "",
                [
                    "arn:",
                    {"Ref": "AWS::Partition"},
                    ":iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs",
                ],
            ]
        }
    ]
    for resource in (account, role):
        assert (resource["DeletionPolicy"], resource["UpdateReplacePolicy"]) == ("Retain", "Retain")
    (stage,) = template.find_resources("AWS::ApiGateway::Stage").values()
    assert stage["DependsOn"] == [account_id]


def test_with_the_accounts_existing_role_the_stack_sets_nothing_account_wide() -> None:
    template = synth_template(api_gateway_cloudwatch_role="existing")
    template.resource_count_is("AWS::ApiGateway::Account", 0)
    roles = template.find_resources("AWS::IAM::Role").values()
    assert not [
        r for r in roles if "apigateway.amazonaws.com" in str(r["Properties"]["AssumeRolePolicyDocument"])
    ]
    # make preflight checks the account has the role the stage's logs need.
    template.has_resource_properties(
        "AWS::ApiGateway::Stage", {"MethodSettings": [Match.object_like({"LoggingLevel": "ERROR"})]}
    )


def test_either_way_cdk_nag_is_clean_without_an_execution_logging_acknowledgement() -> None:
    for mode in ("create", "existing"):
        app = build_app({**cdk_json_context(), "api_gateway_cloudwatch_role": mode})
        assembly = app.synth()  # raises ValidationFailed on any unacknowledged cdk-nag finding
        acknowledged = (Path(assembly.directory) / "Loftrec.metadata.json").read_text()
        assert "AwsSolutions-APIG3" in acknowledged, mode  # the acknowledgements are recorded here
        assert "AwsSolutions-APIG6" not in acknowledged, mode


SHIMS = (
    "lambdas.serving.handlers.predict_handler",
    "lambdas.serving.handlers.recommendations_handler",
    "lambdas.serving.handlers.similar_titles_handler",
)


def test_shims_environment(template: assertions.Template) -> None:
    for handler in SHIMS:
        template.has_resource_properties(
            "AWS::Lambda::Function",
            {
                "Handler": handler,
                "TracingConfig": {"Mode": "Active"},
                "Environment": {
                    "Variables": {
                        "RUN_RECORD_URI": {
                            "Fn::Join": ["", ["s3://", Match.any_value(), "/serving/current.json"]]
                        },
                        "MAX_BATCH_SIZE": "100",
                        "NEIGHBOURS": "10",
                        "MAX_SIMILAR": "50",
                        "RECORD_TTL_SECONDS": "60",
                        "OPENBLAS_NUM_THREADS": "1",
                        "POWERTOOLS_SERVICE_NAME": "loftrec-serving",
                        "POWERTOOLS_METRICS_NAMESPACE": "loftrec",
                    }
                },
                "Layers": [
                    {"Ref": Match.string_like_regexp("NumpyLayer")},
                    {"Ref": Match.string_like_regexp("PowertoolsLayer")},
                ],
                "Runtime": "python3.14",
                "Architectures": ["arm64"],
            },
        )


def test_numpy_layer_matches_the_runtime(template: assertions.Template) -> None:
    template.has_resource_properties(
        "AWS::Lambda::LayerVersion",
        {"CompatibleRuntimes": ["python3.14"], "CompatibleArchitectures": ["arm64"]},
    )


def test_shims_may_invoke_only_loftrecs_endpoints(template: assertions.Template) -> None:
    invoke = [
        statement
        for policy in template.find_resources("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Action"] == "sagemaker:InvokeEndpoint"
    ]
    assert len(invoke) == 2
    for statement in invoke:
        resources = sorted(r["Fn::Join"][1][-1] for r in statement["Resource"])
        assert resources == [":endpoint/loftrec-blazingtext", ":endpoint/loftrec-fm"]


def test_the_shims_use_the_unreserved_pool_by_default(template: assertions.Template) -> None:
    # A new account's concurrency quota can be 10: reserving any of it would leave less than the minimum
    # AWS keeps unreserved, and the deployment would fail (tools/preflight.py checks a reservation).
    for function in template.find_resources("AWS::Lambda::Function").values():
        assert "ReservedConcurrentExecutions" not in function["Properties"]


def test_a_reservation_is_an_option() -> None:
    template = synth_template(serving_reserved_concurrency=10)
    functions = template.find_resources("AWS::Lambda::Function").values()
    reserved = sorted(
        f["Properties"]["Handler"]
        for f in functions
        if f["Properties"].get("ReservedConcurrentExecutions") == 10
    )
    assert reserved == list(SHIMS)


def _role_of(template: assertions.Template, handler: str) -> str:
    (function,) = (
        f
        for f in template.find_resources("AWS::Lambda::Function").values()
        if f["Properties"]["Handler"] == handler
    )
    return str(function["Properties"]["Role"]["Fn::GetAtt"][0])


def test_recommendations_has_a_cpu_of_its_own_and_reads_the_deployed_run_only(
    template: assertions.Template,
) -> None:
    memory = {
        f["Properties"]["Handler"]: f["Properties"]["MemorySize"]
        for f in template.find_resources("AWS::Lambda::Function").values()
        if f["Properties"]["Handler"] in SHIMS
    }
    assert memory == dict(zip(SHIMS, (1024, 1769, 1024), strict=True))
    role = _role_of(template, "lambdas.serving.handlers.recommendations_handler")
    statements = [
        statement
        for policy in template.find_resources("AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    actions = {
        a for st in statements for a in (st["Action"] if isinstance(st["Action"], list) else [st["Action"]])
    }
    assert actions == {
        "s3:GetObject*",
        "s3:GetBucket*",
        "s3:List*",
        "kms:Decrypt",
        "kms:DescribeKey",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }
    keys = sorted(
        r["Fn::Join"][1][-1]
        for st in statements
        if "s3:GetObject*" in st["Action"]
        for r in st["Resource"]
        if isinstance(r, dict) and "Fn::Join" in r
    )
    assert keys == ["/runs/*/prep/index/*", "/runs/*/serving/*", "/serving/current.json"]
