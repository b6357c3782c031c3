"""The deploy phase alone: one deployment per model, the same states twice, and what it grants."""

from __future__ import annotations

from typing import Any

import pytest

from stacks.monitoring import EndpointAlarms
from stacks.pipeline.deploy import DeployModels
from tests.stacks import asl
from tests.stacks.pipeline.alone import ENDPOINT_NAMES, Alone, build


@pytest.fixture(scope="module")
def alone() -> Alone[DeployModels]:
    def make(stack: Any, shared: Any) -> DeployModels:
        alarms = EndpointAlarms(stack, "Alarms", endpoint_names=shared.endpoint_names, topic=shared.topic)
        return DeployModels(stack, "Deploy", shared=shared, rollback_alarms=alarms.alarms)

    return build(make)


def _graph(branch: dict[str, Any], label: str) -> dict[str, Any]:
    """Each state's type and where it goes, the model's label replaced by <label>."""

    def name(value: str) -> str:
        return value.replace(label, "<label>")

    graph: dict[str, Any] = {}
    for state_name, state in branch["States"].items():
        choices = [name(choice["Next"]) for choice in state.get("Choices", [])]
        targets = [name(state[key]) for key in ("Next", "Default") if key in state]
        graph[name(state_name)] = (state["Type"], choices, targets, state.get("End", False))
    return {"StartAt": name(branch["StartAt"]), **graph}


def test_both_models_deploy_through_the_same_states(alone: Alone[DeployModels]) -> None:
    assert list(alone.machine["States"]) == ["Deploy models"]
    fm, bt = alone.state("Deploy models")["Branches"]
    assert _graph(fm, "FM") == _graph(bt, "BlazingText")
    graph = _graph(fm, "FM")
    assert graph["StartAt"] == "Create <label> model"
    assert graph["<label> endpoint exists?"][1:3] == (
        ["Create <label> endpoint", "Deregister <label> autoscaling"],
        ["Update <label> endpoint"],
    )
    assert graph["<label> endpoint ready?"][1] == [
        "Register <label> autoscaling",
        "<label> update rolled back",
        "<label> endpoint failed",
        "<label> endpoint timed out",
    ]
    assert graph["Put <label> scaling policy"][3] is True
    assert alone.state("Wait for FM endpoint")["Seconds"] == 60
    assert alone.state("FM endpoint ready?")["Choices"][3]["NumericGreaterThanEquals"] == 90


def test_every_task_sends_what_its_service_accepts(alone: Alone[DeployModels]) -> None:
    tasks = asl.task_states(alone.machine)
    assert len(tasks) == 2 * 9
    assert {name: asl.request_errors(s) for name, s in tasks.items() if asl.request_errors(s)} == {}
    assert {name: asl.literal_errors(s) for name, s in tasks.items() if asl.literal_errors(s)} == {}


def test_one_plan_function_for_both_retried_while_an_endpoint_is_busy(alone: Alone[DeployModels]) -> None:
    alone.function("lambdas.pipeline.endpoints.plan_handler")  # exactly one
    plans = [alone.state(f"Plan {label} endpoint") for label in ("FM", "BlazingText")]
    assert plans[0]["Parameters"]["FunctionName"] == plans[1]["Parameters"]["FunctionName"]
    assert plans[0]["Parameters"]["Payload"] == {"endpoint_name": "test-fm", "instance_type": "ml.m4.xlarge"}
    for plan in plans:
        assert plan["Retry"][-1] == {
            "ErrorEquals": ["EndpointBusyError"],
            "IntervalSeconds": 60,
            "MaxAttempts": 30,
            "BackoffRate": 1.2,
            "MaxDelaySeconds": 300,
        }


