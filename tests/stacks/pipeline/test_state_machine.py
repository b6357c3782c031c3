"""The retraining state machine as synthesized: every AWS request it sends checked against botocore's
service models, its definition through cfn-lint's state-machine rules, and whole runs under moto's Step
Functions interpreter with our real Lambda handlers (tests/stacks/pipeline_cloud.py lists what stands in
for what moto lacks).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from typing import Any

import pytest
from aws_cdk import assertions
from cfnlint.api import ManualArgs, lint
from moto.sagemaker.models import sagemaker_backends

from contract import layout
from contract.algorithms import ENDPOINT_NAMES, tuning_job_name
from jobs.prep.__main__ import build_parser
from jobs.recommend.__main__ import build_parser as recommend_parser
from tests.stacks import asl
from tests.stacks.pipeline_cloud import (
    ACCOUNT,
    FEATURE_DIM,
    REGION,
    Execution,
    PipelineCloud,
    Script,
    pipeline_cloud,
)

FM_ENDPOINT, BT_ENDPOINT = ENDPOINT_NAMES["fm"], ENDPOINT_NAMES["blazingtext"]


@pytest.fixture
def document(template: assertions.Template) -> dict[str, Any]:
    """A fresh copy of the synthesized template (tests/stacks/conftest.py synthesizes it once)."""
    copy: dict[str, Any] = json.loads(json.dumps(template.to_json()))
    return copy


@pytest.fixture
def machine(document: dict[str, Any]) -> dict[str, Any]:
    return asl.definition(document)


# ---------------------------------------------------------------------------------------------------------
# Requests against botocore's service models

EXPECTED_OPERATIONS = {
    ("sagemaker", "CreateProcessingJob", "sync"),
    ("sagemaker", "CreateTrainingJob", "sync"),
    ("sagemaker", "CreateTransformJob", "sync"),
    ("sagemaker", "CreateHyperParameterTuningJob", "sync"),
    ("sagemaker", "DescribeTrainingJob", ""),
    ("sagemaker", "CreateModel", ""),
    ("sagemaker", "CreateEndpointConfig", ""),
    ("sagemaker", "CreateEndpoint", ""),
    ("sagemaker", "UpdateEndpoint", ""),
    ("sagemaker", "DescribeEndpoint", ""),
    ("s3", "GetObject", ""),
    ("s3", "PutObject", ""),
    ("application-autoscaling", "RegisterScalableTarget", ""),
    ("application-autoscaling", "DeregisterScalableTarget", ""),
    ("application-autoscaling", "PutScalingPolicy", ""),
    ("sns", "Publish", ""),
    ("lambda", "Invoke", ""),
}


def test_task_resources_map_to_botocore_operations() -> None:
    assert asl.task_operation("arn:aws:states:::sagemaker:createTrainingJob.sync") == asl.Operation(
        "sagemaker", "CreateTrainingJob", "optimized", "sync"
    )
    assert asl.task_operation(
        "arn:aws:states:::aws-sdk:applicationautoscaling:registerScalableTarget"
    ) == asl.Operation("application-autoscaling", "RegisterScalableTarget", "aws-sdk", "")
    assert asl.task_operation("arn:aws-cn:states:::lambda:invoke") == asl.Operation(
        "lambda", "Invoke", "optimized", ""
    )
    with pytest.raises(ValueError, match="no operation CreateTrainingJobs"):
        asl.task_operation("arn:aws:states:::sagemaker:createTrainingJobs.sync")
    with pytest.raises(ValueError, match="no SDK service"):
        asl.task_operation("arn:aws:states:::aws-sdk:sagemakr:describeEndpoint")


def test_every_aws_task_sends_a_request_its_service_model_accepts(machine: dict[str, Any]) -> None:
    tasks = asl.task_states(machine)
    operations = {
        (op.service, op.name, op.pattern)
        for op in (asl.task_operation(s["Resource"]) for s in tasks.values())
    }
    assert operations == EXPECTED_OPERATIONS
    errors = {name: asl.request_errors(state) for name, state in tasks.items()}
    assert {name: error for name, error in errors.items() if error} == {}


def test_literal_values_meet_the_models_enums_lengths_patterns_and_ranges(machine: dict[str, Any]) -> None:
    errors = {name: asl.literal_errors(state) for name, state in asl.task_states(machine).items()}
    assert {name: error for name, error in errors.items() if error} == {}


def test_every_task_says_where_its_result_goes(machine: dict[str, Any]) -> None:
    # Without a ResultPath a task's result replaces the whole state: "null" (keep the input) must survive
    # synthesis as JSON null, not vanish.
    tasks = asl.task_states(machine)
    assert [name for name, state in tasks.items() if "ResultPath" not in state] == []
    discarding = {name for name, state in tasks.items() if state["ResultPath"] is None}
    assert {
        "Export title table",
        "Create FM model",
        "Update FM endpoint",
        "Record deployed run",
    } <= discarding


def test_result_selectors_read_fields_the_services_return(machine: dict[str, Any]) -> None:
    selected = {name: s for name, s in asl.task_states(machine).items() if "ResultSelector" in s}
    # .sync jobs return their Describe* answer; lambda:invoke its Payload; aws-sdk calls the API's output.
    assert {"Prepare data", "Train FM", "Read manifest", "Check FM endpoint", "Start run"} <= set(selected)
    assert {
        name: asl.unknown_result_paths(s) for name, s in selected.items() if asl.unknown_result_paths(s)
    } == {}
    broken = dict(selected["Train FM"], ResultSelector={"model_data.$": "$.ModelArtifacts.S3ModelArtifact"})
    assert asl.unknown_result_paths(broken) == ["$.ModelArtifacts.S3ModelArtifact"]


def _rename(mapping: dict[str, Any], old: str, new: str) -> None:
    mapping[new] = mapping.pop(old)


BREAKAGES: dict[str, tuple[str, Callable[[dict[str, Any]], None], str]] = {
    # name: (state, edit of its Parameters, what the report names)
    "misspelled nested field": (
        "Prepare data",
        lambda p: _rename(p["ProcessingResources"]["ClusterConfig"], "InstanceType", "InstanceTyp"),
        "InstanceTyp",
    ),
    "number as a string": (
        "Prepare data",
        lambda p: p["ProcessingResources"]["ClusterConfig"].update(InstanceCount="1"),
        "InstanceCount",
    ),
    "misspelled dynamic field": (
        "Train FM",
        lambda p: _rename(p, "TrainingJobName.$", "TrainingJobNam.$"),
        "TrainingJobNam",
    ),
    "missing required field": (
        "Train BlazingText",
        lambda p: p["OutputDataConfig"].pop("S3OutputPath.$"),
        "S3OutputPath",
    ),
    "object where a list goes": (
        "Train FM",
        lambda p: p.update(InputDataConfig=p["InputDataConfig"][0]),
        "InputDataConfig",
    ),
    "aws-sdk number as a string": (
        "Register FM autoscaling",
        lambda p: p.update(MinCapacity="1"),
        "MinCapacity",
    ),
    "blue/green field misspelled": (
        "Update FM endpoint",
        lambda p: _rename(
            p["DeploymentConfig"]["BlueGreenUpdatePolicy"], "TerminationWaitInSeconds", "TerminationWait"
        ),
        "TerminationWait",
    ),
    "sns field misspelled": ("Notify failure", lambda p: _rename(p, "Message.$", "Mesage.$"), "Mesage"),
    "lambda without its function": ("Quality gate", lambda p: p.pop("FunctionName"), "FunctionName"),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_a_broken_copy_of_the_definition_is_rejected(machine: dict[str, Any], breakage: str) -> None:
    state_name, edit, named = BREAKAGES[breakage]

    def apply(name: str, state: dict[str, Any]) -> None:
        if name == state_name:
            edit(state["Parameters"])

    broken = asl.states_by_name(asl.edit_states(machine, apply))[state_name]
    report = asl.request_errors(broken)
    assert named in report, report
    assert asl.request_errors(asl.states_by_name(machine)[state_name]) == ""


@pytest.mark.parametrize(
    ("state_name", "path", "value", "named"),
    [
        (
            "Prepare data",
            ("ProcessingResources", "ClusterConfig", "InstanceType"),
            "ml.m5.xlarg",
            "InstanceType",
        ),
        ("Create FM endpoint", ("EndpointName",), "loftrec_fm", "EndpointName"),
        ("Put FM scaling policy", ("PolicyType",), "TargetTracking", "PolicyType"),
    ],
)
def test_a_literal_value_outside_the_model_is_rejected(
    machine: dict[str, Any], state_name: str, path: tuple[str, ...], value: str, named: str
) -> None:
    def apply(name: str, state: dict[str, Any]) -> None:
        if name == state_name:
            target = state["Parameters"]
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value

    errors = asl.literal_errors(asl.states_by_name(asl.edit_states(machine, apply))[state_name])
    assert len(errors) == 1 and named in errors[0] and repr(value) in errors[0], errors


# ---------------------------------------------------------------------------------------------------------
# cfn-lint (it skips a DefinitionString built with Fn::Join: lint the literal definition instead)


def _lint_state_machine(document: dict[str, Any], machine: dict[str, Any]) -> list[tuple[str, str]]:
    logical_id = asl.state_machine_id(document)
    document["Resources"][logical_id]["Properties"]["DefinitionString"] = json.dumps(machine)
    matches = lint(json.dumps(document), config=ManualArgs(regions=[REGION]))
    return [
        (match.rule.id, match.message)
        for match in matches
        if list(match.path)[:2] == ["Resources", logical_id]
    ]


def test_the_literal_definition_passes_cfn_lints_state_machine_rules(
    document: dict[str, Any], machine: dict[str, Any]
) -> None:
    assert _lint_state_machine(document, machine) == []


def test_cfn_lint_reads_the_literal_definition(document: dict[str, Any], machine: dict[str, Any]) -> None:
    def break_it(name: str, state: dict[str, Any]) -> None:
        if name == "Read manifest":
            _rename(state, "Next", "Nxt")

    found = _lint_state_machine(document, asl.edit_states(machine, break_it))
    assert {rule for rule, _ in found} == {"E3601"}
    assert any("'Nxt' was unexpected" in message for _, message in found), found


# ---------------------------------------------------------------------------------------------------------
# Runs under moto


def _branch(machine: dict[str, Any], parallel: str, index: int) -> list[str]:
    return list(machine["States"][parallel]["Branches"][index]["States"])


TOP = [
    "Start run",
    "Prepare data",
    "Read manifest",
    "Set FM feature_dim",
    "Train models",
    "Export FM factors",
    "Create FM model",
    "Predict test rows",
    "Quality gate",
    "Deploy?",
]
DEPLOYED = [
    *TOP,
    "Batch recommendations",
    "Deploy models",
    "Describe deployed run",
    "Record deployed run",
    "Notify deployed",
    "Deployed",
]


def _deploy_path(label: str, start: list[str], busy_checks: int = 0) -> list[str]:
    check = [f"Wait for {label} endpoint", f"Check {label} endpoint", f"{label} endpoint ready?"]
    again = [f"Count {label} waits", f"Keep {label} count"]
    # FM's model is the quality gate's: it predicted the test rows.
    return [
        *([] if label == "FM" else [f"Create {label} model"]),
        f"Create {label} endpoint config",
        f"Plan {label} endpoint",
        f"{label} endpoint exists?",
        *start,
        f"Start waiting for {label}",
        *(check + again) * busy_checks,
        *check,
    ]


def _created(label: str, busy_checks: int = 0) -> list[str]:
    ready = [f"Register {label} autoscaling", f"Put {label} scaling policy"]
    return _deploy_path(label, [f"Create {label} endpoint"], busy_checks) + ready


def _updated(label: str, deregister: bool = False, busy_checks: int = 0) -> list[str]:
    first = [f"Deregister {label} autoscaling"] if deregister else []
    ready = [f"Register {label} autoscaling", f"Put {label} scaling policy"]
    return _deploy_path(label, [*first, f"Update {label} endpoint"], busy_checks) + ready


def _run_id(execution: Execution) -> str:
    assert execution.output is not None
    return str(execution.output["run"]["run_id"])


def _alarm_names(document: dict[str, Any]) -> set[str]:
    return {
        resource["Properties"]["AlarmName"]
        for resource in document["Resources"].values()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
        and isinstance(resource["Properties"].get("AlarmName"), str)
    }


def _assert_no_runtime_error(execution: Execution) -> None:
    # moto lets a Catch on States.ALL take States.Runtime (a bad path, a bad intrinsic); Step Functions would
    # fail the execution. Any of them is a definition bug.
    assert "States.Runtime" not in execution.errors, execution.errors


def test_a_first_run_creates_both_endpoints_and_records_the_run(
    monkeypatch: pytest.MonkeyPatch, document: dict[str, Any], machine: dict[str, Any]
) -> None:
    script = Script(busy_checks=2)  # each endpoint is Creating for two checks
    with pipeline_cloud(monkeypatch, document, script, ENDPOINT_NAMES) as cloud:
        execution = cloud.run("weekly_2024-05")
        _assert_no_runtime_error(execution)
        assert execution.status == "SUCCEEDED"
        assert execution.path(machine["States"]) == DEPLOYED
        assert execution.path(_branch(machine, "Train models", 0)) == ["Tune FM?", "Train FM"]
        assert execution.path(_branch(machine, "Train models", 1)) == [
            "Train BlazingText",
            "Export title table",
            "BlazingText ready",
        ]
        assert execution.path(_branch(machine, "Deploy models", 0)) == _created("FM", busy_checks=2)
        assert execution.path(_branch(machine, "Deploy models", 1)) == _created("BlazingText", busy_checks=2)

        run_id = _run_id(execution)
        run_uri = f"s3://{cloud.bucket}/runs/{run_id}/"
        assert run_id.endswith("-weekly-2024-05-" + run_id[-6:])
        fm_config, bt_config = f"loftrec-{run_id}-fm-config", f"loftrec-{run_id}-bt-config"
        assert cloud.models() == [f"loftrec-{run_id}-bt", f"loftrec-{run_id}-fm"]
        assert cloud.endpoint_configs() == [bt_config, fm_config]
        assert cloud.endpoints() == {FM_ENDPOINT: fm_config, BT_ENDPOINT: bt_config}
        assert cloud.scalable_targets() == {
            f"endpoint/{FM_ENDPOINT}/variant/AllTraffic": (1, 4),
            f"endpoint/{BT_ENDPOINT}/variant/AllTraffic": (1, 4),
        }
        assert cloud.scaling_policies() == [
            f"{BT_ENDPOINT}-invocations-per-instance",
            f"{FM_ENDPOINT}-invocations-per-instance",
        ]

        # What the jobs were asked to do, with the run's real values.
        prep = cloud.sagemaker.describe_processing_job(ProcessingJobName=f"loftrec-{run_id}-prep")
        arguments = prep["AppSpecification"]["ContainerArguments"]
        assert arguments[-2:] == ["--fm-instance-count", "4"]
        # The container's own parser reads them: the paths are the ones Processing mounts.
        parsed = build_parser().parse_args(arguments)
        assert (str(parsed.input), str(parsed.output), str(parsed.failure_message)) == (
            layout.CONTAINER_INPUT,
            layout.CONTAINER_OUTPUT,
            layout.CONTAINER_FAILURE_MESSAGE,
        )
        (source,) = prep["ProcessingInputs"]
        assert source["S3Input"]["LocalPath"] == layout.CONTAINER_INPUT
        assert prep["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"] == f"{run_uri}prep"
        fm_job = cloud.sagemaker.describe_training_job(TrainingJobName=f"loftrec-{run_id}-fm")
        assert fm_job["HyperParameters"] == {
            "num_factors": "64",
            "epochs": "3",
            "mini_batch_size": "1000",
            "linear_lr": "0.01",
            "predictor_type": "regressor",
            "feature_dim": str(FEATURE_DIM),
        }
        assert fm_job["ResourceConfig"]["InstanceCount"] == 4
        bt_job = cloud.sagemaker.describe_training_job(TrainingJobName=f"loftrec-{run_id}-bt")
        # cdk.json's table as the SageMaker Python SDK sends it: str() of each value, booleans "True"/"False".
        assert bt_job["HyperParameters"] == {
            "mode": "skipgram",
            "epochs": "10",
            "min_count": "5",
            "sampling_threshold": "0.0001",
            "learning_rate": "0.05",
            "window_size": "5",
            "vector_dim": "100",
            "negative_samples": "5",
            "min_char": "5",
            "max_char": "10",
            "subwords": "True",
            "evaluation": "False",
        }
        assert [c["DataSource"]["S3DataSource"]["S3Uri"] for c in fm_job["InputDataConfig"]] == [
            f"{run_uri}prep/train/",
            f"{run_uri}prep/validation/",
        ]
        gate = _assert_gated_and_exported(cloud, run_id)
        record = cloud.object_json("serving/current.json")
        deployed_at = record.pop("deployed_at")
        assert datetime.datetime.fromisoformat(deployed_at.replace("Z", "+00:00")).tzinfo is not None
        assert record == {
            "schema_version": 1,
            "run_id": run_id,
            "endpoints": {"fm": FM_ENDPOINT, "blazingtext": BT_ENDPOINT},
            "endpoint_configs": {"fm": fm_config, "blazingtext": bt_config},
            "run_uri": run_uri,
            "index_uri": f"{run_uri}prep/index/",
            "title_table_uri": f"{run_uri}serving/",
            "manifest_uri": f"{run_uri}prep/manifest.json",
            "recommendations_uri": f"{run_uri}recommendations/",
            "metrics": {
                "fm_test_rmse": gate["fm_test_rmse"],
                "baseline_global_mean_rmse": gate["baseline_global_mean_rmse"],
                "baseline_bias_rmse": gate["baseline_bias_rmse"],
            },
        }
        ((subject, message),) = cloud.messages()
        assert subject == "loftrec: new models deployed"
        assert message.startswith(f"Run {run_id} is serving: FM test RMSE ")
        assert message.endswith(":execution:LoftrecRetraining:weekly_2024-05")
        assert cloud.script.update_requests == []


def _assert_gated_and_exported(cloud: PipelineCloud, run_id: str) -> dict[str, Any]:
    """The first run's transform job, serving data and gate decision; returns gate.json."""
    run_uri = f"s3://{cloud.bucket}/runs/{run_id}/"
    transform = cloud.sagemaker.describe_transform_job(TransformJobName=f"loftrec-{run_id}-fm-test")
    assert transform["ModelName"] == f"loftrec-{run_id}-fm"
    assert transform["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == f"{run_uri}prep/test/"
    assert transform["TransformOutput"]["S3OutputPath"] == f"{run_uri}predictions/test/"
    assert transform["TransformResources"]["InstanceType"] == "ml.m4.xlarge"  # the endpoints' type

    written = {key.removeprefix(f"runs/{run_id}/") for key in cloud.object_keys()}
    assert {
        "gate.json",
        "predictions/test/part-00000.rio.out",
        "serving/titles.txt",
        "serving/titles.f32",
        "serving/titles.json",
        "serving/fm/factors.json",
        "serving/ranking.json",
        "serving/cold_start.json",
        "recommendations/manifest.json",
    } <= written
    # The batch recommendations: the container's own parser reads the job's arguments; the weight is the
    # one the export chose on the validation rows.
    (arguments,) = cloud.script.recommend_arguments
    parsed = recommend_parser().parse_args(arguments)
    assert (str(parsed.factors), str(parsed.index), str(parsed.output), parsed.k) == (
        layout.RECOMMEND_CONTAINER_FACTORS,
        layout.RECOMMEND_CONTAINER_INDEX,
        layout.RECOMMEND_CONTAINER_OUTPUT,
        10,
    )
    ranking = cloud.object_json(f"runs/{run_id}/serving/ranking.json")
    assert parsed.popularity_weight == ranking["popularity_weight"]
    recommended = cloud.object_json(f"runs/{run_id}/recommendations/manifest.json")
    assert (recommended["counts"]["customers"], recommended["k"]) == (40, 10)
    assert recommended["popularity_weight"] == ranking["popularity_weight"]
    gate: dict[str, Any] = cloud.object_json(f"runs/{run_id}/gate.json")
    manifest = cloud.object_json(f"runs/{run_id}/prep/manifest.json")
    assert gate["deploy"] is True
    assert gate["test_rows"] == manifest["counts"]["test_rows"] == 40
    assert [(c["against"], c["rows"], c["passed"]) for c in gate["versus"]] == [
        ("global mean", 40, True),
        ("user + item bias", 40, True),
    ]
    assert gate["reasons"][-1] == "no model is deployed yet"
    # The run's known FM predicts within 0.5 of every rating; the baselines as prep measured them.
    assert gate["fm_test_rmse"] < 0.5
    for name in ("global_mean", "bias"):
        assert gate[f"baseline_{name}_rmse"] == pytest.approx(manifest["baselines"][name]["rmse"], rel=1e-5)
    return gate


def test_a_tuned_run_takes_the_best_training_jobs_model_forward(
    monkeypatch: pytest.MonkeyPatch, document: dict[str, Any], machine: dict[str, Any]
) -> None:
    with pipeline_cloud(monkeypatch, document, Script(), ENDPOINT_NAMES) as cloud:
        execution = cloud.run("tuned", {"fm_tuning": {"enabled": True}})
        _assert_no_runtime_error(execution)
        assert execution.status == "SUCCEEDED", execution.cause
        assert execution.path(_branch(machine, "Train models", 0)) == [
            "Tune FM?",
            "Tune FM",
            "Describe best FM job",
        ]
        run_id = _run_id(execution)
        (request,) = cloud.script.tuning_requests
        assert request["hyper_parameter_tuning_job_name"] == tuning_job_name(run_id)
        config = request["hyper_parameter_tuning_job_config"]
        assert config["HyperParameterTuningJobObjective"] == {"Type": "Minimize", "MetricName": "test:rmse"}
        assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 8, "MaxParallelTrainingJobs": 1}
        assert sorted(r["Name"] for kind in config["ParameterRanges"].values() for r in kind) == [
            "epochs",
            "factors_lr",
            "linear_lr",
        ]
        definition = request["training_job_definition"]
        # The tuned hyperparameters are the ranges', the others the run's, with what the pipeline sets.
        assert definition["StaticHyperParameters"] == {
            "num_factors": "64",
            "mini_batch_size": "1000",
            "predictor_type": "regressor",
            "feature_dim": str(FEATURE_DIM),
        }
        channels = [c["DataSource"]["S3DataSource"]["S3Uri"] for c in definition["InputDataConfig"]]
        run_uri = f"s3://{cloud.bucket}/runs/{run_id}/"
        assert channels == [f"{run_uri}prep/train/", f"{run_uri}prep/validation/"]
        # The best job's model is the one the gate predicts with and the endpoint serves.
        best = cloud.sagemaker.describe_training_job(
            TrainingJobName=f"{tuning_job_name(run_id)}-002-1a2b3c4d"
        )
        model = cloud.sagemaker.describe_model(ModelName=f"loftrec-{run_id}-fm")
        assert model["PrimaryContainer"]["ModelDataUrl"] == best["ModelArtifacts"]["S3ModelArtifacts"]
        assert cloud.object_json(f"runs/{run_id}/gate.json")["deploy"] is True
        assert [name for name in cloud.script.training_requests if name.endswith("-fm")] == []


