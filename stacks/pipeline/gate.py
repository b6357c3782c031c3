"""Phase 3, the quality gate: the candidate FM as a SageMaker model ("Create FM model"), its predictions of
the test rows by a Batch Transform job ("Predict test rows"), the paired decision against the baselines and
the deployed run on those rows ("Quality gate"), then either the deployment or the notified rejection
("Deploy?")."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from contract import layout
from contract.algorithms import FM
from contract.instances import has_local_storage
from stacks.pipeline import asl, paths
from stacks.pipeline.deploy import allow_models, create_model
from stacks.pipeline.shared import (
    TAGS,
    Fallible,
    SharedResources,
    publish,
    run_sagemaker_jobs,
)
from stacks.pipeline.steps import LambdaStep, pipeline_settings

PROTOBUF = "application/x-recordio-protobuf"
JSON_LINES = "application/jsonlines"


def transform_request(shared: SharedResources) -> dict[str, Any]:
    """CreateTransformJob: the candidate FM scores every record of the test shard, on the endpoints' instance
    type. FM takes RecordIO-protobuf and answers JSON Lines, one {"score"} per record
    (https://docs.aws.amazon.com/sagemaker/latest/dg/fact-machines.html, fm-in-formats.html); SplitType
    RecordIO sends whole records in mini-batches and AssembleWith Line joins their answers line by line, in
    the input's order, into <output>/part-00000.rio.out (API_TransformOutput.html); mini-batches as large as
    the default MaxPayloadInMB allows (BatchStrategy MultiRecord), one request at a time per instance
    (MaxConcurrentTransforms 1, API_TransformJobDefinition.html)."""
    config, key = shared.config, shared.storage.key.key_arn
    resources: dict[str, Any] = {"InstanceType": config.endpoint_instance_type, "InstanceCount": 1}
    if not has_local_storage(config.endpoint_instance_type):
        # As for the jobs and the endpoint configs: local storage takes no key (contract.instances).
        resources["VolumeKmsKeyId"] = key
    return {
        "TransformJobName.$": paths.run("names", "fm_test_predictions"),
        "ModelName.$": paths.run("names", "fm_model"),
        "MaxConcurrentTransforms": 1,
        "BatchStrategy": "MultiRecord",
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri.$": paths.in_run(layout.TEST)}},
            "ContentType": PROTOBUF,
            "SplitType": "RecordIO",
        },
        "TransformOutput": {
            "S3OutputPath.$": paths.in_run(layout.TEST_PREDICTIONS),
            "Accept": JSON_LINES,
            "AssembleWith": "Line",
            "KmsKeyId": key,
        },
        "TransformResources": resources,
        "Tags": TAGS,
    }


class QualityGateStep(LambdaStep):
    """lambdas.pipeline.gate: reads the test rows, the candidate's, the baselines' and the deployed run's
    predictions of them, writes gate.json into the run and answers the GateDecision."""

    # The deployed run's factors at the notebook's scale (120k customers and 58k products x 256 float32
    # factors: about 180 MB) and the index beside the candidate's: 2048 MB, as the export.
    MEMORY_MB = 2048
    READS = (
        layout.INDEX,
        layout.TEST,
        layout.BASELINES,
        layout.TEST_PREDICTIONS,
        layout.RANKING,
        layout.SERVING_FACTORS,
    )

    def __init__(self, shared: SharedResources) -> None:
        super().__init__(
            shared,
            "Gate",
            handler="lambdas.pipeline.gate.handler",
            description="Quality gate: FM against the baselines and the deployed model on the same test rows",
            environment=pipeline_settings(shared),
            numpy=True,  # the paired bootstrap, the deployed run's FM scores
            memory_size=self.MEMORY_MB,
            timeout=Duration.minutes(5),
        )
        storage = shared.storage
        storage.grant_key(self.role)
        storage.grant_read_objects(self.role, layout.RUN_RECORD_KEY, "Limited to the deployed-run record.")
        for path in self.READS:
            # The candidate's run and the deployed run's (its index and serving/fm/).
            storage.grant_read_objects(
                self.role, layout.any_run(path), f"Reads {path} of runs named at run time."
            )
        storage.grant_put_objects(
            self.role,
            layout.any_run(layout.GATE),
            "Writes gate.json into the run being gated; run ids are made at run time.",
        )


class QualityGate(sfn.StateMachineFragment):
    """Create FM model -> Predict test rows -> Quality gate -> Deploy? -> `approved` (the deployment), or
    Notify rejection -> Rejected by quality gate. Leaves $.gate.value (GateDecision)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, shared: SharedResources, approved: sfn.IChainable
    ) -> None:
        super().__init__(scope, construct_id)
        self._shared = shared
        self.check = QualityGateStep(shared)
        self._model = create_model(self, shared, FM)
        predict = asl.task(
            self,
            "Predict test rows",
            asl.integration("sagemaker:createTransformJob.sync"),
            transform_request(shared),
        )
        gate = self.check.state(
            self,
            "Quality gate",
            {"run_uri.$": paths.run("run_uri"), "rating_range.$": paths.manifest("rating_range")},
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
        self._model.next(predict).next(gate).next(
            sfn.Choice(self, "Deploy?")
            .when(sfn.Condition.boolean_equals(paths.gate("deploy"), True), approved)
            .otherwise(notify_rejection)
        )
        self.fallible: list[Fallible] = [self._model, predict, gate, notify_rejection]

    @property
    def start_state(self) -> sfn.State:
        return self._model

    @property
    def end_states(self) -> list[sfn.INextable]:
        return self._approved.end_states

    def grant(self, role: iam.IRole) -> None:
        """What the state machine's role needs for this phase's states."""
        self.check.grant(role)
        allow_models(role, self._shared)
        run_sagemaker_jobs(
            role,
            "TransformJob",
            kind="transform-job",
            events="Transform",
        )
        publish(role, self._shared.topic)
