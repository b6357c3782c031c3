"""The train-models phase alone: two branches in one Parallel state, and what it grants."""

from __future__ import annotations

from typing import Any

import pytest

from stacks.pipeline.train import TrainModels
from tests.stacks import asl
from tests.stacks.pipeline.alone import Alone, build


@pytest.fixture(scope="module")
def alone() -> Alone[TrainModels]:
    return build(lambda stack, shared: TrainModels(stack, "Train", shared=shared))


def _branches(alone: Alone[TrainModels]) -> list[list[str]]:
    return [list(branch["States"]) for branch in alone.state("Train models")["Branches"]]


def test_fm_and_blazingtext_train_side_by_side_then_fms_factors_are_exported(
    alone: Alone[TrainModels],
) -> None:
    assert list(alone.machine["States"]) == ["Train models", "Export FM factors"]
    assert alone.state("Train models")["Next"] == "Export FM factors"
    assert _branches(alone) == [
        ["Tune FM?", "Train FM", "Tune FM", "Describe best FM job"],
        ["Train BlazingText", "Export title table", "BlazingText ready"],
    ]
    parallel = alone.state("Train models")
    assert parallel["ResultSelector"] == {"fm.$": "$[0]", "blazingtext.$": "$[1]"}
    assert parallel["ResultPath"] == "$.training"
    for name in ("Train FM", "Train BlazingText"):
        assert alone.state(name)["ResultSelector"] == {
            "job_name.$": "$.TrainingJobName",
            "model_data.$": "$.ModelArtifacts.S3ModelArtifacts",
        }
    assert alone.state("BlazingText ready")["InputPath"] == "$.result"


def test_every_task_sends_what_its_service_accepts(alone: Alone[TrainModels]) -> None:
    tasks = asl.task_states(alone.machine)
    assert set(tasks) == {
        "Train FM",
        "Tune FM",
        "Describe best FM job",
        "Train BlazingText",
        "Export title table",
        "Export FM factors",
    }
    assert {name: asl.request_errors(s) for name, s in tasks.items() if asl.request_errors(s)} == {}
    assert {name: asl.literal_errors(s) for name, s in tasks.items() if asl.literal_errors(s)} == {}


def test_channels_and_outputs_are_the_runs_folders(alone: Alone[TrainModels]) -> None:
    def uris(parameters: dict[str, Any]) -> list[str]:
        return [c["DataSource"]["S3DataSource"]["S3Uri.$"] for c in parameters["InputDataConfig"]]

    fm, bt = alone.state("Train FM")["Parameters"], alone.state("Train BlazingText")["Parameters"]
    run = "$.run.run_uri"
    assert uris(fm) == [
        f"States.Format('{{}}prep/train/', {run})",
        f"States.Format('{{}}prep/validation/', {run})",
    ]
    assert uris(bt) == [f"States.Format('{{}}prep/corpus/', {run})"]
    assert fm["OutputDataConfig"]["S3OutputPath.$"] == f"States.Format('{{}}fm/', {run})"
    assert bt["OutputDataConfig"]["S3OutputPath.$"] == f"States.Format('{{}}blazingtext/', {run})"
    assert fm["HyperParameters.$"] == "States.JsonMerge($.run.fm.hyperparameters, $.fm_fixed, false)"
    assert alone.state("Export title table")["Parameters"]["Payload"] == {
        "model_artifact_uri.$": "$.result.model_data",
        "index_uri.$": f"States.Format('{{}}prep/index/', {run})",
        "output_uri.$": f"States.Format('{{}}serving/', {run})",
    }
    assert "EnableManagedSpotTraining" not in fm
    # A run may override the instance type and count: "Start run" decides the volume key and the traffic
    # encryption for the run's values (contract.instances).
    assert fm["ResourceConfig.$"] == "$.run.fm.resource_config"
    assert fm["EnableInterContainerTrafficEncryption.$"] == "$.run.fm.inter_container_encryption"
    assert bt["ResourceConfig.$"] == "$.run.blazingtext.resource_config"
    assert not {"ResourceConfig", "EnableInterContainerTrafficEncryption"} & (set(fm) | set(bt))