def _first_run(cloud: PipelineCloud) -> str:
    first = cloud.run("first")
    assert first.status == "SUCCEEDED", first.cause
    return _run_id(first)


def test_a_second_run_updates_the_endpoints_blue_green(
    monkeypatch: pytest.MonkeyPatch, document: dict[str, Any], machine: dict[str, Any]
) -> None:
    with pipeline_cloud(monkeypatch, document, Script(), ENDPOINT_NAMES) as cloud:
        first = _first_run(cloud)
        # FM's endpoint runs on another instance type than the stack now asks for: autoscaling must go first.
        config = sagemaker_backends[ACCOUNT][REGION].endpoint_configs[f"loftrec-{first}-fm-config"]
        config.production_variants[0]["InstanceType"] = "ml.m5.large"
        cloud.script.busy_checks = 1  # each endpoint is Updating for one check

        execution = cloud.run("second")
        _assert_no_runtime_error(execution)
        assert execution.status == "SUCCEEDED"
        assert execution.path(machine["States"]) == DEPLOYED
        fm_path = _updated("FM", deregister=True, busy_checks=1)
        assert execution.path(_branch(machine, "Deploy models", 0)) == fm_path
        assert execution.path(_branch(machine, "Deploy models", 1)) == _updated("BlazingText", busy_checks=1)

        second = _run_id(execution)
        assert cloud.endpoints() == {
            FM_ENDPOINT: f"loftrec-{second}-fm-config",
            BT_ENDPOINT: f"loftrec-{second}-bt-config",
        }
        assert len(cloud.scalable_targets()) == 2  # FM's registered again after the update
        requests = {request["EndpointName"]: request for request in cloud.script.update_requests}
        assert sorted(requests) == [BT_ENDPOINT, FM_ENDPOINT]
        alarms = _alarm_names(document)
        for endpoint, model in ((FM_ENDPOINT, "fm"), (BT_ENDPOINT, "bt")):
            request = requests[endpoint]
            rollback_alarms = [
                a["AlarmName"] for a in request["DeploymentConfig"].pop("AutoRollbackConfiguration")["Alarms"]
            ]
            assert rollback_alarms and set(rollback_alarms) <= alarms
            assert all(name.startswith(f"{endpoint}-") for name in rollback_alarms)
            assert request == {
                "EndpointName": endpoint,
                "EndpointConfigName": f"loftrec-{second}-{model}-config",
                "RetainAllVariantProperties": True,
                "DeploymentConfig": {
                    "BlueGreenUpdatePolicy": {
                        "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 300},
                        "TerminationWaitInSeconds": 300,
                        "MaximumExecutionTimeoutInSeconds": 3600,
                    }
                },
            }
        record = cloud.object_json("serving/current.json")
        assert record["run_id"] == second
        # Compared with the deployed run on the test rows both indices know: here every row, and the same
        # model, so the same RMSE.
        gate = cloud.object_json(f"runs/{second}/gate.json")
        against = gate["versus"][-1]
        assert (against["against"], against["rows"], against["passed"]) == (f"deployed run {first}", 40, True)
        assert against["relative"] == 0.0
        assert gate["deployed_test_rmse"] == gate["fm_test_rmse"] == record["metrics"]["fm_test_rmse"]


