"""What AWS documents beyond the Service Authorization Reference's "Dependent actions" column: the IAM actions
a call needs besides its own, and the calls a service makes as a role it was given. Each row cites its page.

tools/iam/required.py turns the rows into requirements (which principal, which resource, which request
context); the rows here say what AWS requires and where it says so.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    name: str
    when: str  # the calls the row applies to
    actions: tuple[str, ...]
    url: str
    who: str = "caller"  # "caller", or "execution role": the role the caller passed to the service


STEP_FUNCTIONS_SAGEMAKER_URL = "https://docs.aws.amazon.com/step-functions/latest/dg/sagemaker-iam.html"
AUTOSCALING_VALIDATION_URL = (
    "https://docs.aws.amazon.com/autoscaling/application/userguide/security_iam_permission_validation.html"
)
AUTOSCALING_EXAMPLES_URL = (
    "https://docs.aws.amazon.com/autoscaling/application/userguide/security_iam_id-based-policy-examples.html"
)
SAGEMAKER_ROLES_URL = "https://docs.aws.amazon.com/sagemaker/latest/dg/sagemaker-roles.html"

# ---- Application Auto Scaling

AUTOSCALING_TARGET_VALIDATION = Row(
    name="Application Auto Scaling validates the caller's permissions on the target and on CloudWatch",
    when="application-autoscaling RegisterScalableTarget, PutScalingPolicy, DeregisterScalableTarget with "
    "ServiceNamespace sagemaker: Application Auto Scaling calls these with the caller's permissions "
    "before it proceeds ('Making authorized requests to Application Auto Scaling API actions requires that "
    "the API caller has permissions to access AWS resources in the target service and in CloudWatch'); "
    "the SageMaker list is the 'SageMaker endpoints' policy of the identity-based policy examples "
    f"({AUTOSCALING_EXAMPLES_URL}#application-auto-scaling-additional-permissions)",
    actions=(
        "sagemaker:DescribeEndpoint",
        "sagemaker:DescribeEndpointConfig",
        "sagemaker:UpdateEndpointWeightsAndCapacities",
        "cloudwatch:PutMetricAlarm",
        "cloudwatch:DescribeAlarms",
        "cloudwatch:DeleteAlarms",
    ),
    url=AUTOSCALING_VALIDATION_URL,
)
AUTOSCALING_SERVICE_LINKED_ROLE = Row(
    name="A service's first RegisterScalableTarget creates Application Auto Scaling's service-linked role",
    when="application-autoscaling RegisterScalableTarget (SageMaker: AWSServiceRoleForApplicationAutoScaling_"
    "SageMakerEndpoint, service principal sagemaker.application-autoscaling.amazonaws.com)",
    actions=("iam:CreateServiceLinkedRole",),
    url=f"{AUTOSCALING_EXAMPLES_URL}#application-auto-scaling-slr-permissions",
)

# ---- SageMaker as called by anyone

SAGEMAKER_DELETE_AUTOSCALED_ENDPOINT = Row(
    name="Deleting an endpoint deregisters its autoscaled variants with the caller's permission",
    when="sagemaker DeleteEndpoint on an endpoint whose variants are scalable targets ('If you use a custom "
    "permission policy that doesn't provide permission for the DeregisterScalableTarget action, you must "
    "request access to this action before deleting the endpoint')",
    actions=("application-autoscaling:DeregisterScalableTarget",),
    url="https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-delete-with-scaling.html",
)
SAGEMAKER_AUTO_ROLLBACK_ALARMS = Row(
    name="Deployment guardrails read the auto-rollback alarms",
    when="sagemaker UpdateEndpoint with DeploymentConfig.AutoRollbackConfiguration.Alarms ('Ensure that your "
    "IAM execution role has permission to perform the cloudwatch:DescribeAlarms action on the auto-rollback "
    "alarms you specify'; UpdateEndpoint passes no role, so the caller's)",
    actions=("cloudwatch:DescribeAlarms",),
    url="https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-configuration.html",
)

# ---- Step Functions optimized integrations

STEP_FUNCTIONS_SAGEMAKER_SYNC = Row(
    name="Run a Job (.sync) follows the job with Describe/Stop/ListTags and a managed EventBridge rule",
    when="arn:aws:states:::sagemaker:create{Training,Processing,Transform,HyperParameterTuning}Job.sync: the "
    "job's Describe*/Stop* and sagemaker:ListTags, and events:PutTargets/PutRule/DescribeRule on "
    "rule/StepFunctionsGetEventsForSageMaker{TrainingJobs,ProcessingJobs,TransformJobs,TuningJobs}Rule",
    actions=(
        "sagemaker:Describe<Job>",
        "sagemaker:Stop<Job>",
        "sagemaker:ListTags",
        "events:PutTargets",
        "events:PutRule",
        "events:DescribeRule",
    ),
    url=STEP_FUNCTIONS_SAGEMAKER_URL,
)
STEP_FUNCTIONS_PASS_ROLE = Row(
    name="Passing the SageMaker execution role",
    when="any SageMaker task that names a role (RoleArn, ExecutionRoleArn): iam:PassRole on it with "
    "iam:PassedToService sagemaker.amazonaws.com",
    actions=("iam:PassRole",),
    url=STEP_FUNCTIONS_SAGEMAKER_URL,
)
STEP_FUNCTIONS_LAMBDA = Row(
    name="lambda:invoke calls Lambda Invoke",
    when="arn:aws:states:::lambda:invoke: lambda:InvokeFunction on FunctionName",
    actions=("lambda:InvokeFunction",),
    url="https://docs.aws.amazon.com/step-functions/latest/dg/lambda-iam.html",
)
STEP_FUNCTIONS_SNS = Row(
    name="sns:publish calls SNS Publish",
    when="arn:aws:states:::sns:publish: sns:Publish on TopicArn",
    actions=("sns:Publish",),
    url="https://docs.aws.amazon.com/step-functions/latest/dg/sns-iam.html",
)
STEP_FUNCTIONS_AWS_SDK = Row(
    name="aws-sdk integrations call the service's API with the state machine's role",
    when="arn:aws:states:::aws-sdk:<service>:<action>: the service's IAM action for that API",
    actions=("<service>:<Action>",),
    url="https://docs.aws.amazon.com/step-functions/latest/dg/supported-services-awssdk.html",
)
STEP_FUNCTIONS_LOGGING = Row(
    name="A state machine with a LoggingConfiguration delivers logs with its role",
    when="AWS::StepFunctions::StateMachine LoggingConfiguration (CloudWatch Logs destinations)",
    actions=(
        "logs:CreateLogDelivery",
        "logs:GetLogDelivery",
        "logs:UpdateLogDelivery",
        "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries",
        "logs:PutResourcePolicy",
        "logs:DescribeResourcePolicies",
        "logs:DescribeLogGroups",
    ),
    url="https://docs.aws.amazon.com/step-functions/latest/dg/cw-logs.html#cloudwatch-iam-policy",
)
STEP_FUNCTIONS_XRAY = Row(
    name="A traced state machine sends segments with its role",
    when="AWS::StepFunctions::StateMachine TracingConfiguration Enabled",
    actions=(
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
    ),
    url="https://docs.aws.amazon.com/step-functions/latest/dg/xray-iam.html",
)

# ---- API Gateway

API_GATEWAY_LOGS = Row(
    name="API Gateway writes a stage's access and execution logs as the account's CloudWatch Logs role",
    when="AWS::ApiGateway::Stage with AccessLogSetting (the destination log group) or MethodSettings "
    "LoggingLevel ERROR/INFO (API-Gateway-Execution-Logs_{rest-api-id}/{stage}, which API Gateway creates), "
    "as the role of the account setting (AWS::ApiGateway::Account CloudWatchRoleArn)",
    actions=("logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"),
    url="https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-logging.html",
)

# ---- Lambda and EventBridge

LAMBDA_LOGS = Row(
    name="Lambda writes the function's logs with its execution role",
    when="every AWS::Lambda::Function: logs:CreateLogStream and logs:PutLogEvents on its log group",
    actions=("logs:CreateLogStream", "logs:PutLogEvents"),
    url="https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs.html",
)
LAMBDA_XRAY = Row(
    name="Lambda sends traces of an actively traced function with its execution role",
    when="AWS::Lambda::Function TracingConfig Mode Active",
    actions=("xray:PutTraceSegments", "xray:PutTelemetryRecords"),
    url="https://docs.aws.amazon.com/lambda/latest/dg/services-xray.html",
)
EVENTBRIDGE_TARGET_ROLE = Row(
    name="EventBridge starts a state machine target with the target's role",
    when="AWS::Events::Rule target with RoleArn and a state machine Arn: states:StartExecution on it",
    actions=("states:StartExecution",),
    url="https://docs.amazonaws.cn/eventbridge/latest/userguide/eb-custom-bus-target-sfn.html",
)

# ---- Encryption

S3_SSE_KMS = Row(
    name="S3 uses the bucket's KMS key on the caller's behalf",
    when="s3 PutObject to, GetObject from a bucket whose default encryption is SSE-KMS: kms:GenerateDataKey "
    "for uploads, kms:Decrypt for downloads, on the bucket's key",
    actions=("kms:GenerateDataKey", "kms:Decrypt"),
    url="https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html",
)
S3_MISSING_OBJECT = Row(
    name="GetObject answers 404 for a missing key only to a caller that may list the bucket",
    when="s3 GetObject whose caller relies on NoSuchKey: s3:ListBucket on the bucket ('If you don't have "
    "the s3:ListBucket permission, Amazon S3 returns an HTTP status code 403 Access Denied error')",
    actions=("s3:ListBucket",),
    url="https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html",
)
SNS_SSE = Row(
    name="Publishing to an encrypted topic uses its KMS key with the publisher's permissions",
    when="sns Publish to a topic with KmsMasterKeyId",
    actions=("kms:GenerateDataKey", "kms:Decrypt"),
    url="https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html",
)

# ---- SageMaker as the execution role

SAGEMAKER_ECR_PULL = Row(
    name="SageMaker pulls the container image as the execution role",
    when="CreateProcessingJob (AppSpecification.ImageUri), CreateTrainingJob (AlgorithmSpecification."
    "TrainingImage), CreateModel (PrimaryContainer.Image): ecr:GetAuthorizationToken on *, the others on "
    "the image's repository, another account's too (the built-in algorithms' registries): SageMaker refuses "
    "CreateTrainingJob unless the role 'has proper pull permissions for SageMaker: "
    "ecr:BatchCheckLayerAvailability, ecr:BatchGetImage, ecr:GetDownloadUrlForLayer' "
    "(https://github.com/wpilibsuite/DetectCoral/issues/37)",
    actions=(
        "ecr:GetAuthorizationToken",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
        "ecr:BatchCheckLayerAvailability",
    ),
    url=SAGEMAKER_ROLES_URL,
    who="execution role",
)
SAGEMAKER_S3_DATA = Row(
    name="SageMaker reads inputs and writes outputs as the execution role",
    when="s3:ListBucket on an input's bucket (s3:prefix the input prefix), s3:GetObject on input objects "
    "(ProcessingInputs, InputDataConfig, ModelDataUrl, TransformInput), s3:PutObject on outputs "
    "(ProcessingOutputConfig, OutputDataConfig, TransformOutput; a transform job as its model's role)",
    actions=("s3:ListBucket", "s3:GetObject", "s3:PutObject"),
    url=SAGEMAKER_ROLES_URL,
    who="execution role",
)
SAGEMAKER_KMS = Row(
    name="SageMaker encrypts volumes and outputs with the keys the request names, as the execution role",
    when="a volume key (VolumeKmsKeyId): kms:CreateGrant (SageMaker, an AWS service, creates the grant: "
    "kms:GrantIsForAWSResource true); an output key (OutputDataConfig/ProcessingOutputConfig/TransformOutput "
    "KmsKeyId): "
    "kms:Encrypt; SSE-KMS inputs: kms:Decrypt",
    actions=("kms:CreateGrant", "kms:Encrypt", "kms:Decrypt"),
    url=SAGEMAKER_ROLES_URL,
    who="execution role",
)
SAGEMAKER_LOGS_METRICS = Row(
    name="SageMaker writes the job's or endpoint's logs and metrics as the execution role",
    when="log groups /aws/sagemaker/ProcessingJobs, /aws/sagemaker/TrainingJobs, "
    "/aws/sagemaker/TransformJobs, /aws/sagemaker/Endpoints/"
    "<endpoint> (https://docs.aws.amazon.com/sagemaker/latest/dg/logging-cloudwatch.html); metrics in the "
    "namespaces of the same names (https://docs.aws.amazon.com/sagemaker/latest/dg/monitoring-cloudwatch.html)",
    actions=(
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "logs:DescribeLogStreams",
        "cloudwatch:PutMetricData",
    ),
    url=SAGEMAKER_ROLES_URL,
    who="execution role",
)

ROWS: tuple[Row, ...] = (
    AUTOSCALING_TARGET_VALIDATION,
    AUTOSCALING_SERVICE_LINKED_ROLE,
    SAGEMAKER_DELETE_AUTOSCALED_ENDPOINT,
    SAGEMAKER_AUTO_ROLLBACK_ALARMS,
    STEP_FUNCTIONS_SAGEMAKER_SYNC,
    STEP_FUNCTIONS_PASS_ROLE,
    STEP_FUNCTIONS_LAMBDA,
    STEP_FUNCTIONS_SNS,
    STEP_FUNCTIONS_AWS_SDK,
    STEP_FUNCTIONS_LOGGING,
    STEP_FUNCTIONS_XRAY,
    API_GATEWAY_LOGS,
    LAMBDA_LOGS,
    LAMBDA_XRAY,
    EVENTBRIDGE_TARGET_ROLE,
    S3_SSE_KMS,
    S3_MISSING_OBJECT,
    SNS_SSE,
    SAGEMAKER_ECR_PULL,
    SAGEMAKER_S3_DATA,
    SAGEMAKER_KMS,
    SAGEMAKER_LOGS_METRICS,
)
