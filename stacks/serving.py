"""What application teams call: three Lambda shims behind one IAM-authorized HTTPS API.

One API Gateway REST API rather than Lambda function URLs: a single entry point for every call, stage-level
throttling (rate and burst), access and execution logs, and SigV4 (IAM) authorization on each method.
Function URLs would give one URL per function and neither throttling nor access logs.

API Gateway writes both kinds of logs as the IAM role its account setting names, one setting per account
and region (AWS::ApiGateway::Account: "To avoid overwriting other roles, you should only have one
AWS::ApiGateway::Account resource per region per account";
https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-apigateway-account.html);
without it the stage is refused ("CloudWatch Logs role ARN must be set in account settings to enable
logging"; https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-logging.html).
`api_gateway_cloudwatch_role` says who owns it:
- "create": this stack creates the role (with AmazonAPIGatewayPushToCloudWatchLogs, the managed policy the
  logging page names) and sets the account setting to it (CDK's cloud_watch_role: an
  AWS::ApiGateway::Account the stage depends on). Both are retained when the stack is deleted, so the
  setting never names a deleted role: API Gateway keeps logging every API of the region with it ("When you
  delete a stack containing this resource, API Gateway can still assume the provided IAM role"). Two stacks
  that both create it overwrite each other's setting, the last deployed winning; any of the roles works,
  as each carries the same policy, but give the setting one owner: the others use "existing".
- "existing": the account's role, which `make preflight` checks is set.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from contract import layout
from stacks.config import Config
from stacks.functions import python_function
from stacks.nag import acknowledge
from stacks.storage import DataStorage

RECORD_TTL_SECONDS = 60
SHIM_MEMORY_MB = 1024
"""The index and title table are held in memory; CPU grows with memory."""
RECOMMENDATIONS_MEMORY_MB = 1769
"""/recommendations scores every product for a customer from FM's factors held in memory (58k products x
256 factors at the notebook's scale: bench/serving.py measures the handler's memory and latency): 1,769 MB is
where a function has the equivalent of one full vCPU ("At 1,769 MB, a function has the equivalent of one
vCPU": https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html)."""


@dataclass(frozen=True)
class Shim:
    name: str
    path: str
    handler: str
    description: str
    memory_mb: int
    invokes_endpoints: bool
    """Whether it calls the SageMaker endpoints (/recommendations scores with the run's FM factors)."""


SHIMS = (
    Shim(
        "Predict",
        "predictions",
        "lambdas.serving.handlers.predict_handler",
        "predicts ratings for customers and products",
        SHIM_MEMORY_MB,
        invokes_endpoints=True,
    ),
    Shim(
        "SimilarTitles",
        "similar-titles",
        "lambdas.serving.handlers.similar_titles_handler",
        "finds known titles similar to titles",
        SHIM_MEMORY_MB,
        invokes_endpoints=True,
    ),
    Shim(
        "Recommendations",
        "recommendations",
        "lambdas.serving.handlers.recommendations_handler",
        "recommends the top-k products for a customer",
        RECOMMENDATIONS_MEMORY_MB,
        invokes_endpoints=False,
    ),
)


class ServingApi(Construct):
    """POST /predictions, POST /similar-titles and POST /recommendations, each a Lambda shim that reads the
    deployed-run record, translates customer ids, product ids and titles into the endpoints' feature keys
    (or scores with the run's FM factors) and back."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: Config,
        storage: DataStorage,
        run_record_uri: str,
        endpoint_names: dict[str, str],
    ) -> None:
        super().__init__(scope, construct_id)
        environment = {
            "RUN_RECORD_URI": run_record_uri,
            "MAX_BATCH_SIZE": str(config.serving_max_batch_size),
            "NEIGHBOURS": str(config.serving_neighbours),
            "MAX_SIMILAR": str(config.serving_max_similar),
            "RECORD_TTL_SECONDS": str(RECORD_TTL_SECONDS),
            # One BLAS thread: a Lambda has a fraction of a core; waiting threads cost more than they give.
            "OPENBLAS_NUM_THREADS": "1",
        }
        self.functions: dict[str, lambda_.Function] = {}
        for shim in SHIMS:
            function = python_function(
                self,
                shim.name,
                handler=shim.handler,
                description=shim.description,
                environment=environment,
                timeout=Duration.seconds(29),  # API Gateway's integration limit
                memory_size=shim.memory_mb,
                service="serving",
                # numpy for the cosine search over the title table (40k titles: 0.3 ms with numpy, about
                # 100 ms in pure Python; bench/serving.py) and for FM's top-N.
                numpy=True,
                reserved_concurrent_executions=config.serving_reserved_concurrency,
            )
            self._grant(function, storage, endpoint_names if shim.invokes_endpoints else {})
            self.functions[shim.name] = function

        self.access_logs = logs.LogGroup(
            self, "AccessLogs", retention=logs.RetentionDays.ONE_YEAR, removal_policy=RemovalPolicy.DESTROY
        )
        owns_account_setting = config.api_gateway_cloudwatch_role == "create"
        self.api = apigateway.RestApi(
            self,
            "Api",
            rest_api_name="loftrec",
            description="loftrec: ratings, similar titles and recommendations, IAM (SigV4) authorized",
            endpoint_types=[apigateway.EndpointType.REGIONAL],
            cloud_watch_role=owns_account_setting,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN if owns_account_setting else None,
            deploy_options=apigateway.StageOptions(
                stage_name="v1",
                throttling_rate_limit=config.api_rate_limit,
                throttling_burst_limit=config.api_burst_limit,
                # Execution logs of errors only, without request and response bodies (customer ids and
                # titles stay out of the logs).
                logging_level=apigateway.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                access_log_destination=apigateway.LogGroupLogDestination(self.access_logs),
                access_log_format=apigateway.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
                tracing_enabled=True,
            ),
            default_method_options=apigateway.MethodOptions(
                authorization_type=apigateway.AuthorizationType.IAM
            ),
        )
        for shim in SHIMS:
            self.api.root.add_resource(shim.path).add_method(
                "POST", apigateway.LambdaIntegration(self.functions[shim.name])
            )

        acknowledge(
            self.api,
            "AwsSolutions-APIG2",
            "The shims validate every request body and answer 400 naming the field; an API Gateway model "
            "would repeat that schema in a second place.",
        )
        acknowledge(
            self.api.deployment_stage,
            "AwsSolutions-APIG3",
            "Callers are AWS principals authorized by IAM (SigV4) and throttled by the stage; a WAF web ACL "
            "can be attached by the platform team where its cost is warranted.",
        )
        role = self.api.node.try_find_child("CloudWatchRole")
        if role is not None:
            acknowledge(
                role,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AmazonAPIGatewayPushToCloudWatchLogs]",
                "API Gateway's CloudWatch Logs role for the account and region: the AWS-managed policy the "
                "API Gateway logging guide names for it; it writes the logs of every API of the region.",
            )
        for method in self.api.methods:
            acknowledge(
                method,
                "AwsSolutions-COG4",
                "Authorized with IAM (SigV4): callers are AWS principals, not Cognito users.",
            )

    @staticmethod
    def _grant(function: lambda_.Function, storage: DataStorage, endpoint_names: dict[str, str]) -> None:
        role = function.role
        assert role is not None  # python_function creates one
        reason = "Reads the deployed run's index and serving data; run ids are made at run time."
        for pattern in (layout.RUN_RECORD_KEY, layout.any_run(layout.INDEX), layout.any_run(layout.SERVING)):
            storage.grant_read_objects(role, pattern, reason)
        storage.key.grant_decrypt(function)
        if not endpoint_names:
            return
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["sagemaker:InvokeEndpoint"],
                resources=[
                    f"arn:{Aws.PARTITION}:sagemaker:{Aws.REGION}:{Aws.ACCOUNT_ID}:endpoint/{name}"
                    for name in endpoint_names.values()
                ],
            )
        )