def test_the_gate_rejects_a_model_that_predicts_nothing_and_serving_is_unchanged(
    monkeypatch: pytest.MonkeyPatch, document: dict[str, Any], machine: dict[str, Any]
) -> None:
    with pipeline_cloud(monkeypatch, document, Script(), ENDPOINT_NAMES) as cloud:
        first = _first_run(cloud)
        previous = cloud.object_json("serving/current.json")
        endpoints = cloud.endpoints()
        cloud.script.fm_quality = "noise"

        execution = cloud.run("noise")
        _assert_no_runtime_error(execution)
        assert execution.status == "FAILED"
        assert (execution.error, execution.cause) == (
            "QualityGateRejected",
            "FM did not beat the bar; serving unchanged",
        )
        assert execution.path(machine["States"]) == [*TOP, "Notify rejection", "Rejected by quality gate"]

        run_id = _run_ids(cloud) - {first}
        (rejected,) = run_id
        gate = cloud.object_json(f"runs/{rejected}/gate.json")
        assert gate["deploy"] is False
        assert [(c["against"], c["rows"], c["passed"]) for c in gate["versus"]] == [
            ("global mean", 40, False),
            ("user + item bias", 40, False),
            (f"deployed run {first}", 40, False),
        ]
        assert gate["fm_test_rmse"] > gate["baseline_bias_rmse"] > gate["deployed_test_rmse"]
        (subject, message) = cloud.messages()[-1]
        assert subject == "loftrec: new model rejected, serving unchanged"
        assert message.startswith("Run noise was rejected by the quality gate; serving is unchanged.")
        assert f"vs the deployed run {first}'s" in message
        # The candidate's model exists (it predicted the test rows); no endpoint config, no endpoint change.
        expected = [f"loftrec-{first}-bt", f"loftrec-{first}-fm", f"loftrec-{rejected}-fm"]
        assert cloud.models() == sorted(expected)
        assert cloud.endpoint_configs() == [f"loftrec-{first}-bt-config", f"loftrec-{first}-fm-config"]
        assert cloud.endpoints() == endpoints
        assert cloud.script.update_requests == []
        assert cloud.object_json("serving/current.json") == previous