def test_spot_training_waits_at_most_an_hour_for_capacity() -> None:
    alone = build(lambda stack, shared: TrainModels(stack, "Train", shared=shared), use_spot_training=True)
    for name in ("Train FM", "Train BlazingText"):
        parameters = alone.state(name)["Parameters"]
        assert parameters["EnableManagedSpotTraining"] is True
        assert parameters["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 3600}


def test_the_state_machine_may_run_training_and_tuning_jobs_only(alone: Alone[TrainModels]) -> None:
    grants = alone.grants()
    account = f"{asl.REGION}:{asl.ACCOUNT}"
    jobs = [f"arn:aws:sagemaker:{account}:training-job/loftrec-*"]
    for action in ("CreateTrainingJob", "DescribeTrainingJob", "StopTrainingJob"):
        assert grants[f"sagemaker:{action}"] == jobs
    tuning = [f"arn:aws:sagemaker:{account}:hyper-parameter-tuning-job/loftrec-*"]
    for action in ("AddTags", "ListTags"):
        assert grants[f"sagemaker:{action}"] == sorted([*tuning, *jobs])
    assert (
        f"arn:aws:events:{account}:rule/StepFunctionsGetEventsForSageMakerTrainingJobsRule"
        in (grants["events:PutTargets"])
    )
    assert not [action for action in grants if action.startswith("s3:")]
    functions = [
        asl.resource_arn(alone.document, alone.logical_id("AWS::Lambda::Function", name))
        for name in ("ExportFactorsFunction", "ExportTitlesFunction")
    ]
    assert grants["lambda:InvokeFunction"] == sorted([*functions, *(f"{f}:*" for f in functions)])


def test_the_export_reads_runs_and_writes_only_their_serving_folders(alone: Alone[TrainModels]) -> None:
    grants = alone.grants("ExportTitlesFunctionServiceRole")
    bucket = asl.resource_arn(alone.document, alone.logical_id("AWS::S3::Bucket", "StorageData"))
    assert grants["s3:GetObject*"] == [bucket, f"{bucket}/runs/*"]
    assert grants["s3:PutObject"] == [f"{bucket}/runs/*/serving/*"]
    assert "kms:GenerateDataKey*" in grants
    assert alone.function("lambdas.serving.title_table.handler")["Timeout"] == 300


def test_fms_factors_are_exported_from_its_model_into_the_run(alone: Alone[TrainModels]) -> None:
    export = alone.state("Export FM factors")
    assert export["Parameters"]["Payload"] == {
        "model_artifact_uri.$": "$.training.fm.model_data",
        "run_uri.$": "$.run.run_uri",
    }
    assert (export["ResultSelector"], export["ResultPath"]) == ({"value.$": "$.Payload"}, "$.export")
    function = alone.function("lambdas.pipeline.export_factors.handler")
    # bench/export_factors.py at the notebook's scale; numpy from the layer the shims use.
    assert (function["MemorySize"], function["Timeout"]) == (2048, 600)
    assert len(function["Layers"]) == 2
    assert function["Environment"]["Variables"]["NEIGHBOURS"] == "10"


def test_the_factor_export_reads_the_runs_inputs_and_writes_only_its_serving_data(
    alone: Alone[TrainModels],
) -> None:
    grants = alone.grants("ExportFactorsFunctionServiceRole")
    bucket = asl.resource_arn(alone.document, alone.logical_id("AWS::S3::Bucket", "StorageData"))
    reads = {
        f"{bucket}/runs/*/{path}"
        for path in (
            "prep/index/*",
            "prep/train/*",
            "prep/validation/*",
            "prep/test/*",
            "fm/*",
            "serving/titles.txt",
            "serving/titles.f32",
            "serving/titles.json",
            "serving/held_out_titles.txt",
            "serving/held_out_titles.f32",
            "serving/held_out_titles.json",
        )
    }
    assert set(grants["s3:GetObject*"]) == {bucket, *reads}
    writes = ("serving/fm/*", "serving/ranking.json", "serving/cold_start.json")
    assert grants["s3:PutObject"] == sorted(f"{bucket}/runs/*/{path}" for path in writes)


def test_a_run_with_tuning_on_tunes_fm_on_the_validation_shard_and_takes_the_best_job_forward(
    alone: Alone[TrainModels],
) -> None:
    choice = alone.state("Tune FM?")
    assert choice["Choices"] == [
        {"Variable": "$.run.fm.tuning.enabled", "BooleanEquals": True, "Next": "Tune FM"}
    ]
    assert choice["Default"] == "Train FM"
    tune = alone.state("Tune FM")
    assert tune["Resource"] == "arn:aws:states:::sagemaker:createHyperParameterTuningJob.sync"
    parameters = tune["Parameters"]
    assert parameters["HyperParameterTuningJobName.$"] == "$.run.names.fm_tuning"
    config = parameters["HyperParameterTuningJobConfig"]
    # FM's regression objective (fm-tuning.html), computed on the "test" channel: the validation shard.
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Minimize", "MetricName": "test:rmse"}
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 8, "MaxParallelTrainingJobs": 1}
    assert config["RandomSeed"] == 42
    definition = parameters["TrainingJobDefinition"]
    assert definition["StaticHyperParameters.$"] == (
        "States.JsonMerge($.run.fm.tuning.static_hyperparameters, $.fm_fixed, false)"
    )
    train = alone.state("Train FM")["Parameters"]
    for key in (
        "InputDataConfig",
        "OutputDataConfig",
        "AlgorithmSpecification",
        "RoleArn",
        "StoppingCondition",
    ):
        assert definition[key] == train[key]
    assert definition["ResourceConfig.$"] == train["ResourceConfig.$"]
    assert (tune["ResultSelector"], tune["ResultPath"]) == (
        {"best.$": "$.BestTrainingJob.TrainingJobName"},
        "$.tuned",
    )
    best = alone.state("Describe best FM job")
    assert best["Parameters"] == {"TrainingJobName.$": "$.tuned.best"}
    # What Train FM leaves: the branch answers the same TrainedModel either way.
    for name in ("Describe best FM job", "Train FM"):
        state = alone.state(name)
        assert (state["ResultSelector"], state["OutputPath"]) == (
            {"job_name.$": "$.TrainingJobName", "model_data.$": "$.ModelArtifacts.S3ModelArtifacts"},
            "$.result",
        )
    assert asl.unknown_result_paths(tune) == [] and asl.unknown_result_paths(best) == []


def test_the_state_machine_may_run_loftrecs_tuning_jobs(alone: Alone[TrainModels]) -> None:
    grants = alone.grants()
    arn = f"arn:aws:sagemaker:{asl.REGION}:{asl.ACCOUNT}"
    for action in (
        "CreateHyperParameterTuningJob",
        "DescribeHyperParameterTuningJob",
        "StopHyperParameterTuningJob",
    ):
        assert grants[f"sagemaker:{action}"] == [f"{arn}:hyper-parameter-tuning-job/loftrec-*"]
    rules = f"arn:aws:events:{asl.REGION}:{asl.ACCOUNT}:rule/StepFunctionsGetEventsFor"
    assert grants["events:PutRule"] == [
        f"{rules}SageMakerTrainingJobsRule",
        f"{rules}SageMakerTuningJobsRule",
    ]


def test_without_ranges_there_is_no_tuning_state() -> None:
    alone = build(
        lambda stack, shared: TrainModels(stack, "Train", shared=shared),
        fm_tuning={"enabled": False, "max_jobs": 1, "max_parallel_jobs": 1, "ranges": {}},
    )
    assert _branches(alone)[0] == ["Train FM"]
    assert not [action for action in alone.grants() if "HyperParameterTuningJob" in action]
