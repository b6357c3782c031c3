"""Phase 5, record and notify: write the deployed run's record, which the shims read to serve it
("Describe deployed run", "Record deployed run"), and say so ("Notify deployed")."""

from __future__ import annotations

import typing
from typing import Any

from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from contract import layout
from contract.algorithms import MODELS
from contract.documents import RunMetrics, run_record
from stacks.pipeline import asl, paths
from stacks.pipeline.shared import (
    Fallible,
    SharedResources,
    publish,
)


def _in_run(run_uri: str, path: str) -> str:
    """run_record's join at run time: States.Format('{}' + path, <the run's URI>)."""
    return sfn.JsonPath.format("{}" + path, run_uri)


def deployed_run_record(shared: SharedResources) -> dict[str, Any]:
    """The Parameters of "Describe deployed run": the contract's RunRecord, each value read from the
    execution (the run plan, the gate's decision) when the state runs."""
    metrics = {name: sfn.JsonPath.number_at(paths.gate(name)) for name in typing.get_type_hints(RunMetrics)}
    record = run_record(
        run_id=sfn.JsonPath.string_at(paths.run("run_id")),
        deployed_at=sfn.JsonPath.string_at("$$.State.EnteredTime"),
        run_uri=sfn.JsonPath.string_at(paths.run("run_uri")),
        metrics=typing.cast(RunMetrics, metrics),
        endpoint_configs={
            model: sfn.JsonPath.string_at(paths.run("names", f"{model}_config")) for model in MODELS
        },
        endpoints=shared.endpoint_names,
        recommendations=True,  # "Batch recommendations" wrote them before the deployment
        join=_in_run,
    )
    return dict(record)


class RecordRun(sfn.StateMachineFragment):
    """Describe deployed run -> Record deployed run -> Notify deployed -> Deployed. A lost notification does
    not undo a deployment: it ends in Deployed too."""

    def __init__(self, scope: Construct, construct_id: str, *, shared: SharedResources) -> None:
        super().__init__(scope, construct_id)
        self._shared = shared
        self._describe = sfn.Pass(
            self, "Describe deployed run", parameters=deployed_run_record(shared), result_path=paths.RECORD
        )
        write = asl.task(
            self,
            "Record deployed run",
            asl.sdk("s3", "putObject"),
            {
                "Bucket": shared.storage.bucket.bucket_name,
                "Key": layout.RUN_RECORD_KEY,
                "Body.$": f"States.JsonToString({paths.RECORD})",
                "ContentType": "application/json",
            },
        )
        notify = asl.notify(
            self,
            "Notify deployed",
            topic=shared.topic,
            subject="loftrec: new models deployed",
            text="Run {} is serving: FM test RMSE {} (global mean {}, bias model {}).",
            values=[
                paths.run("run_id"),
                paths.gate("fm_test_rmse"),
                paths.gate("baseline_global_mean_rmse"),
                paths.gate("baseline_bias_rmse"),
            ],
        )
        done = sfn.Succeed(self, "Deployed")
        # The models serve and the record is written: a lost notification does not undo that.
        notify.add_catch(done, errors=["States.ALL"], result_path="$.notify_error")
        self._describe.next(write).next(notify).next(done)
        self.fallible: list[Fallible] = [write]

    @property
    def start_state(self) -> sfn.State:
        return self._describe

    @property
    def end_states(self) -> list[sfn.INextable]:
        return []

    def grant(self, role: iam.IRole) -> None:
        """What the state machine's role needs for this phase's states."""
        storage = self._shared.storage
        storage.grant_put_objects(role, layout.RUN_RECORD_KEY, "The deployed-run record.")
        storage.grant_key(role)
        publish(role, self._shared.topic)
