"""The synthesized retraining state machine run under moto's Step Functions interpreter (moto 5.2.5), with
our real Lambda handlers and a scripted SageMaker.

moto runs the definition as synthesized, tokens resolved as in tests/stacks/asl.py. What moto lacks, and
what stands in for it (test-side patches of moto; none changes what the definition asks for):

1. moto runs Lambda functions in Docker: `LambdaFunction.invoke` is patched to import the handler the
   function's Handler names (a module path of the code asset, the same as in the repository) and call it
   in-process, with the function's environment (and AWS_REGION, as the Lambda runtime sets it) and a cold
   start (the modules' cached clients and settings cleared). An exception becomes Lambda's Unhandled error
   payload {"errorType", "errorMessage"}, which Step Functions matches by errorType. Invocations run one at
   a time: the environment is process-wide.
2. moto forwards SageMaker's optimized integrations to its SageMaker backend as plain requests but cannot
   wait for a job (`.sync`): the integration is allowed the Sync pattern and given a resolver that
   describes the job until it is Completed (the task's result is the description, as in Step Functions)
   or Failed/Stopped (the task fails with States.TaskFailed and the description as its cause).
3. moto's SageMaker has no UpdateEndpoint: a small implementation records each request (the blue/green
   DeploymentConfig included), refuses one that changes the instance type of a variant registered for
   autoscaling, as SageMaker does ("If the update would change the instance type for any model that is a
   target for auto scaling, the update fails": endpoint-scaling-update.html), then puts the endpoint on the
   new configuration, or, when the script says so, leaves it InService on the old one with a FailureReason
   (a deployment that rolled back).
4. moto's aws-sdk integration hands Step Functions' SDK service name to boto3, which knows
   "applicationautoscaling" as "application-autoscaling": the interpreter's client factory maps the name.
   The factory also turns botocore's parameter validation on (moto turns it off), so every request the
   interpreter sends is checked against the service model with its real run-time values.
5. moto's jobs complete at once and produce nothing: hooks on CreateProcessingJob, CreateTrainingJob and
   CreateTransformJob write what the containers would, from the small run of tests/lambdas/pipeline/
   world.py: the prep job's own code writes prep/ from its reviews; FM's model.tar.gz is that run's known
   FM (or noise, as the test's `Script` says) with its final test:rmse; BlazingText's has a vector for every
   title; the Batch Transform job scores the test shard with the model it names; the batch
   recommendations job runs jobs.recommend on the run's files. A job fails as the `Script` says.
   Endpoints are created InService unless the script makes one go Failed (or an update roll back); that
   endpoint's CreateEndpoint (UpdateEndpoint) answers once the other endpoint's branch has finished, so
   that the rollback meets a settled world (in AWS a deployment takes minutes to fail; here everything is
   instant and the order of the two branches would otherwise be left to thread timing). A failing FM job
   likewise stays InProgress until the BlazingText branch has left its last state: a Parallel that aborts
   a branch in the middle of a Lambda task races moto's interpreter ("'dict' object has no attribute
   'region'"), which Step Functions, whose
   jobs take minutes, would not meet either.
6. moto's aws-sdk integration returns S3 GetObject's Body as a stream; Step Functions gives its text.
7. moto refuses to raise Step Functions' own error names (States.TaskFailed) from a failed Parallel
   branch, which crashes the execution instead of reaching the Parallel's Catch: the branch's error is
   raised under its own name.
8. moto turns an error that a forwarded optimized integration (sagemaker:createTrainingJob.sync, ...)
   answers into States.Runtime; Step Functions names it as its SDK integrations do, <Service>.<error>
   with an Exception suffix ("be sure to include the Exception suffix ... even if the suffix isn't part
   of the error name": https://docs.aws.amazon.com/step-functions/latest/dg/supported-services-awssdk.html),
   the service's message in the cause: SageMaker.ResourceLimitExceededException. The aws-sdk
   integration's own naming is applied to them.

The only rewrite of the definition itself: Wait states wait 0 seconds (`fast_definition`).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import json
import os
import sys
import tarfile
import tempfile
import threading
import time
import traceback
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import moto.applicationautoscaling.models as autoscaling_models
import moto.awslambda.models as lambda_models
import moto.sagemaker.models as sagemaker_models
import moto.sagemaker.responses as sagemaker_responses
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.response import StreamingBody
from moto import mock_aws
from moto.core.models import botocore_stubber
from moto.core.responses import ActionResult
from moto.sagemaker.exceptions import SagemakerClientError, ValidationError
from moto.settings import moto_server_port
from moto.sns.models import sns_backends
from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.error_name import ErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
    StatesErrorNameType,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_parallel import branches_decl
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_aws_sdk as aws_sdk,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_unsupported as unsupported,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.utils import boto_client
from moto.stepfunctions.parser.asl.utils.encoding import to_json_str
from moto.stepfunctions.parser.utils import TMP_THREADS

from contract import layout
from contract.index import INDEX_FILES, parse_index
from jobs.recommend.__main__ import main as recommend_main
from tests.lambdas.pipeline import world
from tests.stacks import asl
from tests.tools.iam.harness import lambda_invocation  # the IAM check records each handler's boto3 calls

ACCOUNT, REGION = asl.ACCOUNT, asl.REGION
LAMBDA_ROLE = f"arn:aws:iam::{ACCOUNT}:role/loftrec-test-lambda"
STATE_MACHINE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/loftrec-test-states"
FEATURE_DIM = len(world.CUSTOMERS) + len(world.PRODUCTS) + 1  # every customer and product is kept, + time
JOB_STATUS = {
    "TrainingJob": "TrainingJobStatus",
    "ProcessingJob": "ProcessingJobStatus",
    "TransformJob": "TransformJobStatus",
    "HyperParameterTuningJob": "HyperParameterTuningJobStatus",
}


@dataclass
class Script:
    """What the fake SageMaker does in one test."""

    fm_test_rmse: float = 1.02  # FM's final test:rmse (on the validation channel)
    fm_quality: world.Quality = "truth"  # FM's model: the run's known FM, or noise
    recommend_failure: bool = False  # the batch recommendations job goes Failed
    fm_training_failure: str | None = None  # FailureReason: FM's training job fails with it
    blazingtext_resource_limit: str | None = (
        None  # CreateTrainingJob for BlazingText answers this quota error
    )
    training_requests: list[str] = field(default_factory=list)  # every CreateTrainingJob's job name
    failing_endpoints: set[str] = field(default_factory=set)  # created, then Failed
    rolled_back_updates: set[str] = field(default_factory=set)  # UpdateEndpoint ends on the old config
    busy_checks: int = 0  # DescribeEndpoint answers Creating/Updating this often after each change
    update_requests: list[dict[str, Any]] = field(default_factory=list)  # every UpdateEndpoint request
    scaling_policies_put: list[str] = field(default_factory=list)  # resource ids, this execution
    recommend_arguments: list[list[str]] = field(default_factory=list)  # each recommend job's arguments
    tuning_requests: list[dict[str, Any]] = field(default_factory=list)  # CreateHyperParameterTuningJob's


@dataclass(frozen=True)
class Execution:
    status: str
    entered: list[str]  # state names in the order entered (branches interleaved)
    output: dict[str, Any] | None
    error: str | None
    cause: str | None
    errors: list[str]  # every error any event of the history reports, e.g. "States.Runtime"

    def path(self, states: Iterable[str]) -> list[str]:
        """The entered states among `states`, in order: the path through one level or one branch."""
        wanted = set(states)
        return [name for name in self.entered if name in wanted]


def fast_definition(machine: dict[str, Any]) -> dict[str, Any]:
    """The only rewrite of the definition: Wait states wait 0 s."""

    def no_wait(_name: str, state: dict[str, Any]) -> None:
        if state["Type"] == "Wait":
            assert set(state) & {"Seconds", "SecondsPath"} == {"Seconds"}, state
            state["Seconds"] = 0

    return asl.edit_states(machine, no_wait)


# ---------------------------------------------------------------------------------------------------------
# 1. Lambda functions run in-process

# Held through each Lambda invocation (the environment is process-wide) and while the interpreter creates a
# client: boto3's default session is not safe for clients created in several threads at once.
_BOTO3_LOCK = threading.RLock()


def _cold_start() -> None:
    """Clear the functools caches of our Lambda modules (clients, settings), as a new container would."""
    for name, module in list(sys.modules.items()):
        if name == "lambdas" or name.startswith("lambdas."):
            for value in vars(module).values():
                if callable(getattr(value, "cache_clear", None)) and getattr(value, "__module__", "") == name:
                    value.cache_clear()


def _invoke_in_process(self: Any, body: str, request_headers: Any, response_headers: Any) -> bytes:
    module_name, _, function_name = str(self.handler).rpartition(".")
    event = json.loads(body) if body else {}
    environment = {**self.environment_vars, "AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region}
    context = SimpleNamespace(aws_request_id="test-request", function_name=self.function_name)
    with _BOTO3_LOCK:
        saved = {key: os.environ.get(key) for key in environment}
        os.environ.update(environment)
        try:
            _cold_start()
            handler = getattr(importlib.import_module(module_name), function_name)
            with lambda_invocation(str(self.handler), environment):
                result = handler(event, context)
        except Exception as error:  # the function's error, as Lambda reports it
            response_headers["x-amz-function-error"] = "Unhandled"
            result = {
                "errorType": type(error).__name__,
                "errorMessage": str(error),
                "stackTrace": traceback.format_tb(error.__traceback__),
            }
        finally:
            for key, value in saved.items():
                if value is None:
                    del os.environ[key]
                else:
                    os.environ[key] = value
    return json.dumps(result).encode()


# ---------------------------------------------------------------------------------------------------------
# 2. .sync for SageMaker jobs


def _sagemaker_sync_resolver(
    self: Any,
    env: Any,
    resource_runtime_part: Any,
    normalised_parameters: dict[str, Any],
    state_credentials: Any,
) -> Any:
    action = self._get_boto_service_action()  # e.g. create_training_job
    kind = "".join(part.title() for part in action.removeprefix("create_").split("_"))  # TrainingJob
    if self._get_boto_service_name() != "sagemaker" or kind not in JOB_STATUS:
        raise RuntimeError(f"no .sync for {self.resource.resource_arn} in this test harness")
    client = boto_client.boto_client_for(
        region=resource_runtime_part.region, service="sagemaker", state_credentials=state_credentials
    )
    env.stack.pop()  # the Create answer; the task's result is the job's description
    name = normalised_parameters[f"{kind}Name"]
    describe = getattr(client, action.replace("create_", "describe_", 1))

    def resolve() -> dict[str, Any] | None:
        description = describe(**{f"{kind}Name": name})
        description.pop("ResponseMetadata", None)
        status = description[JOB_STATUS[kind]]
        if status == "Completed":
            return dict(json.loads(to_json_str(description)))
        if status in ("Failed", "Stopped"):
            raise FailureEventException(
                FailureEvent(
                    env=env,
                    error_name=StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed),
                    event_type=HistoryEventType.TaskFailed,
                    event_details=EventDetails(  # type: ignore[typeddict-item]  # moto declares every key required
                        taskFailedEventDetails=TaskFailedEventDetails(
                            resource=self._get_sfn_resource(),
                            resourceType=self._get_sfn_resource_type(),
                            error=StatesErrorNameType.StatesTaskFailed.to_name(),
                            cause=to_json_str(description),
                        )
                    ),
                )
            )
        return None

    return resolve


# ---------------------------------------------------------------------------------------------------------
# 4. The interpreter's clients

_original_boto_client_for = boto_client.boto_client_for
# Step Functions' aws-sdk service names that are not boto3's.
SDK_SERVICES = {"applicationautoscaling": "application-autoscaling"}


def _validating_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
    """moto's client factory for the interpreter, with boto3's service names and parameter validation."""
    endpoint = None if botocore_stubber.enabled else f"http://localhost:{moto_server_port()}"
    with _BOTO3_LOCK:
        return boto3.client(
            SDK_SERVICES.get(service, service),
            region_name=region,
            aws_access_key_id="ak",
            aws_secret_access_key="sk",
            endpoint_url=endpoint,
            config=Config(parameter_validation=True, retries={"max_attempts": 0, "total_max_attempts": 1}),
        )


def _read_streams(
    self: Any, response: Any, boto_service_name: str | None = None, service_action_name: str | None = None
) -> None:
    """aws-sdk results as Step Functions gives them: a streamed body (S3 GetObject's Body) as its text."""
    if isinstance(response, dict):
        for key, value in response.items():
            if isinstance(value, StreamingBody):
                response[key] = value.read().decode()


def _branch_error_name(error_name: str | None) -> ErrorName:
    """The error a failed Parallel branch raises in its Parallel state: Step Functions' own names included
    (moto refuses them there, which would crash the execution instead of reaching the Parallel's Catch)."""
    if error_name is not None and error_name.startswith("States."):
        return StatesErrorName.from_name(error_name)
    return CustomErrorName(error_name)


# ---------------------------------------------------------------------------------------------------------
# 3 and 5. The scripted SageMaker


def _model_tar(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class ScriptedSageMaker:
    """Hooks around moto's SageMaker backend that play the algorithms and endpoints of a `Script`."""

    def __init__(
        self,
        script: Script,
        endpoint_names: dict[str, str],
        s3: Any,
        state_exited: Callable[[str], bool],
    ) -> None:
        self.script = script
        self.endpoint_names = endpoint_names
        self.s3 = s3  # created once: the hooks run in the interpreter's threads
        self.state_exited = state_exited  # whether the running execution has left a state of this name
        self.busy: dict[str, tuple[str, int]] = {}  # endpoint -> (status, DescribeEndpoint answers left)
        self.failing_jobs: dict[str, str] = {}  # training job -> FailureReason, reported once others finish
        self.create_processing_job = sagemaker_models.SageMakerModelBackend.create_processing_job
        self.create_training_job = sagemaker_models.SageMakerModelBackend.create_training_job
        self.create_endpoint = sagemaker_models.SageMakerModelBackend.create_endpoint
        self.create_transform_job = sagemaker_models.SageMakerModelBackend.create_transform_job
        self.create_tuning_job = sagemaker_models.SageMakerModelBackend.create_hyper_parameter_tuning_job

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        backend = sagemaker_models.SageMakerModelBackend
        monkeypatch.setattr(
            backend, "create_processing_job", self._processing_job(self.create_processing_job)
        )
        monkeypatch.setattr(backend, "create_training_job", self._training_job(self.create_training_job))
        monkeypatch.setattr(backend, "create_transform_job", self._transform_job(self.create_transform_job))
        monkeypatch.setattr(
            backend, "create_hyper_parameter_tuning_job", self._tuning_job(self.create_tuning_job)
        )
        monkeypatch.setattr(
            backend, "describe_training_job", self._describe_training_job(backend.describe_training_job)
        )
        monkeypatch.setattr(backend, "create_endpoint", self._endpoint(self.create_endpoint))
        monkeypatch.setattr(backend, "describe_endpoint", self._describe(backend.describe_endpoint))
        monkeypatch.setattr(backend, "update_endpoint", self._update_hook(), raising=False)
        scaling = autoscaling_models.ApplicationAutoscalingBackend
        monkeypatch.setattr(scaling, "put_scaling_policy", self._scaling_policy(scaling.put_scaling_policy))
        monkeypatch.setattr(
            sagemaker_responses.SageMakerResponse, "update_endpoint", _update_endpoint_response, raising=False
        )

    def _put(self, uri: str, body: bytes) -> None:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        self.s3.put_object(Bucket=bucket, Key=key, Body=body)

    def _get(self, uri: str) -> bytes:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        return bytes(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    def _upload_folder(self, folder: Path, prefix: str) -> None:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                self._put(f"{prefix.rstrip('/')}/{path.relative_to(folder).as_posix()}", path.read_bytes())

    def _download_folder(self, prefix: str, folder: Path) -> None:
        bucket, _, key = prefix.removeprefix("s3://").partition("/")
        listed = self.s3.list_objects_v2(Bucket=bucket, Prefix=key.rstrip("/") + "/").get("Contents", [])
        for item in listed:
            target = folder / item["Key"][len(key.rstrip("/")) + 1 :]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self._get(f"s3://{bucket}/{item['Key']}"))

    def _processing_job(self, create: Any) -> Any:
        @functools.wraps(create)
        def hook(backend: Any, **kwargs: Any) -> Any:
            job = create(backend, **kwargs)
            (output,) = kwargs["processing_output_config"]["Outputs"]
            prefix = output["S3Output"]["S3Uri"]
            entrypoint = kwargs["app_specification"].get("ContainerEntrypoint")
            with tempfile.TemporaryDirectory() as scratch:
                if entrypoint is None:  # the prep image's own entrypoint: python -m jobs.prep
                    world.prep_run(Path(scratch) / "prep")
                    self._upload_folder(Path(scratch) / "prep", prefix)
                elif self.script.recommend_failure:
                    job.processing_job_status = "Failed"
                else:
                    self._recommend(kwargs, Path(scratch), prefix)
            return job

        return hook

    def _recommend(self, request: dict[str, Any], scratch: Path, output_prefix: str) -> None:
        """The batch recommendations job: its inputs downloaded where Processing mounts them, then
        python -m jobs.recommend with the job's arguments, its output folder uploaded."""
        assert request["app_specification"]["ContainerEntrypoint"] == ["python", "-m", "jobs.recommend"]
        mounts = {}
        for source in request["processing_inputs"]:
            local = scratch / source["S3Input"]["LocalPath"].lstrip("/")
            self._download_folder(source["S3Input"]["S3Uri"], local)
            mounts[source["S3Input"]["LocalPath"]] = local
        (output,) = request["processing_output_config"]["Outputs"]
        out = scratch / output["S3Output"]["LocalPath"].lstrip("/")
        arguments = [str(mounts.get(a, a)) for a in request["app_specification"]["ContainerArguments"]]
        arguments = [str(out) if a == output["S3Output"]["LocalPath"] else a for a in arguments]
        message = scratch / "message"
        arguments = [str(message) if a == layout.CONTAINER_FAILURE_MESSAGE else a for a in arguments]
        self.script.recommend_arguments.append(request["app_specification"]["ContainerArguments"])
        assert recommend_main(arguments) == 0, message.read_text()
        self._upload_folder(out, output_prefix)

    def _tuning_job(self, create: Any) -> Any:
        """A tuning job whose best training job is one more FM job of its definition, with the tuned
        hyperparameters at values of their ranges, as SageMaker names it (<tuning job>-NNN-<hash>)."""

        @functools.wraps(create)
        def hook(backend: Any, **kwargs: Any) -> Any:
            self.script.tuning_requests.append(kwargs)
            arn = create(backend, **kwargs)
            name = kwargs["hyper_parameter_tuning_job_name"]
            definition = kwargs["training_job_definition"]
            ranges = kwargs["hyper_parameter_tuning_job_config"]["ParameterRanges"]
            tuned = {r["Name"]: r["MaxValue"] for kind in ranges.values() for r in kind}
            best = f"{name}-002-1a2b3c4d"
            boto3.client("sagemaker", region_name=REGION).create_training_job(
                TrainingJobName=best,
                HyperParameters={**definition["StaticHyperParameters"], **tuned},
                **{
                    key: definition[key]
                    for key in (
                        "AlgorithmSpecification",
                        "RoleArn",
                        "InputDataConfig",
                        "OutputDataConfig",
                        "ResourceConfig",
                        "StoppingCondition",
                    )
                },
            )
            backend.hyper_parameter_tuning_jobs[name].best_training_job = {
                "TrainingJobName": best,
                "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{best}",
                "TrainingJobStatus": "Completed",
                "TunedHyperParameters": tuned,
            }
            return arn

        return hook

    def _transform_job(self, create: Any) -> Any:
        """FM's Batch Transform: every input object scored by the model, written beside the output path as
        <name>.out (JSON Lines)."""

        @functools.wraps(create)
        def hook(backend: Any, **kwargs: Any) -> Any:
            job = create(backend, **kwargs)
            model = backend.describe_model(kwargs["model_name"])
            tar = self._get(model.primary_container["ModelDataUrl"])
            source = kwargs["transform_input"]["DataSource"]["S3DataSource"]["S3Uri"]
            bucket, _, key = source.removeprefix("s3://").partition("/")
            output = kwargs["transform_output"]["S3OutputPath"].rstrip("/")
            for item in self.s3.list_objects_v2(Bucket=bucket, Prefix=key).get("Contents", []):
                name = item["Key"][len(key) :].lstrip("/")
                shard = self._get(f"s3://{bucket}/{item['Key']}")
                self._put(f"{output}/{name}.out", world.transform_output(tar, shard))
            return job

        return hook

    def _training_job(self, create: Any) -> Any:
        script = self.script

        @functools.wraps(create)
        def hook(backend: Any, **kwargs: Any) -> Any:
            script.training_requests.append(kwargs["training_job_name"])
            if kwargs["training_job_name"].endswith("-bt") and script.blazingtext_resource_limit is not None:
                self._wait_for_state("Train FM")
                raise ResourceLimitExceededError(script.blazingtext_resource_limit)
            job = create(backend, **kwargs)
            if not kwargs["training_job_name"].endswith("-bt"):  # FM's, or a tuning job's FM job
                train = kwargs["input_data_config"][0]["DataSource"]["S3DataSource"]["S3Uri"]
                run_uri = train.removesuffix(layout.TRAIN)
                index = parse_index(*(self._get(f"{run_uri}{layout.INDEX}{name}") for name in INDEX_FILES))
                model = world.fm_artifact(index, script.fm_quality)
                self._put(job.model_artifacts["S3ModelArtifacts"], model)
                if script.fm_training_failure is not None:
                    job.training_job_status = job.secondary_status = "InProgress"
                    self.failing_jobs[kwargs["training_job_name"]] = script.fm_training_failure
                else:
                    job.final_metric_data_list = [
                        {
                            "MetricName": "test:rmse",
                            "Value": script.fm_test_rmse,
                            "Timestamp": job.creation_time,
                        }
                    ]
            else:
                tar = _model_tar({"vectors.txt": world.vectors_txt(), "vectors.bin": ""})
                self._put(job.model_artifacts["S3ModelArtifacts"], tar)
            return job

        return hook

    def _describe_training_job(self, describe: Any) -> Any:
        """A failing job goes Failed once the BlazingText branch has left its last state."""

        @functools.wraps(describe)
        def hook(backend: Any, training_job_name: str) -> Any:
            reason = self.failing_jobs.get(training_job_name)
            if reason is not None and self.state_exited("BlazingText ready"):
                job = backend.training_jobs[training_job_name]
                job.training_job_status = job.secondary_status = "Failed"
                job.failure_reason = reason
                del self.failing_jobs[training_job_name]
            return describe(backend, training_job_name)

        return hook

    def _wait_for_state(self, state: str) -> None:
        """Block until the running execution has left `state` (another branch's last state)."""
        deadline = time.monotonic() + 20
        while not self.state_exited(state):
            assert time.monotonic() < deadline, f"the execution never left {state}"
            time.sleep(0.01)

    def _wait_for_other_branches(self, name: str) -> None:
        """Block until every other endpoint's branch has put its scaling policy (its last state)."""
        others = {
            f"endpoint/{other}/variant/AllTraffic" for other in self.endpoint_names.values() if other != name
        }
        deadline = time.monotonic() + 20
        while not others <= set(self.script.scaling_policies_put):
            assert time.monotonic() < deadline, f"the other deployments never finished: {others}"
            time.sleep(0.01)

    def _scaling_policy(self, put: Any) -> Any:
        script = self.script

        @functools.wraps(put)
        def hook(backend: Any, *args: Any, **kwargs: Any) -> Any:
            policy = put(backend, *args, **kwargs)
            script.scaling_policies_put.append(policy.resource_id)
            return policy

        return hook

    def _endpoint(self, create: Any) -> Any:
        script = self.script

        @functools.wraps(create)
        def hook(backend: Any, endpoint_name: str, **kwargs: Any) -> Any:
            if endpoint_name in script.failing_endpoints:
                self._wait_for_other_branches(endpoint_name)
            endpoint = create(backend, endpoint_name=endpoint_name, **kwargs)
            self.busy[endpoint_name] = ("Creating", script.busy_checks)
            if endpoint_name in script.failing_endpoints:
                endpoint.endpoint_status = "Failed"
                endpoint.failure_reason = "The primary container did not pass the ping health check."
            return endpoint

        return hook

    def _describe(self, describe: Any) -> Any:
        @functools.wraps(describe)
        def hook(backend: Any, endpoint_name: str) -> Any:
            response = describe(backend, endpoint_name)
            status, left = self.busy.get(endpoint_name, ("", 0))
            if left > 0 and response["EndpointStatus"] == "InService":
                self.busy[endpoint_name] = (status, left - 1)
                return {**response, "EndpointStatus": status}
            return response

        return hook

    def _update_hook(self) -> Any:
        def update_endpoint(backend: Any, **kwargs: Any) -> str:
            return self._update_endpoint(backend, **kwargs)

        return update_endpoint

    def _update_endpoint(
        self, backend: Any, endpoint_name: str, endpoint_config_name: str, request: dict[str, Any]
    ) -> str:
        self.script.update_requests.append(request)
        endpoint = backend.endpoints.get(endpoint_name)
        if endpoint is None:
            raise ValidationError(message=f"Could not find endpoint '{endpoint_name}'.")
        config = backend.describe_endpoint_config(endpoint_config_name)
        current = backend.describe_endpoint_config(endpoint.endpoint_config_name)["ProductionVariants"]
        types = {variant["VariantName"]: variant.get("InstanceType") for variant in current}
        scaling = autoscaling_models.applicationautoscaling_backends[ACCOUNT][REGION]
        registered = {
            target.resource_id for target in scaling.describe_scalable_targets("sagemaker", None, None)
        }
        for variant in config["ProductionVariants"]:
            name = variant["VariantName"]
            if f"endpoint/{endpoint_name}/variant/{name}" in registered and types.get(name) != variant.get(
                "InstanceType"
            ):
                raise ValidationError(
                    message=f"Variant {name} of endpoint {endpoint_name} is a scalable target: deregister it "
                    "before changing its instance type."
                )
        if endpoint_name in self.script.rolled_back_updates and request.get("DeploymentConfig"):
            self._wait_for_other_branches(endpoint_name)
            endpoint.failure_reason = "Deployment rolled back: an auto-rollback alarm went into ALARM."
        else:
            endpoint.endpoint_config_name = endpoint_config_name
            counts = {v["VariantName"]: v.get("CurrentInstanceCount") for v in endpoint.production_variants}
            endpoint.production_variants = endpoint._process_production_variants(config["ProductionVariants"])
            if request.get("RetainAllVariantProperties"):
                for variant in endpoint.production_variants:
                    if counts.get(variant["VariantName"]) is not None:
                        variant["CurrentInstanceCount"] = counts[variant["VariantName"]]
                        variant["DesiredInstanceCount"] = counts[variant["VariantName"]]
        endpoint.endpoint_status = "InService"
        self.busy[endpoint_name] = ("Updating", self.script.busy_checks)
        return str(endpoint.arn)


class ResourceLimitExceededError(SagemakerClientError):
    """SageMaker's quota error, as CreateTrainingJob, CreateEndpoint and UpdateEndpoint answer it."""

    code = "ResourceLimitExceeded"


# The service part of Step Functions' error names that moto's table lacks.
SERVICE_ERROR_NAMES = {"sagemaker": "SageMaker"}


def _forwarded_error(self: Any, env: Any, ex: Exception) -> Any:
    """An error a forwarded optimized integration answers, named as Step Functions names it."""
    if isinstance(ex, ClientError):
        api = self.resource.api_name
        service = SERVICE_ERROR_NAMES.get(
            api
        ) or aws_sdk.StateTaskServiceAwsSdk._normalise_service_error_name(api)
        error = aws_sdk.StateTaskServiceAwsSdk._normalise_exception_name(service, ex)
        cause = f"{ex.response['Error']['Message']} (Service: {service}, Status Code: 400)"
        return aws_sdk.StateTaskServiceAwsSdk._get_task_failure_event(self, env=env, error=error, cause=cause)
    return _original_unsupported_from_error(self, env, ex)


_original_unsupported_from_error = unsupported.StateTaskServiceUnsupported._from_error


def _update_endpoint_response(self: Any) -> ActionResult:
    request = json.loads(self.body)
    arn = self.sagemaker_backend.update_endpoint(
        endpoint_name=request["EndpointName"],
        endpoint_config_name=request["EndpointConfigName"],
        request=request,
    )
    return ActionResult({"EndpointArn": arn})


# ---------------------------------------------------------------------------------------------------------
# The world


class PipelineCloud:
    """moto's account with the stack's bucket, topic, functions and state machine, ready to run."""

    def __init__(self, document: dict[str, Any], script: Script, endpoint_names: dict[str, str]) -> None:
        self.document = document
        self.script = script
        self.endpoint_names = endpoint_names
        self.machine = fast_definition(asl.definition(document))
        resources = document["Resources"]
        self.bucket = asl.bucket_name(self._single(resources, "AWS::S3::Bucket", "StorageData"))
        self.topic_arn = asl.resource_arn(
            document, self._single(resources, "AWS::SNS::Topic", "Notifications")
        )
        self.s3 = boto3.client("s3", region_name=REGION)
        self.sagemaker = boto3.client("sagemaker", region_name=REGION)
        self.scaling = boto3.client("application-autoscaling", region_name=REGION)
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        self.s3.create_bucket(Bucket=self.bucket)
        iam = boto3.client("iam", region_name=REGION)
        for role in (LAMBDA_ROLE, STATE_MACHINE_ROLE):
            iam.create_role(RoleName=role.rsplit("/", 1)[1], AssumeRolePolicyDocument="{}")
        boto3.client("sns", region_name=REGION).create_topic(Name=self.topic_arn.rsplit(":", 1)[1])
        self._create_functions()
        self.state_machine_arn = self.sfn.create_state_machine(
            name="LoftrecRetraining", definition=json.dumps(self.machine), roleArn=STATE_MACHINE_ROLE
        )["stateMachineArn"]

    @staticmethod
    def _single(resources: dict[str, Any], kind: str, prefix: str) -> str:
        (logical_id,) = (k for k, v in resources.items() if v["Type"] == kind and k.startswith(prefix))
        return logical_id

    def _create_functions(self) -> None:
        """Every function the definition invokes, named by logical id, with its Handler and Environment."""
        client = boto3.client("lambda", region_name=REGION)
        invoked = {
            state["Parameters"]["FunctionName"]
            for state in asl.task_states(self.machine).values()
            if state["Resource"].endswith(":lambda:invoke")
        }
        for logical_id, resource in self.document["Resources"].items():
            if resource["Type"] != "AWS::Lambda::Function":
                continue
            if asl.resource_arn(self.document, logical_id) not in invoked:
                continue
            properties = resource["Properties"]
            variables = asl.resolve(self.document, properties.get("Environment", {}).get("Variables", {}))
            client.create_function(
                FunctionName=logical_id,
                Runtime="python3.12",
                Role=LAMBDA_ROLE,
                Handler=properties["Handler"],
                Code={"ZipFile": _zip_placeholder()},
                Environment={"Variables": variables},
            )
        missing = invoked - {f["FunctionArn"] for f in client.list_functions()["Functions"]}
        assert not missing, f"the definition invokes functions the template does not define: {missing}"

    # ---- running

    def run(self, name: str, execution_input: dict[str, Any] | None = None, timeout: float = 45) -> Execution:
        self.script.scaling_policies_put.clear()
        arn = self.sfn.start_execution(
            stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(execution_input or {})
        )["executionArn"]
        self.execution_arn = arn
        deadline = time.monotonic() + timeout
        while (described := self.sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
            assert time.monotonic() < deadline, f"execution {name} still running after {timeout} s"
            time.sleep(0.05)
        for thread in list(TMP_THREADS):  # branches stopped by a failed Parallel finish their state
            thread.join(timeout=10)
        events = self.sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        entered = [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]
        failed: dict[str, Any] = next(
            (e["executionFailedEventDetails"] for e in events if "executionFailedEventDetails" in e), {}
        )
        errors = [
            details["error"]
            for event in events
            for key, details in event.items()
            if key.endswith("EventDetails") and isinstance(details, dict) and "error" in details
        ]
        return Execution(
            status=described["status"],
            entered=entered,
            output=json.loads(described["output"]) if described.get("output") else None,
            error=failed.get("error"),
            cause=failed.get("cause"),
            errors=errors,
        )

    def state_exited(self, state: str) -> bool:
        """Whether the execution running now has left a state of this name (a Parallel branch's too)."""
        arn = getattr(self, "execution_arn", None)
        if arn is None:
            return False
        events = self.sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        return any(e.get("stateExitedEventDetails", {}).get("name") == state for e in events)

    # ---- what exists afterwards

    def object_json(self, key: str) -> Any:
        return json.loads(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def object_keys(self) -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=self.bucket).get("Contents", [])
        return sorted(item["Key"] for item in listed)

    def messages(self) -> list[tuple[str | None, str]]:
        """(subject, message) of every notification published to the topic, in order."""
        topic = sns_backends[ACCOUNT][REGION].topics[self.topic_arn]
        return [(subject, message) for _id, message, subject, _attributes, _group in topic.sent_notifications]

    def models(self) -> list[str]:
        return sorted(m["ModelName"] for m in self.sagemaker.list_models()["Models"])

    def endpoint_configs(self) -> list[str]:
        return sorted(
            c["EndpointConfigName"] for c in self.sagemaker.list_endpoint_configs()["EndpointConfigs"]
        )

    def endpoints(self) -> dict[str, str]:
        """Endpoint name -> its configuration's name."""
        return {
            e["EndpointName"]: self.sagemaker.describe_endpoint(EndpointName=e["EndpointName"])[
                "EndpointConfigName"
            ]
            for e in self.sagemaker.list_endpoints()["Endpoints"]
        }

    def scalable_targets(self) -> dict[str, tuple[int, int]]:
        targets = self.scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
        return {t["ResourceId"]: (t["MinCapacity"], t["MaxCapacity"]) for t in targets}

    def scaling_policies(self) -> list[str]:
        policies = self.scaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
        return sorted(p["PolicyName"] for p in policies)


@functools.cache
def _zip_placeholder() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README", "the code runs in-process from lambdas/")
    return buffer.getvalue()


@contextlib.contextmanager
def pipeline_cloud(
    monkeypatch: pytest.MonkeyPatch, document: dict[str, Any], script: Script, endpoint_names: dict[str, str]
) -> Iterator[PipelineCloud]:
    """moto with the patches listed in this module's docstring, and the stack's resources in it."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setattr(lambda_models.LambdaFunction, "invoke", _invoke_in_process)
    monkeypatch.setattr(
        unsupported,
        "_SUPPORTED_INTEGRATION_PATTERNS",
        {ResourceCondition.WaitForTaskToken, ResourceCondition.Sync},
    )
    monkeypatch.setattr(
        unsupported.StateTaskServiceUnsupported, "_build_sync_resolver", _sagemaker_sync_resolver
    )
    monkeypatch.setattr(aws_sdk.StateTaskServiceAwsSdk, "_normalise_response", _read_streams)
    monkeypatch.setattr(branches_decl, "CustomErrorName", _branch_error_name)
    monkeypatch.setattr(unsupported.StateTaskServiceUnsupported, "_from_error", _forwarded_error)
    for name, module in list(sys.modules.items()):
        if name.startswith("moto.stepfunctions.parser") and getattr(module, "boto_client_for", None) is (
            _original_boto_client_for
        ):
            monkeypatch.setattr(module, "boto_client_for", _validating_client_for)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        _cold_start()
        cloud = PipelineCloud(document, script, endpoint_names)
        ScriptedSageMaker(script, endpoint_names, cloud.s3, cloud.state_exited).install(monkeypatch)
        yield cloud
        _cold_start()
