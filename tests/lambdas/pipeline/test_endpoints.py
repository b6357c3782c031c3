"""Endpoint decisions: create or update (deregistering autoscaling first when the instance type changes),
and the rollback that puts serving back on the deployed run's configurations.

moto (5.2.5) implements DescribeEndpoint, DescribeEndpointConfig, DeleteEndpoint and Application Auto
Scaling's DescribeScalableTargets; it has no UpdateEndpoint, so the rollback's update is tested with
botocore's Stubber on the very client the code uses.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from moto.sagemaker.models import sagemaker_backends

from contract.documents import run_record
from lambdas.kit import clients
from lambdas.kit.errors import EndpointBusyError
from lambdas.pipeline import endpoints


def record_body(run_id: str, *, fm_test_rmse: float = 1.0, configs: dict[str, str] | None = None) -> bytes:
    """A deployed-run record as the state machine writes it."""
    record = run_record(
        run_id=run_id,
        deployed_at="2026-11-29T03:00:00Z",
        run_uri=f"s3://data/runs/{run_id}/",
        metrics={"fm_test_rmse": fm_test_rmse, "baseline_global_mean_rmse": 1.28, "baseline_bias_rmse": 1.1},
        endpoint_configs=configs,
    )
    return json.dumps(record).encode()


ACCOUNT, REGION = "123456789012", "us-east-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/sagemaker"
FM, BT = "loftrec-fm", "loftrec-blazingtext"


@pytest.fixture
def fresh_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    clients.client.cache_clear()
    endpoints.rollback_settings.cache_clear()
    yield
    clients.client.cache_clear()
    endpoints.rollback_settings.cache_clear()


@pytest.fixture
def sagemaker(fresh_clients: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("RUN_RECORD_URI", "s3://data/serving/current.json")
    monkeypatch.setenv("FM_ENDPOINT", FM)
    monkeypatch.setenv("BLAZINGTEXT_ENDPOINT", BT)
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="data")
        yield boto3.client("sagemaker")


def deploy(sagemaker: Any, endpoint: str, config: str, instance_type: str = "ml.m4.xlarge") -> None:
    """An endpoint serving `config`, as an earlier run left it."""
    sagemaker.create_model(ModelName=config, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "fm:1"})
    sagemaker.create_endpoint_config(
        EndpointConfigName=config,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": config,
                "InitialInstanceCount": 1,
                "InstanceType": instance_type,
            }
        ],
    )
    sagemaker.create_endpoint(EndpointName=endpoint, EndpointConfigName=config)


def autoscale(endpoint: str) -> None:
    boto3.client("application-autoscaling").register_scalable_target(
        ServiceNamespace="sagemaker",
        ResourceId=f"endpoint/{endpoint}/variant/AllTraffic",
        ScalableDimension="sagemaker:variant:DesiredInstanceCount",
        MinCapacity=1,
        MaxCapacity=4,
    )


def set_status(endpoint: str, status: str, reason: str | None = None) -> None:
    """What SageMaker reports while it works on the endpoint (moto's endpoints are always InService)."""
    fake: Any = sagemaker_backends[ACCOUNT][REGION].endpoints[endpoint]
    fake.endpoint_status = status
    fake.failure_reason = reason


# ---------------------------------------------------------------------------------------------------------
# plan


def test_no_endpoint_means_create(sagemaker: Any) -> None:
    event = {"endpoint_name": FM, "instance_type": "ml.m4.xlarge"}
    assert endpoints.plan_handler(event, None) == {
        "action": "create",
        "previous_config": None,
        "deregister_first": False,
    }


def test_an_autoscaled_endpoint_on_the_same_instance_type_is_updated_in_place(sagemaker: Any) -> None:
    deploy(sagemaker, FM, "loftrec-r1-fm-config")
    autoscale(FM)
    assert endpoints.plan(FM, "ml.m4.xlarge") == {
        "action": "update",
        "previous_config": "loftrec-r1-fm-config",
        "deregister_first": False,
    }


def test_a_new_instance_type_deregisters_autoscaling_first(sagemaker: Any) -> None:
    deploy(sagemaker, FM, "loftrec-r1-fm-config", instance_type="ml.m5.large")
    autoscale(FM)
    autoscale(BT)  # another endpoint's target does not count
    assert endpoints.plan(FM, "ml.m4.xlarge") == {
        "action": "update",
        "previous_config": "loftrec-r1-fm-config",
        "deregister_first": True,
    }


def test_a_new_instance_type_without_autoscaling_needs_no_deregistration(sagemaker: Any) -> None:
    deploy(sagemaker, FM, "loftrec-r1-fm-config", instance_type="ml.m5.large")
    autoscale(BT)
    assert endpoints.plan(FM, "ml.m4.xlarge")["deregister_first"] is False


@pytest.mark.parametrize("status", ["Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"])
def test_a_busy_endpoint_is_retried_later(sagemaker: Any, status: str) -> None:
    deploy(sagemaker, FM, "loftrec-r1-fm-config")
    set_status(FM, status)
    with pytest.raises(EndpointBusyError, match=f"endpoint loftrec-fm is {status}"):
        endpoints.plan(FM, "ml.m4.xlarge")


def test_a_failed_endpoint_stops_the_run_with_what_to_do(sagemaker: Any) -> None:
    deploy(sagemaker, FM, "loftrec-r1-fm-config")
    set_status(FM, "Failed", "The primary container did not pass the ping health check.")
    with pytest.raises(RuntimeError) as raised:
        endpoints.plan(FM, "ml.m4.xlarge")
    assert not isinstance(raised.value, EndpointBusyError)
    assert "did not pass the ping health check" in str(raised.value)
    assert "aws sagemaker delete-endpoint" in str(raised.value)


# ---------------------------------------------------------------------------------------------------------
# rollback

RUN_CONFIGS = {"fm": "loftrec-r2-fm-config", "blazingtext": "loftrec-r2-bt-config"}
ENDPOINTS = {"fm": FM, "blazingtext": BT}


def test_without_a_deployed_run_the_endpoints_this_run_created_are_deleted(sagemaker: Any) -> None:
    deploy(sagemaker, FM, RUN_CONFIGS["fm"])
    # BlazingText's endpoint was never created: its branch stopped before.
    outcome = endpoints.rollback_handler({"run_configs": RUN_CONFIGS}, None)
    assert outcome == {
        "blazingtext": "absent",
        "fm": "deleted: this run created it and no run was deployed before",
    }
    assert sagemaker.list_endpoints()["Endpoints"] == []


def test_an_endpoint_sagemaker_already_rolled_back_is_left_alone(sagemaker: Any) -> None:
    configs = {"fm": "loftrec-r1-fm-config", "blazingtext": "loftrec-r1-bt-config"}
    boto3.client("s3").put_object(
        Bucket="data", Key="serving/current.json", Body=record_body("r1", configs=configs)
    )
    deploy(sagemaker, FM, "loftrec-r1-fm-config")  # the blue/green update rolled back
    deploy(sagemaker, BT, "loftrec-r1-bt-config")  # never updated
    assert endpoints.rollback_handler({"run_configs": RUN_CONFIGS}, None) == {
        "blazingtext": "unchanged",
        "fm": "unchanged",
    }
    assert sagemaker.describe_endpoint(EndpointName=FM)["EndpointConfigName"] == "loftrec-r1-fm-config"


def test_a_busy_endpoint_makes_the_rollback_wait(sagemaker: Any) -> None:
    deploy(sagemaker, FM, RUN_CONFIGS["fm"])
    set_status(FM, "Updating")
    with pytest.raises(EndpointBusyError, match="rolling back once it settles"):
        endpoints.rollback(ENDPOINTS, RUN_CONFIGS, None)


def _described(name: str, config: str, status: str = "InService") -> dict[str, Any]:
    now = datetime.datetime(2024, 5, 1, tzinfo=datetime.UTC)
    return {
        "EndpointName": name,
        "EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{name}",
        "EndpointConfigName": config,
        "EndpointStatus": status,
        "CreationTime": now,
        "LastModifiedTime": now,
    }


def test_an_endpoint_on_this_runs_configuration_goes_back_to_the_deployed_one(fresh_clients: None) -> None:
    record = run_record(
        run_id="r1",
        deployed_at="2026-11-29T03:00:00Z",
        run_uri="s3://data/runs/r1/",
        metrics={"fm_test_rmse": 1.0, "baseline_global_mean_rmse": 1.28, "baseline_bias_rmse": 1.1},
        endpoint_configs={"fm": "loftrec-r1-fm-config", "blazingtext": "loftrec-r1-bt-config"},
    )
    client = clients.client("sagemaker")  # the clients endpoints.rollback uses
    scaling = clients.client("application-autoscaling")
    with Stubber(client) as stub, Stubber(scaling) as scaling_stub:
        # BlazingText was updated to this run's configuration; FM's update was rolled back by SageMaker.
        stub.add_response(
            "describe_endpoint", _described(BT, RUN_CONFIGS["blazingtext"]), {"EndpointName": BT}
        )
        scaling_stub.add_response(
            "describe_scalable_targets",
            {"ScalableTargets": []},
            {"ServiceNamespace": "sagemaker", "ResourceIds": [f"endpoint/{BT}/variant/AllTraffic"]},
        )
        stub.add_response(
            "update_endpoint",
            {"EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{BT}"},
            {
                "EndpointName": BT,
                "EndpointConfigName": "loftrec-r1-bt-config",
                "RetainAllVariantProperties": True,
            },
        )
        stub.add_response("describe_endpoint", _described(FM, "loftrec-r1-fm-config"), {"EndpointName": FM})
        outcome = endpoints.rollback(ENDPOINTS, RUN_CONFIGS, record)
        stub.assert_no_pending_responses()
        scaling_stub.assert_no_pending_responses()
    assert outcome == {"blazingtext": "rolled back to loftrec-r1-bt-config", "fm": "unchanged"}


def test_a_failed_endpoint_on_this_runs_configuration_is_deleted_even_with_a_deployed_run(
    sagemaker: Any,
) -> None:
    # SageMaker allows nothing but DeleteEndpoint on a Failed endpoint: an update back would be refused.
    configs = {"fm": "loftrec-r1-fm-config", "blazingtext": "loftrec-r1-bt-config"}
    boto3.client("s3").put_object(
        Bucket="data", Key="serving/current.json", Body=record_body("r1", configs=configs)
    )
    deploy(sagemaker, FM, RUN_CONFIGS["fm"])
    set_status(FM, "Failed", "The primary container did not pass the ping health check.")
    outcome = endpoints.rollback_handler({"run_configs": RUN_CONFIGS}, None)
    assert outcome == {
        "blazingtext": "absent",
        "fm": "deleted: it went Failed (The primary container did not pass the ping health check.)",
    }
    assert sagemaker.list_endpoints()["Endpoints"] == []


def test_other_sagemaker_errors_are_not_taken_for_a_missing_endpoint(fresh_clients: None) -> None:
    client = clients.client("sagemaker")
    with Stubber(client) as stub:
        stub.add_client_error(
            "describe_endpoint", service_error_code="AccessDeniedException", http_status_code=403
        )
        with pytest.raises(client.exceptions.ClientError, match="AccessDenied"):
            endpoints.plan(FM, "ml.m4.xlarge")


def _config(name: str, instance_type: str) -> dict[str, Any]:
    now = datetime.datetime(2024, 5, 1, tzinfo=datetime.UTC)
    return {
        "EndpointConfigName": name,
        "EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/{name}",
        "ProductionVariants": [
            {"VariantName": "AllTraffic", "ModelName": name, "InstanceType": instance_type}
        ],
        "CreationTime": now,
    }


def _targets() -> list[str]:
    scaling = boto3.client("application-autoscaling")
    return [
        t["ResourceId"]
        for t in scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    ]


DEPLOYED = {"fm": "loftrec-r1-fm-config", "blazingtext": "loftrec-r1-bt-config"}


@pytest.mark.parametrize(("deployed_type", "deregistered"), [("ml.m5.large", True), ("ml.m4.xlarge", False)])
def test_a_rollback_to_another_instance_type_deregisters_autoscaling_before_the_update(
    fresh_clients: None, deployed_type: str, deregistered: bool
) -> None:
    # "If the update would change the instance type for any model that is a target for auto scaling, the
    # update fails" (endpoint-scaling-update.html). moto has no UpdateEndpoint: SageMaker is stubbed, and
    # Application Auto Scaling is moto's, so the update can see whether the target is still registered.
    record = run_record(
        run_id="r1",
        deployed_at="2026-11-29T03:00:00Z",
        run_uri="s3://data/runs/r1/",
        metrics={"fm_test_rmse": 1.0, "baseline_global_mean_rmse": 1.28, "baseline_bias_rmse": 1.1},
        endpoint_configs=DEPLOYED,
    )
    with mock_aws():
        autoscale(FM)
        client = clients.client("sagemaker")
        registered_at_update: list[list[str]] = []
        client.meta.events.register(
            "provide-client-params.sagemaker.UpdateEndpoint",
            lambda **_: registered_at_update.append(_targets()),
        )
        with Stubber(client) as stub:
            stub.add_response(
                "describe_endpoint", _described(BT, DEPLOYED["blazingtext"]), {"EndpointName": BT}
            )
            stub.add_response("describe_endpoint", _described(FM, RUN_CONFIGS["fm"]), {"EndpointName": FM})
            stub.add_response(
                "describe_endpoint_config",
                _config(RUN_CONFIGS["fm"], "ml.m4.xlarge"),
                {"EndpointConfigName": RUN_CONFIGS["fm"]},
            )
            stub.add_response(
                "describe_endpoint_config",
                _config(DEPLOYED["fm"], deployed_type),
                {"EndpointConfigName": DEPLOYED["fm"]},
            )
            stub.add_response(
                "update_endpoint",
                {"EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{FM}"},
                {
                    "EndpointName": FM,
                    "EndpointConfigName": DEPLOYED["fm"],
                    "RetainAllVariantProperties": True,
                },
            )
            outcome = endpoints.rollback(ENDPOINTS, RUN_CONFIGS, record)
            stub.assert_no_pending_responses()
        fm_target = f"endpoint/{FM}/variant/AllTraffic"
        assert registered_at_update == [[] if deregistered else [fm_target]]
        assert _targets() == ([] if deregistered else [fm_target])
    assert outcome["blazingtext"] == "unchanged"
    assert outcome["fm"].startswith(f"rolled back to {DEPLOYED['fm']}")
    assert ("autoscaling deregistered" in outcome["fm"]) is deregistered


def test_an_autoscaled_endpoint_is_deregistered_before_it_is_deleted(sagemaker: Any) -> None:
    # SageMaker deregisters the variant itself only with the caller's permission
    # (endpoint-delete-with-scaling.html); the rollback does it first and leaves no target behind.
    deploy(sagemaker, FM, RUN_CONFIGS["fm"])
    deploy(sagemaker, BT, RUN_CONFIGS["blazingtext"])
    set_status(BT, "Failed", "The primary container did not pass the ping health check.")
    autoscale(FM)
    autoscale(BT)
    outcome = endpoints.rollback_handler({"run_configs": RUN_CONFIGS}, None)
    assert outcome == {
        "blazingtext": "deleted: it went Failed (The primary container did not pass the ping health check.)",
        "fm": "deleted: this run created it and no run was deployed before",
    }
    assert sagemaker.list_endpoints()["Endpoints"] == []
    assert _targets() == []
