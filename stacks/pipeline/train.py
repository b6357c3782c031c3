"""Phase 2, train models: FM and BlazingText in parallel ("Train models"), BlazingText followed by the export
of its known-title vector table for the shims ("Export title table"); then FM's factors for top-N and the
cold start, which need both models' outputs ("Export FM factors")."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from contract import layout
from contract.algorithms import BLAZINGTEXT, FM, MODELS
from contract.documents import json_path
from stacks.fm_tuning import FM_TUNING_OBJECTIVE
from stacks.pipeline import asl, paths
from stacks.pipeline.images import algorithm_image
from stacks.pipeline.shared import (
    TAGS,
    Fallible,
    SharedResources,
    run_sagemaker_jobs,
    start_sagemaker_work,
)
from stacks.pipeline.steps import LambdaStep

OUTPUTS = {FM: layout.FM_OUTPUT, BLAZINGTEXT: layout.BLAZINGTEXT_OUTPUT}
"""Where each training job writes its model in the run."""
SPOT_MAX_WAIT_SECONDS = 3600
RESULT = "$.result"
"""Where a branch keeps its training job's TrainedModel while it runs."""
TUNED = "$.tuned"
"""Where FM's branch keeps its tuning job's best training job's name."""
TUNING_SEED = 42
"""The tuning job's RandomSeed: the same hyperparameter configurations for the same ranges."""


class ExportTitleTableStep(LambdaStep):
    """lambdas.serving.title_table: the known-title vectors of a run's BlazingText model, as the shims load
    them (the run's serving/ folder), and the held-out titles' vectors from its vectors.bin.

    bench/fasttext_bin.py on a model.tar.gz of BlazingText's default size (2,000,000 n-gram buckets x 100,
    734 MB): one streaming pass, 9 s and 114 MB peak RSS on a 2-core machine, the held-out titles adding
    nothing measurable to unpacking the archive; 1024 MB and 5 minutes leave room for a slower CPU share."""

    def __init__(self, shared: SharedResources) -> None:
        super().__init__(
            shared,
            "ExportTitles",
            handler="lambdas.serving.title_table.handler",
            description="Exports the known-title vector table of a run's BlazingText model",
            environment={},
            timeout=Duration.minutes(5),
            memory_size=1024,
        )
        storage = shared.storage
        reason = "Reads the run's model and index, writes its serving table; run ids are made at run time."
        storage.grant_key(self.role)
        storage.grant_read_objects(self.role, layout.any_run(), reason)
        storage.grant_put_objects(self.role, layout.any_run(layout.SERVING), reason)


class ExportFmFactorsStep(LambdaStep):
    """lambdas.pipeline.export_factors: FM's factors laid out for top-N (serving/fm/), the ranking's
    popularity weight (serving/ranking.json) and the cold start's shrinkage (serving/cold_start.json), from
    the run's model, index, shards and title table."""

    # bench/export_factors.py at the notebook's scale (120k customers x 58k products x 256 factors, 4M train
    # rows): the module's docstring and the bench size the function at 2048 MB and 600 s.
    MEMORY_MB = 2048
    TIMEOUT = Duration.seconds(600)
    READS = (layout.INDEX, layout.TRAIN, layout.VALIDATION, layout.TEST, layout.FM_OUTPUT)

    def __init__(self, shared: SharedResources) -> None:
        super().__init__(
            shared,
            "ExportFactors",
            handler="lambdas.pipeline.export_factors.handler",
            description="Exports FM's factors, the ranking weight and the cold start's shrinkage of a run",
            environment={"NEIGHBOURS": str(shared.config.serving_neighbours)},
            timeout=self.TIMEOUT,
            memory_size=self.MEMORY_MB,
            numpy=True,
        )
        storage = shared.storage
        reason = "Run ids are made at run time: these paths in every run."
        storage.grant_key(self.role)
        for path in self.READS:
            storage.grant_read_objects(self.role, layout.any_run(path), f"Reads the run's {path}. {reason}")
        for name in (*layout.TITLE_TABLE_FILES, *layout.HELD_OUT_TITLE_FILES):
            storage.grant_read_objects(
                self.role, layout.any_run(layout.SERVING + name), f"Reads the title tables. {reason}"
            )
        for path in (layout.SERVING_FACTORS, layout.RANKING, layout.COLD_START):
            storage.grant_put_objects(self.role, layout.any_run(path), f"Writes the run's {path}. {reason}")


