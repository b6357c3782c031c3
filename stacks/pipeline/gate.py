"""Phase 3, the quality gate: FM's test RMSE against the baselines and the deployed model ("Quality gate"),
then either the deployment or the notified rejection ("Deploy?")."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from contract import layout
from contract.algorithms import FM
from stacks.pipeline import asl, paths
from stacks.pipeline.shared import (
    Fallible,
    SharedResources,
    allow,
    publish,
    run_resources,
)
from stacks.pipeline.steps import LambdaStep, pipeline_settings


class QualityGateStep(LambdaStep):
    """lambdas.pipeline.gate: reads FM's final metric and the deployed run's record, writes gate.json into the
    run and answers the GateDecision."""

    def __init__(self, shared: SharedResources) -> None:
        super().__init__(
            shared,
            "Gate",
            handler="lambdas.pipeline.gate.handler",
            description="Quality gate: FM against the baselines and the deployed model",
            environment=pipeline_settings(shared),
            numpy=True,  # the paired bootstrap of the RMSE differences
        )
        storage = shared.storage
        storage.grant_key(self.role)
        storage.grant_read_objects(self.role, layout.RUN_RECORD_KEY, "Limited to the deployed-run record.")
        storage.grant_put_objects(
            self.role,
            layout.any_run(layout.GATE),
            "Writes gate.json into the run being gated; run ids are made at run time.",
        )
        allow(
            self.role,
            ["sagemaker:DescribeTrainingJob"],
            [run_resources("training-job")],
            reason="Training jobs are named per run at run time; all of loftrec's start with loftrec-.",
        )


class QualityGate(sfn.StateMachineFragment):
    """Quality gate -> Deploy? -> `approved` (the deployment), or Notify rejection -> Rejected by quality
    gate. Leaves $.gate.value (GateDecision)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, shared: SharedResources, approved: sfn.IChainable
    ) -> None:
        super().__init__(scope, construct_id)
        self._shared = shared
        self.check = QualityGateStep(shared)
        self._gate = self.check.state(
            self,
            "Quality gate",
            {
                "training_job_name.$": paths.trained(FM, "job_name"),
                "baselines.$": paths.manifest("baselines"),
                "run_uri.$": paths.run("run_uri"),
            },
            result_path=paths.GATE,
        )
        notify_rejection = asl.notify(
            self,
            "Notify rejection",
            topic=shared.topic,
            subject="loftrec: new model rejected, serving unchanged",
            text="Run {} was rejected by the quality gate; serving is unchanged. Reasons: {}.",
            values=["$$.Execution.Name", paths.gate("reasons")],
        )
        rejected = sfn.Fail(
            self,
            "Rejected by quality gate",
            error="QualityGateRejected",
            cause="FM did not beat the bar; serving unchanged",
        )
        notify_rejection.next(rejected)
        self._approved = approved
        self._gate.next(
            sfn.Choice(self, "Deploy?")
            .when(sfn.Condition.boolean_equals(paths.gate("deploy"), True), approved)
            .otherwise(notify_rejection)
        )
        self.fallible: list[Fallible] = [self._gate, notify_rejection]

    @property
    def start_state(self) -> sfn.State:
        return self._gate

    @property
    def end_states(self) -> list[sfn.INextable]:
        return self._approved.end_states

    def grant(self, role: iam.IRole) -> None:
        """What the state machine's role needs for this phase's states."""
        self.check.grant(role)
        publish(role, self._shared.topic)