def _run_ids(cloud: PipelineCloud) -> set[str]:
    return {key.split("/")[1] for key in cloud.object_keys() if key.startswith("runs/")}


def test_a_failed_batch_recommendations_job_fails_the_run_before_any_endpoint_changes(
    monkeypatch: pytest.MonkeyPatch, document: dict[str, Any], machine: dict[str, Any]
) -> None:
    with pipeline_cloud(monkeypatch, document, Script(recommend_failure=True), ENDPOINT_NAMES) as cloud:
        execution = cloud.run("no-recommendations")
        _assert_no_runtime_error(execution)
        assert execution.status == "FAILED"
        assert execution.path(machine["States"]) == [
            *TOP,
            "Batch recommendations",
            "Failed: Batch recommendations",
            "Notify failure",
            "Run failed",
        ]
        ((_subject, message),) = cloud.messages()
        assert 'failed in state "Batch recommendations": States.TaskFailed.' in message
        assert (cloud.endpoint_configs(), cloud.endpoints()) == ([], {})
        assert "serving/current.json" not in cloud.object_keys()


def test_a_training_failure_is_notified_with_the_failing_state_and_creates_nothing(
    monkeypatch: pytest.MonkeyPatch, document: dict[str, Any], machine: dict[str, Any]
) -> None:
    reason = "AlgorithmError: feature_dim does not match the data"
    with pipeline_cloud(monkeypatch, document, Script(fm_training_failure=reason), ENDPOINT_NAMES) as cloud:
        execution = cloud.run("broken-training")
        _assert_no_runtime_error(execution)
        assert execution.status == "FAILED"
        assert execution.error == "RunFailed"
        assert execution.path(machine["States"]) == [
            "Start run",
            "Prepare data",
            "Read manifest",
            "Set FM feature_dim",
            "Train models",
            "Failed: Train models",
            "Notify failure",
            "Run failed",
        ]
        ((subject, message),) = cloud.messages()
        assert subject == "loftrec: retraining run failed"
        assert message.startswith(
            'Run broken-training failed in state "Train models": States.TaskFailed. Cause: '
        )
        assert reason in message
        assert "Serving is left on, or put back on, the previously deployed run, if any." in message
        assert (cloud.models(), cloud.endpoint_configs(), cloud.endpoints()) == ([], [], {})
        assert not [
            key for key in cloud.object_keys() if key.endswith("gate.json") or key == "serving/current.json"
        ]


