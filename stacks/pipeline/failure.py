"""Failure and rollback: where every state's uncaught error goes. Before serving may have changed, the run is
notified as failed ("Notify failure", "Run failed"); once endpoints may have changed, serving is first put
back as the deployed run had it ("Roll back serving")."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from contract import layout
from contract.algorithms import BLAZINGTEXT, FM, MODELS
from stacks.pipeline import asl, paths
from stacks.pipeline.shared import (
    Fallible,
    SharedResources,
    allow,
    allow_autoscaling_validation,
    endpoint_arns,
    publish,
)
from stacks.pipeline.steps import LambdaStep, pipeline_settings

FAILURE = "$.failure"
"""Which state failed, with its error and cause ({state, error, cause})."""
ENVIRONMENT_ENDPOINTS = {FM: "FM_ENDPOINT", BLAZINGTEXT: "BLAZINGTEXT_ENDPOINT"}


class RollbackStep(LambdaStep):
    """lambdas.pipeline.endpoints.rollback_handler: each endpoint back on the deployed run's configuration
    (or deleted, when no run was deployed before), its autoscaling deregistered first where an update
    changes the instance type and before a delete (endpoint-scaling-update.html,
    endpoint-delete-with-scaling.html)."""

    def __init__(self, shared: SharedResources) -> None:
        super().__init__(
            shared,
            "Rollback",
            handler="lambdas.pipeline.endpoints.rollback_handler",
            description="Puts endpoints back on the deployed run's configurations",
            environment={
                **pipeline_settings(shared),
                **{ENVIRONMENT_ENDPOINTS[model]: shared.endpoint_names[model] for model in MODELS},
            },
            extra_wildcard_reason=" Application Auto Scaling's DescribeScalableTargets and "
            "DeregisterScalableTarget neither (no resource ARN names an endpoint variant).",
        )
        shared.storage.grant_key(self.role)
        shared.storage.grant_read_objects(
            self.role, layout.RUN_RECORD_KEY, "Limited to the deployed-run record."
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "application-autoscaling:DescribeScalableTargets",
                    "application-autoscaling:DeregisterScalableTarget",
                ],
                resources=["*"],
            )
        )
        # DeregisterScalableTarget checks the caller's permissions on the endpoint and CloudWatch first.
        allow_autoscaling_validation(self.role)
        allow(
            self.role,
            [
                "sagemaker:DescribeEndpoint",
                "sagemaker:DescribeEndpointConfig",
                "sagemaker:UpdateEndpoint",
                "sagemaker:DeleteEndpoint",
            ],
            endpoint_arns(shared),
            reason="Endpoint configurations are named per run at run time; all start with loftrec-.",
        )


class FailureHandling(sfn.StateMachineFragment):
    """Notify failure -> Run failed, and Roll back serving before it. `notify_on(states)` and
    `roll_back_on(states)` route the states' uncaught errors here, each through a "Failed: <state>" Pass
    that records which state failed."""

    def __init__(self, scope: Construct, construct_id: str, *, shared: SharedResources) -> None:
        super().__init__(scope, construct_id)
        self._shared = shared
        self._notify = asl.notify(
            self,
            "Notify failure",
            topic=shared.topic,
            subject="loftrec: retraining run failed",
            text='Run {} failed in state "{}": {}. Cause: {}. Serving is left on, or put back on, '
            "the previously deployed run, if any.",
            values=["$$.Execution.Name", f"{FAILURE}.state", f"{FAILURE}.error", f"{FAILURE}.cause"],
        )
        self._notify.next(
            sfn.Fail(self, "Run failed", error="RunFailed", cause="See the notification and the failed state")
        )
        self.rollback = RollbackStep(shared)
        self._rollback = self.rollback.state(
            self,
            "Roll back serving",
            {"run_configs": {f"{model}.$": paths.run("names", f"{model}_config") for model in MODELS}},
            result_path="$.rollback",
        )
        asl.retry_while_endpoint_busy(self._rollback)
        self._rollback.add_catch(self._notify, errors=["States.ALL"], result_path="$.rollback_error")
        self._rollback.next(self._notify)

    @property
    def start_state(self) -> sfn.State:
        return self._notify

    @property
    def end_states(self) -> list[sfn.INextable]:
        return []

    def notify_on(self, states: Sequence[Fallible]) -> None:
        """An error of any of `states` fails the run with a notification."""
        for state in states:
            self._catch(state, self._notify)

    def roll_back_on(self, states: Sequence[Fallible]) -> None:
        """An error of any of `states` puts serving back, then fails the run with a notification."""
        for state in states:
            self._catch(state, self._rollback)

    def _catch(self, state: Fallible, handler: sfn.IChainable) -> None:
        name = state.state_id
        note = sfn.Pass(
            self,
            f"Failed: {name}",
            parameters={
                "state": name,
                "error": sfn.JsonPath.string_at("$.error.Error"),
                "cause": sfn.JsonPath.string_at("$.error.Cause"),
            },
            result_path=FAILURE,
        )
        note.next(handler)
        state.add_catch(note, errors=["States.ALL"], result_path="$.error")

    def grant(self, role: iam.IRole) -> None:
        """What the state machine's role needs for this phase's states."""
        self.rollback.grant(role)
        publish(role, self._shared.topic)