def _trained_model() -> dict[str, str]:
    """The ResultSelector of a training state: what later phases read at $.training.<model>."""
    fields: paths.TrainedModel = {
        "job_name": "$.TrainingJobName",
        "model_data": "$.ModelArtifacts.S3ModelArtifacts",
    }
    return {f"{name}.$": str(path) for name, path in fields.items()}


def _channel(name: str, path: str, distribution: str, content_type: str) -> dict[str, Any]:
    """A training channel reading a prep/ folder of the run."""
    return {
        "ChannelName": name,
        "ContentType": content_type,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri.$": paths.in_run(path),
                "S3DataDistributionType": distribution,
            }
        },
    }


class TrainModels(sfn.StateMachineFragment):
    """One Parallel state, "Train models", whose branches answer each model's TrainedModel; it leaves them at
    $.training.fm and $.training.blazingtext."""

    def __init__(self, scope: Construct, construct_id: str, *, shared: SharedResources) -> None:
        super().__init__(scope, construct_id)
        self._shared = shared
        self.export_titles = ExportTitleTableStep(shared)
        self.export_factors = ExportFmFactorsStep(shared)
        self._parallel = sfn.Parallel(
            self,
            "Train models",
            result_selector={f"{model}.$": f"$[{index}]" for index, model in enumerate(MODELS)},
            result_path=paths.TRAINING,
        )
        branches = {FM: self._train_fm(), BLAZINGTEXT: self._train_blazingtext()}
        for model in MODELS:
            self._parallel.branch(branches[model])
        # The popularity weight it chose ($.export.value.ranking.popularity_weight) ranks the batch
        # recommendations.
        self._export = self.export_factors.state(
            self,
            "Export FM factors",
            {
                "model_artifact_uri.$": paths.trained(FM, "model_data"),
                "run_uri.$": paths.run("run_uri"),
            },
            result_path=paths.EXPORT,
        )
        self._parallel.next(self._export)
        self.fallible: list[Fallible] = [self._parallel, self._export]

    @property
    def start_state(self) -> sfn.State:
        return self._parallel

    @property
    def end_states(self) -> list[sfn.INextable]:
        return [self._export]

    def grant(self, role: iam.IRole) -> None:
        """What the state machine's role needs for this phase's states."""
        self.export_titles.grant(role)
        self.export_factors.grant(role)
        start_sagemaker_work(role, self._shared)
        run_sagemaker_jobs(
            role,
            "TrainingJob",
            kind="training-job",
            events="Training",
        )
        if self._shared.config.fm_tuning.ranges:
            run_sagemaker_jobs(
                role,
                "HyperParameterTuningJob",
                kind="hyper-parameter-tuning-job",
                events="Tuning",
            )

    def _training_job(self, model: str, parameters: dict[str, Any]) -> dict[str, Any]:
        shared = self._shared
        stopping: dict[str, Any] = {"MaxRuntimeInSeconds": shared.config.training_max_runtime_seconds}
        job: dict[str, Any] = {
            "TrainingJobName.$": paths.run("names", model),
            "AlgorithmSpecification": {
                "TrainingImage": algorithm_image(self, model),
                "TrainingInputMode": "File",
            },
            "RoleArn": shared.sagemaker_role.role_arn,
            "OutputDataConfig": {
                "S3OutputPath.$": paths.in_run(OUTPUTS[model]),
                "KmsKeyId": shared.storage.key.key_arn,
            },
            "StoppingCondition": stopping,
            "EnableNetworkIsolation": True,
            "Tags": TAGS,
            **parameters,
        }
        if shared.config.use_spot_training:
            job["EnableManagedSpotTraining"] = True
            stopping["MaxWaitTimeInSeconds"] = SPOT_MAX_WAIT_SECONDS
        return job

    def _fm_job(self) -> dict[str, Any]:
        """What FM's training job and a tuning job's training jobs share: channels, resources, encryption."""
        protobuf = "application/x-recordio-protobuf"
        return {
            "InputDataConfig": [
                _channel("train", layout.TRAIN, "ShardedByS3Key", protobuf),
                # FM reports test:rmse on its "test" channel: the validation shard, so that the metric (and
                # a tuning job's objective) is a validation figure and the test shard stays for the gate.
                _channel("test", layout.VALIDATION, "FullyReplicated", protobuf),
            ],
            # Decided by "Start run" for the run's instance type and count (a run may override them): the
            # volume key unless the type has local storage, and encrypted traffic between several hosts.
            "ResourceConfig.$": paths.run("fm", "resource_config"),
            "EnableInterContainerTrafficEncryption.$": paths.run("fm", "inter_container_encryption"),
        }

    def _train_fm(self) -> sfn.IChainable:
        """Train FM, or with the run's tuning on ("Tune FM?"), tune it and take its best job forward."""
        train = asl.task(
            self,
            "Train FM",
            asl.integration("sagemaker:createTrainingJob.sync"),
            self._training_job(
                FM,
                {
                    "HyperParameters.$": (
                        f"States.JsonMerge({paths.run('fm', 'hyperparameters')}, {paths.FM_FIXED}, false)"
                    ),
                    **self._fm_job(),
                },
            ),
            result_selector=_trained_model(),
            result_path=RESULT,
            output_path=RESULT,
        )
        if not self._shared.config.fm_tuning.ranges:
            return train
        return (
            sfn.Choice(self, "Tune FM?")
            .when(sfn.Condition.boolean_equals(paths.run("fm", "tuning", "enabled"), True), self._tune_fm())
            .otherwise(train)
        )

    def _tune_fm(self) -> sfn.IChainable:
        """A tuning job of FM with test:rmse on the validation shard as its objective; the best training job's
        model goes on exactly as Train FM's would: its name and model artifact, from DescribeTrainingJob."""
        tuning = self._shared.config.fm_tuning
        job = self._training_job(FM, self._fm_job())
        definition = {
            "StaticHyperParameters.$": (
                f"States.JsonMerge({paths.run('fm', 'tuning', 'static_hyperparameters')}, "
                f"{paths.FM_FIXED}, false)"
            ),
            **{key: value for key, value in job.items() if key not in ("TrainingJobName.$", "Tags")},
        }
        tune = asl.task(
            self,
            "Tune FM",
            asl.integration("sagemaker:createHyperParameterTuningJob.sync"),
            {
                "HyperParameterTuningJobName.$": paths.run("names", "fm_tuning"),
                "HyperParameterTuningJobConfig": {
                    "Strategy": "Bayesian",
                    "HyperParameterTuningJobObjective": {
                        "Type": "Minimize",
                        "MetricName": FM_TUNING_OBJECTIVE,
                    },
                    "ResourceLimits": {
                        "MaxNumberOfTrainingJobs": tuning.max_jobs,
                        "MaxParallelTrainingJobs": tuning.max_parallel_jobs,
                    },
                    "ParameterRanges": tuning.parameter_ranges(),
                    "TrainingJobEarlyStoppingType": "Off",
                    "RandomSeed": TUNING_SEED,
                },
                "TrainingJobDefinition": definition,
                "Tags": TAGS,
            },
            result_selector={"best.$": "$.BestTrainingJob.TrainingJobName"},
            result_path=TUNED,
        )
        best = asl.task(
            self,
            "Describe best FM job",
            asl.sdk("sagemaker", "describeTrainingJob"),
            {"TrainingJobName.$": f"{TUNED}.best"},
            result_selector=_trained_model(),
            result_path=RESULT,
            output_path=RESULT,
        )
        return tune.next(best)

    def _train_blazingtext(self) -> sfn.IChainable:
        train = asl.task(
            self,
            "Train BlazingText",
            asl.integration("sagemaker:createTrainingJob.sync"),
            self._training_job(
                BLAZINGTEXT,
                {
                    "HyperParameters.$": paths.run("blazingtext", "hyperparameters"),
                    "InputDataConfig": [_channel("train", layout.CORPUS, "FullyReplicated", "text/plain")],
                    "ResourceConfig.$": paths.run("blazingtext", "resource_config"),
                },
            ),
            result_selector=_trained_model(),
            result_path=RESULT,
        )
        export = self.export_titles.state(
            self,
            "Export title table",
            {
                "model_artifact_uri.$": json_path(paths.TrainedModel, "model_data", root=RESULT),
                "index_uri.$": paths.in_run(layout.INDEX),
                "output_uri.$": paths.in_run(layout.SERVING),
            },
            result_path=None,
        )
        ready = sfn.Pass(self, "BlazingText ready", input_path=RESULT)
        return train.next(export).next(ready)