QUOTA = (
    "The account-level service limit 'ml.p3.2xlarge for training job usage' is 0 Instances, with current "
    "utilization of 0 Instances and a request delta of 1 Instances. Please use AWS Service Quotas to request "
    "an increase for this quota."
)


def test_a_quota_error_fails_the_run_at_once_naming_the_quota(
    monkeypatch: pytest.MonkeyPatch, document: dict[str, Any], machine: dict[str, Any]
) -> None:
    # New accounts often have no ml.p3 training quota: SageMaker refuses the job and says which quota.
    script = Script(blazingtext_resource_limit=QUOTA)
    with pipeline_cloud(monkeypatch, document, script, ENDPOINT_NAMES) as cloud:
        execution = cloud.run("no-p3-quota")
        _assert_no_runtime_error(execution)
        assert execution.status == "FAILED"
        assert execution.path(machine["States"])[-4:] == [
            "Train models",
            "Failed: Train models",
            "Notify failure",
            "Run failed",
        ]
        # Not retried: one request for each job (a retry would wait 10 s, then 20 s, 40 s and 80 s).
        bt, fm = sorted(cloud.script.training_requests)
        assert (bt.endswith("-bt"), fm.endswith("-fm"), bt.removesuffix("-bt")) == (
            True,
            True,
            fm.removesuffix("-fm"),
        )
        ((subject, message),) = cloud.messages()
        assert subject == "loftrec: retraining run failed"
        assert (
            'failed in state "Train models": SageMaker.ResourceLimitExceededException. Cause: ' + QUOTA
        ) in message
        assert (cloud.models(), cloud.endpoints()) == ([], {})


