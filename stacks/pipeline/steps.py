"""A Lambda step: one of the pipeline's functions, what it may do, and the state that invokes it.

Each step in the phases subclasses `LambdaStep`: its constructor creates the function (stacks/functions.py's
shape) and grants the function what its handler needs, with the cdk-nag acknowledgements those grants
cause; `state()` makes a state that invokes it; `grant(role)` lets the state machine's role invoke it.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from stacks.functions import python_function
from stacks.nag import acknowledge, arn_finding
from stacks.pipeline import asl
from stacks.pipeline.shared import SharedResources


def pipeline_settings(shared: SharedResources) -> dict[str, str]:
    """The environment the pipeline's functions read their settings from (lambdas/pipeline/aws.py)."""
    config = shared.config
    return {
        "RUN_RECORD_URI": shared.run_record_uri,
        "GATE_MIN_IMPROVEMENT": str(config.gate_min_improvement),
        "GATE_MAX_REGRESSION": str(config.gate_max_regression),
    }


class LambdaStep:
    """A function named `<name>Function` in the pipeline's function scope, and how the pipeline calls it."""

    def __init__(
        self,
        shared: SharedResources,
        name: str,
        *,
        handler: str,
        description: str,
        environment: dict[str, str],
        timeout: Duration | None = None,
        memory_size: int = 256,
        numpy: bool = False,
        extra_wildcard_reason: str = "",
    ) -> None:
        self.shared = shared
        self.function = python_function(
            shared.functions,
            f"{name}Function",
            handler=handler,
            description=description,
            service="pipeline",
            environment=environment,
            timeout=timeout or Duration.minutes(1),
            memory_size=memory_size,
            numpy=numpy,
            extra_wildcard_reason=extra_wildcard_reason,
        )
        role = self.function.role
        assert role is not None  # python_function creates one
        self.role: iam.IRole = role

    def state(
        self,
        scope: Construct,
        name: str,
        payload: dict[str, Any],
        *,
        result_path: str | None,
        key: str = "value",
    ) -> sfn.CustomState:
        """A state invoking the function with `payload`; its answer lands at `result_path`.`key`."""
        return asl.invoke(scope, name, self.function, payload, result_path=result_path, key=key)

    def grant(self, role: iam.IRole) -> None:
        """Let the state machine's role invoke the function."""
        self.function.grant_invoke(role)
        acknowledge(
            role,
            arn_finding(self.function, ":*"),
            "CDK's invoke grant covers the function's versions and aliases.",
        )
