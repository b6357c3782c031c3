"""Phase 1, prepare data: validate the run's input and name its resources ("Start run"), run the prep job
("Prepare data"), read its manifest ("Read manifest") and set what FM's hyperparameters take from it
("Set FM feature_dim")."""

from __future__ import annotations

import json

from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from contract import layout
from stacks.fm_tuning import TRAINING_INSTANCE_QUOTA
from stacks.pipeline import asl, paths
from stacks.pipeline.shared import (
    FM_VOLUME_SIZE_GB,
    Fallible,
    SharedResources,
    prep_image_job,
    processing_input,
    run_sagemaker_jobs,
    start_sagemaker_work,
    state_array,
)
from stacks.pipeline.steps import LambdaStep

RAW_DATA_PLACEHOLDER = "s3://configure-raw-data-uri/"
"""The prep job's input when raw_data_uri is not configured: the app synthesizes but cannot retrain."""


class StartRunStep(LambdaStep):
    """lambdas.pipeline.start_run: the run plan from the execution's input and the configured defaults."""

    def __init__(self, shared: SharedResources) -> None:
        config = shared.config
        defaults = {
            "fm_instance_type": config.fm_instance_type,
            "fm_instance_count": config.fm_instance_count,
            "fm_hyperparameters": dict(config.fm_hyperparameters),
            "blazingtext_instance_type": config.blazingtext_instance_type,
            "blazingtext_instance_count": config.blazingtext_instance_count,
            "blazingtext_hyperparameters": dict(config.blazingtext_hyperparameters),
            "fm_volume_size_gb": FM_VOLUME_SIZE_GB,
            "blazingtext_volume_size_gb": config.blazingtext_volume_size_gb,
            "fm_tuning": {
                "enabled": config.fm_tuning.enabled,
                "tuned": sorted(config.fm_tuning.tuned),
                "max_parallel_jobs": config.fm_tuning.max_parallel_jobs,
                "instance_quota": TRAINING_INSTANCE_QUOTA,
            },
        }
        super().__init__(
            shared,
            "StartRun",
            handler="lambdas.pipeline.start_run.handler",
            description="Validates a run's input and names its resources",
            environment={
                "RUN_DEFAULTS": json.dumps(defaults, sort_keys=True),
                "DATA_BUCKET": shared.storage.bucket.bucket_name,
                # Named in the training jobs' ResourceConfig when their instance types take a volume key.
                "VOLUME_KMS_KEY": shared.storage.key.key_arn,
            },
        )


class PrepareData(sfn.StateMachineFragment):
    """Start run -> Prepare data -> Read manifest -> Set FM feature_dim. Leaves $.run, $.prep, $.manifest
    and $.fm_fixed; `fallible` are the states whose errors the pipeline routes to its failure handling."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        shared: SharedResources,
        image: ecr_assets.DockerImageAsset,
    ) -> None:
        super().__init__(scope, construct_id)
        self._shared = shared
        config = shared.config
        self.start_run = StartRunStep(shared)
        start = self.start_run.state(
            self,
            "Start run",
            {
                "input.$": "$",
                "execution_name.$": "$$.Execution.Name",
                "start_time.$": "$$.Execution.StartTime",
            },
            # The plan replaces the execution's input (its overrides are in the plan): $.run.
            result_path="$",
            key=paths.RUN.removeprefix("$."),
        )

        arguments = [
            "--input",
            layout.CONTAINER_INPUT,
            "--output",
            layout.CONTAINER_OUTPUT,
            "--min-customer-reviews",
            str(config.min_customer_reviews),
            "--min-product-reviews",
            str(config.min_product_reviews),
            "--max-bad-row-fraction",
            str(config.max_bad_row_fraction),
            "--failure-message",
            layout.CONTAINER_FAILURE_MESSAGE,
        ]
        fm_instance_count = f"States.Format('{{}}', {paths.run('fm', 'instance_count')})"
        prepare = asl.task(
            self,
            "Prepare data",
            asl.integration("sagemaker:createProcessingJob.sync"),
            prep_image_job(
                shared,
                image_uri=image.image_uri,
                name=paths.run("names", "prep"),
                arguments=state_array(arguments, ("--fm-instance-count", fm_instance_count)),
                inputs=[
                    processing_input(
                        "reviews",
                        layout.CONTAINER_INPUT,
                        {"S3Uri": config.raw_data_uri or RAW_DATA_PLACEHOLDER},
                    )
                ],
                output=("prep", layout.PREP, layout.CONTAINER_OUTPUT),
            ),
            result_selector={"job_arn.$": "$.ProcessingJobArn"},
            result_path=paths.PREP,
        )
        read_manifest = asl.task(
            self,
            "Read manifest",
            asl.sdk("s3", "getObject"),
            {
                "Bucket": shared.storage.bucket.bucket_name,
                "Key.$": paths.in_run(layout.MANIFEST, base="run_prefix"),
            },
            result_selector={"content.$": "States.StringToJson($.Body)"},
            result_path=paths.MANIFEST,
        )
        # SageMaker hyperparameters are strings; the manifest's feature_dim is a number.
        self._fm_fixed = sfn.CustomState(
            self,
            "Set FM feature_dim",
            state_json={
                "Type": "Pass",
                "Parameters": {"feature_dim.$": f"States.Format('{{}}', {paths.manifest('feature_dim')})"},
                "ResultPath": paths.FM_FIXED,
            },
        )
        self._start = start
        start.next(prepare).next(read_manifest).next(self._fm_fixed)
        self.fallible: list[Fallible] = [start, prepare, read_manifest]

    @property
    def start_state(self) -> sfn.State:
        return self._start

    @property
    def end_states(self) -> list[sfn.INextable]:
        return [self._fm_fixed]

    def grant(self, role: iam.IRole) -> None:
        """What the state machine's role needs for this phase's states."""
        shared = self._shared
        self.start_run.grant(role)
        start_sagemaker_work(role, shared)
        run_sagemaker_jobs(
            role,
            "ProcessingJob",
            kind="processing-job",
            events="Processing",
        )
        shared.storage.grant_read_objects(
            role, layout.any_run(layout.MANIFEST), "The run's manifest: one per run id."
        )
        shared.storage.key.grant_decrypt(role)