def test_no_state_retries_a_quota_error(machine: dict[str, Any]) -> None:
    retried = {
        name: error
        for name, state in asl.iter_states(machine)
        for retry in state.get("Retry", [])
        for error in retry["ErrorEquals"]
        if error in ("SageMaker.ResourceLimitExceededException", "States.ALL", "States.TaskFailed")
    }
    assert retried == {}


def test_a_failed_endpoint_is_rolled_back_and_the_run_fails(
    monkeypatch: pytest.MonkeyPatch, document: dict[str, Any], machine: dict[str, Any]
) -> None:
    script = Script(failing_endpoints={FM_ENDPOINT})
    with pipeline_cloud(monkeypatch, document, script, ENDPOINT_NAMES) as cloud:
        execution = cloud.run("endpoint-fails")
        _assert_no_runtime_error(execution)
        assert execution.status == "FAILED"
        assert execution.error == "RunFailed"
        assert execution.path(machine["States"]) == [
            *TOP,
            "Batch recommendations",
            "Deploy models",
            "Failed: Deploy models",
            "Roll back serving",
            "Notify failure",
            "Run failed",
        ]
        fm_path = execution.path(_branch(machine, "Deploy models", 0))
        assert fm_path == [*_deploy_path("FM", ["Create FM endpoint"]), "FM endpoint failed"]
        assert execution.path(_branch(machine, "Deploy models", 1)) == _created("BlazingText")
        # This run created both endpoints and no run was deployed before: the rollback deletes them.
        assert cloud.endpoints() == {}
        assert "serving/current.json" not in cloud.object_keys()
        ((subject, message),) = cloud.messages()
        assert subject == "loftrec: retraining run failed"
        assert (
            'failed in state "Deploy models": EndpointFailed. Cause: Endpoint loftrec-fm went Failed.'
            in message
        )


