"""Endpoint decisions the state machine cannot make with a Choice state.

- `plan_handler`: before deploying a model, is there an endpoint to update, and does the update change the
  instance type of an autoscaled variant (which SageMaker refuses: deregister the scalable target first)?
- `rollback_handler`: after a failed deployment, put every endpoint this run touched back on the
  configuration the deployed-run record names (or delete it, when this run created it), so that serving
  never mixes a new model with an old index.

Both follow SageMaker's rule for autoscaled variants: "If the update would change the instance type for any
model that is a target for auto scaling, the update fails ... deregister the variant as a scalable target by
calling the DeregisterScalableTarget Application Auto Scaling API action"
(https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-scaling-update.html). Deregistering also deletes
the target's scaling policies (API_DeregisterScalableTarget). Before a delete the rollback deregisters too,
rather than leave it to SageMaker, which does so only with the caller's permission
(https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-delete-with-scaling.html).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from contract.algorithms import SCALABLE_DIMENSION, scalable_resource_id
from contract.documents import RunRecord
from lambdas.kit import settings as kit_settings
from lambdas.kit import storage
from lambdas.kit.clients import client
from lambdas.kit.errors import EndpointBusyError, EndpointFailedError
from lambdas.kit.invocation import lambda_handler
from lambdas.kit.logs import LOGGER
from lambdas.kit.settings import non_empty, storage_uri, variable


@dataclass(frozen=True)
class RollbackSettings:
    """The rollback function's environment: the record and the two endpoints it puts back."""

    run_record_uri: str = variable("RUN_RECORD_URI", storage_uri("the deployed-run record"))
    fm_endpoint: str = variable("FM_ENDPOINT", non_empty("the FM endpoint's name"))
    blazingtext_endpoint: str = variable("BLAZINGTEXT_ENDPOINT", non_empty("the BlazingText endpoint's name"))


@functools.cache
def rollback_settings() -> RollbackSettings:
    """Read once per container; ConfigError names a missing or malformed variable."""
    return kit_settings.load(RollbackSettings)


def describe_endpoint(sagemaker: Any, name: str) -> dict[str, Any] | None:
    try:
        return dict(sagemaker.describe_endpoint(EndpointName=name))
    except sagemaker.exceptions.ClientError as error:
        if error.response["Error"]["Code"] == "ValidationException" and "Could not find" in str(error):
            return None
        raise


def autoscaled(endpoint_name: str) -> bool:
    """Whether the endpoint's variant is registered as a scalable target."""
    targets = client("application-autoscaling").describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=[scalable_resource_id(endpoint_name)]
    )["ScalableTargets"]
    return bool(targets)


def deregister(endpoint_name: str) -> None:
    """Remove the variant's scalable target (and with it its scaling policies)."""
    client("application-autoscaling").deregister_scalable_target(
        ServiceNamespace="sagemaker",
        ResourceId=scalable_resource_id(endpoint_name),
        ScalableDimension=SCALABLE_DIMENSION,
    )


def instance_type(sagemaker: Any, config_name: str) -> str | None:
    """The instance type of an endpoint configuration's variant."""
    config = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
    found: str | None = config["ProductionVariants"][0].get("InstanceType")
    return found


def plan(endpoint_name: str, new_instance_type: str) -> dict[str, Any]:
    sagemaker = client("sagemaker")
    endpoint = describe_endpoint(sagemaker, endpoint_name)
    if endpoint is None:
        return {"action": "create", "previous_config": None, "deregister_first": False}
    status = endpoint["EndpointStatus"]
    if status in (
        "Creating",
        "Updating",
        "SystemUpdating",
        "RollingBack",
        "Deleting",
        "UpdateRollbackFailed",
    ):
        raise EndpointBusyError(f"endpoint {endpoint_name} is {status}")
    if status == "Failed":
        raise EndpointFailedError(
            f"endpoint {endpoint_name} is Failed ({endpoint.get('FailureReason', 'no reason given')}); "
            "delete it (aws sagemaker delete-endpoint) and start the run again"
        )
    previous = endpoint["EndpointConfigName"]
    current_type = instance_type(sagemaker, previous)
    return {
        "action": "update",
        "previous_config": previous,
        "deregister_first": current_type != new_instance_type and autoscaled(endpoint_name),
    }


@lambda_handler
def plan_handler(event: dict[str, Any], _context: object) -> dict[str, Any]:
    """Event: {"endpoint_name", "instance_type"} -> {"action": "create"|"update", "previous_config",
    "deregister_first"}."""
    result = plan(event["endpoint_name"], event["instance_type"])
    LOGGER.info("endpoint plan", extra={"endpoint": event["endpoint_name"], **result})
    return result


def rollback(
    endpoints: dict[str, str], run_configs: dict[str, str], record: RunRecord | None
) -> dict[str, str]:
    """For each model: what was done to its endpoint ("unchanged", "rolled back to X", "deleted")."""
    sagemaker = client("sagemaker")
    deployed_configs = {} if record is None else record.get("endpoint_configs", {})
    outcome: dict[str, str] = {}
    for model, name in sorted(endpoints.items()):
        endpoint = describe_endpoint(sagemaker, name)
        if endpoint is None:
            outcome[model] = "absent"
            continue
        status = endpoint["EndpointStatus"]
        if status in ("Creating", "Updating", "SystemUpdating", "RollingBack"):
            raise EndpointBusyError(f"endpoint {name} is {status}; rolling back once it settles")
        current = endpoint["EndpointConfigName"]
        if current != run_configs[model]:
            outcome[model] = "unchanged"
        elif status == "Failed":
            # DeleteEndpoint is the only operation SageMaker allows on a failed endpoint; the next run
            # creates it again.
            _delete(sagemaker, name)
            outcome[model] = f"deleted: it went Failed ({endpoint.get('FailureReason', 'no reason given')})"
        elif model in deployed_configs:
            target = deployed_configs[model]
            # Back to another instance type: SageMaker refuses the update while the variant is autoscaled.
            unscaled = autoscaled(name) and (
                instance_type(sagemaker, current) != instance_type(sagemaker, target)
            )
            if unscaled:
                deregister(name)
            sagemaker.update_endpoint(
                EndpointName=name, EndpointConfigName=target, RetainAllVariantProperties=True
            )
            outcome[model] = f"rolled back to {target}" + (
                " (autoscaling deregistered for the instance type change; the next deployed run registers it)"
                if unscaled
                else ""
            )
        else:
            _delete(sagemaker, name)
            outcome[model] = "deleted: this run created it and no run was deployed before"
    return outcome


def _delete(sagemaker: Any, name: str) -> None:
    if autoscaled(name):
        deregister(name)
    sagemaker.delete_endpoint(EndpointName=name)


@lambda_handler
def rollback_handler(event: dict[str, Any], _context: object) -> dict[str, str]:
    """Event: {"run_configs": {"fm": config, "blazingtext": config}}; endpoint names from the environment
    (FM_ENDPOINT, BLAZINGTEXT_ENDPOINT)."""
    config = rollback_settings()
    endpoints = {"fm": config.fm_endpoint, "blazingtext": config.blazingtext_endpoint}
    record = storage.read_run_record(config.run_record_uri)
    outcome = rollback(endpoints, event["run_configs"], record)
    LOGGER.info("serving rolled back", extra=outcome)
    return outcome