def test_each_update_rolls_back_on_its_own_endpoints_alarms(alone: Alone[DeployModels]) -> None:
    for label, model in (("FM", "fm"), ("BlazingText", "blazingtext")):
        update = alone.state(f"Update {label} endpoint")["Parameters"]
        alarms = [a["AlarmName"] for a in update["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]]
        endpoint = ENDPOINT_NAMES[model]
        assert alarms == [f"{endpoint}-invocation-5xx", f"{endpoint}-model-latency-p99"]
        scaling = alone.state(f"Register {label} autoscaling")["Parameters"]
        assert scaling["ResourceId"] == f"endpoint/{endpoint}/variant/AllTraffic"
        assert scaling["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"


def test_the_state_machine_may_deploy_loftrecs_endpoints_only(alone: Alone[DeployModels]) -> None:
    grants = alone.grants()
    arn = f"arn:aws:sagemaker:{asl.REGION}:{asl.ACCOUNT}"
    endpoints = [
        f"{arn}:endpoint-config/loftrec-*",
        f"{arn}:endpoint/test-blazingtext",
        f"{arn}:endpoint/test-fm",
    ]
    for action in ("CreateEndpoint", "UpdateEndpoint"):
        assert grants[f"sagemaker:{action}"] == endpoints
    # Application Auto Scaling validates the caller's permissions on the target with requests on names it
    # makes up (security_iam_permission_validation.html): any endpoint and alarm of the account and region.
    anywhere = [f"{arn}:endpoint-config/*", f"{arn}:endpoint/*"]
    assert grants["sagemaker:DescribeEndpoint"] == sorted([*endpoints, *anywhere])
    for action in ("DescribeEndpointConfig", "UpdateEndpointWeightsAndCapacities"):
        assert grants[f"sagemaker:{action}"] == anywhere
    any_alarm = f"arn:aws:cloudwatch:{asl.REGION}:{asl.ACCOUNT}:alarm:*"
    for action in ("PutMetricAlarm", "DeleteAlarms"):
        assert grants[f"cloudwatch:{action}"] == [any_alarm]
    assert grants["sagemaker:CreateModel"] == [f"{arn}:model/loftrec-*"]
    assert grants["sagemaker:CreateEndpointConfig"] == [f"{arn}:endpoint-config/loftrec-*"]
    assert not [action for action in grants if "TrainingJob" in action or "ProcessingJob" in action]
    assert grants["application-autoscaling:RegisterScalableTarget"] == ["*"]
    (linked,) = grants["iam:CreateServiceLinkedRole"]
    assert linked[0].endswith(":role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/*")
    assert "sagemaker.application-autoscaling.amazonaws.com" in linked[1]
    alarm = f"arn:aws:cloudwatch:{asl.REGION}:{asl.ACCOUNT}:alarm:"
    guardrails = [
        f"{alarm}{endpoint}-{kind}"
        for endpoint in ENDPOINT_NAMES.values()
        for kind in ("invocation-5xx", "model-latency-p99")
    ]
    assert grants["cloudwatch:DescribeAlarms"] == sorted([any_alarm, *guardrails])
    assert "s3:PutObject" not in grants and "sns:Publish" not in grants


def test_a_model_the_quality_gate_created_is_deployed_without_creating_it_again() -> None:
    def make(stack: Any, shared: Any) -> DeployModels:
        alarms = EndpointAlarms(stack, "Alarms", endpoint_names=shared.endpoint_names, topic=shared.topic)
        return DeployModels(
            stack, "Deploy", shared=shared, rollback_alarms=alarms.alarms, created=frozenset({"fm"})
        )

    fm, bt = build(make).state("Deploy models")["Branches"]
    assert (fm["StartAt"], bt["StartAt"]) == ("Create FM endpoint config", "Create BlazingText model")
    assert "Create FM model" not in fm["States"]
    assert (
        fm["States"]["Create FM endpoint config"]["Parameters"]["ProductionVariants"][0]["ModelName.$"]
        == "$.run.names.fm_model"
    )


def _deploy(stack: Any, shared: Any) -> DeployModels:
    alarms = EndpointAlarms(stack, "Alarms", endpoint_names=shared.endpoint_names, topic=shared.topic)
    return DeployModels(stack, "Deploy", shared=shared, rollback_alarms=alarms.alarms)


def test_endpoint_storage_is_encrypted_with_the_data_key_unless_the_type_has_local_storage(
    alone: Alone[DeployModels],
) -> None:
    key = asl.resource_arn(alone.document, alone.logical_id("AWS::KMS::Key", "StorageDataKey"))
    assert alone.state("Create FM endpoint config")["Parameters"]["KmsKeyId"] == key
    # "If you specify a value for KmsKeyId when using any nitro-based instances with local storage, the call
    # to CreateEndpointConfig fails" (contract.instances).
    local = build(_deploy, endpoint_instance_type="ml.g4dn.xlarge")
    for label in ("FM", "BlazingText"):
        create = local.state(f"Create {label} endpoint config")
        assert "KmsKeyId" not in create["Parameters"]
        assert create["Parameters"]["ProductionVariants"][0]["InstanceType"] == "ml.g4dn.xlarge"
        assert asl.request_errors(create) == ""