def test_an_update_sagemaker_rolled_back_puts_the_other_endpoint_back_too(
    monkeypatch: pytest.MonkeyPatch, document: dict[str, Any], machine: dict[str, Any]
) -> None:
    with pipeline_cloud(monkeypatch, document, Script(), ENDPOINT_NAMES) as cloud:
        first = _first_run(cloud)
        record = cloud.object_json("serving/current.json")
        cloud.script.rolled_back_updates = {FM_ENDPOINT}

        execution = cloud.run("guardrail-alarm")
        _assert_no_runtime_error(execution)
        assert execution.status == "FAILED"
        assert execution.path(machine["States"])[-4:] == [
            "Failed: Deploy models",
            "Roll back serving",
            "Notify failure",
            "Run failed",
        ]
        assert execution.path(_branch(machine, "Deploy models", 0))[-1] == "FM update rolled back"
        assert execution.path(_branch(machine, "Deploy models", 1)) == _updated("BlazingText")
        # Serving never mixes runs: BlazingText goes back to the deployed run's configuration too.
        assert cloud.endpoints() == {
            FM_ENDPOINT: f"loftrec-{first}-fm-config",
            BT_ENDPOINT: f"loftrec-{first}-bt-config",
        }
        rollback = cloud.script.update_requests[-1]
        assert rollback == {
            "EndpointName": BT_ENDPOINT,
            "EndpointConfigName": f"loftrec-{first}-bt-config",
            "RetainAllVariantProperties": True,
        }
        assert cloud.object_json("serving/current.json") == record
        assert "EndpointRolledBack" in cloud.messages()[-1][1]


def test_a_rollback_to_an_older_instance_type_deregisters_autoscaling_first(
    monkeypatch: pytest.MonkeyPatch, document: dict[str, Any], machine: dict[str, Any]
) -> None:
    with pipeline_cloud(monkeypatch, document, Script(), ENDPOINT_NAMES) as cloud:
        first = _first_run(cloud)
        # The deployed run's FM endpoint runs another instance type than the stack now asks for.
        config = sagemaker_backends[ACCOUNT][REGION].endpoint_configs[f"loftrec-{first}-fm-config"]
        config.production_variants[0]["InstanceType"] = "ml.m5.large"
        cloud.script.rolled_back_updates = {BT_ENDPOINT}

        execution = cloud.run("bt-rolls-back")
        _assert_no_runtime_error(execution)
        assert execution.status == "FAILED"
        # FM deployed on the new type (autoscaling deregistered, then registered again) before BlazingText's
        # update rolled back; the rollback puts FM back on the older type, deregistering it first, as
        # SageMaker refuses the update of an autoscaled variant to another instance type.
        assert execution.path(_branch(machine, "Deploy models", 0)) == _updated("FM", deregister=True)
        assert execution.path(_branch(machine, "Deploy models", 1))[-1] == "BlazingText update rolled back"
        assert execution.path(machine["States"])[-3:] == ["Roll back serving", "Notify failure", "Run failed"]
        assert cloud.endpoints() == {
            FM_ENDPOINT: f"loftrec-{first}-fm-config",
            BT_ENDPOINT: f"loftrec-{first}-bt-config",
        }
        assert cloud.script.update_requests[-1] == {
            "EndpointName": FM_ENDPOINT,
            "EndpointConfigName": f"loftrec-{first}-fm-config",
            "RetainAllVariantProperties": True,
        }
        assert set(cloud.scalable_targets()) == {f"endpoint/{BT_ENDPOINT}/variant/AllTraffic"}
        assert "EndpointRolledBack" in cloud.messages()[-1][1]


def test_an_invalid_input_fails_the_run_before_any_job(
    monkeypatch: pytest.MonkeyPatch, document: dict[str, Any], machine: dict[str, Any]
) -> None:
    with pipeline_cloud(monkeypatch, document, Script(), ENDPOINT_NAMES) as cloud:
        execution = cloud.run("typo", {"fm_instance_count": 0})
        _assert_no_runtime_error(execution)
        assert execution.path(machine["States"]) == [
            "Start run",
            "Failed: Start run",
            "Notify failure",
            "Run failed",
        ]
        ((_subject, message),) = cloud.messages()
        assert 'Run typo failed in state "Start run": InvalidRunInputError.' in message
        assert "fm_instance_count=0: expected an integer from 1 to 100" in message
        assert cloud.sagemaker.list_processing_jobs()["ProcessingJobSummaries"] == []
