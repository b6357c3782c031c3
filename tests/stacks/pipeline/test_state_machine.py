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
from contract.algorithms import ENDPOINT_NAMES
from contract.documents import run_record
from jobs.prep.__main__ import build_parser
from tests.stacks import asl
from tests.stacks.pipeline_cloud import (
    ACCOUNT,
    BASELINES,
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
    "Quality gate",
    "Deploy?",
]
DEPLOYED = [
    *TOP,
    "Deploy models",
    "Describe deployed run",
    "Record deployed run",
    "Notify deployed",
    "Deployed",
]


def _deploy_path(label: str, start: list[str], busy_checks: int = 0) -> list[str]:
    check = [f"Wait for {label} endpoint", f"Check {label} endpoint", f"{label} endpoint ready?"]
    again = [f"Count {label} waits", f"Keep {label} count"]
    return [
        f"Create {label} model",
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
    script = Script(fm_test_rmse=1.02, busy_checks=2)  # each endpoint is Creating for two checks
    with pipeline_cloud(monkeypatch, document, script, ENDPOINT_NAMES) as cloud:
        execution = cloud.run("weekly_2024-05")
        _assert_no_runtime_error(execution)
        assert execution.status == "SUCCEEDED"
        assert execution.path(machine["States"]) == DEPLOYED
        assert execution.path(_branch(machine, "Train models", 0)) == ["Train FM"]
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
            f"{run_uri}prep/test/",
        ]

        assert {"gate.json", "serving/titles.txt", "serving/titles.f32", "serving/titles.json"} <= {
            key.removeprefix(f"runs/{run_id}/") for key in cloud.object_keys()
        }
        assert cloud.object_json(f"runs/{run_id}/gate.json")["deploy"] is True
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
            "metrics": {
                "fm_test_rmse": 1.02,
                "baseline_global_mean_rmse": BASELINES["global_mean"]["rmse"],
                "baseline_bias_rmse": BASELINES["bias"]["rmse"],
            },
        }
        ((subject, message),) = cloud.messages()
        assert subject == "loftrec: new models deployed"
        assert message.startswith(
            f"Run {run_id} is serving: FM test RMSE 1.02 (global mean 1.28, bias model 1.1)."
        )
        assert message.endswith(":execution:LoftrecRetraining:weekly_2024-05")
        assert cloud.script.update_requests == []


def _first_run(cloud: PipelineCloud) -> str:
    first = cloud.run("first")
    assert first.status == "SUCCEEDED", first.cause
    return _run_id(first)


def test_a_second_run_updates_the_endpoints_blue_green(
    monkeypatch: pytest.MonkeyPatch, document: dict[str, Any], machine: dict[str, Any]
) -> None:
    with pipeline_cloud(monkeypatch, document, Script(fm_test_rmse=1.0), ENDPOINT_NAMES) as cloud:
        first = _first_run(cloud)
        # FM's endpoint runs on another instance type than the stack now asks for: autoscaling must go first.
        config = sagemaker_backends[ACCOUNT][REGION].endpoint_configs[f"loftrec-{first}-fm-config"]
        config.production_variants[0]["InstanceType"] = "ml.m5.large"
        cloud.script.fm_test_rmse = 1.01  # within 2 % of the deployed 1.0
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
        assert record["metrics"]["fm_test_rmse"] == 1.01
        assert cloud.object_json(f"runs/{second}/gate.json")["deployed_test_rmse"] == 1.0


def test_the_gate_rejects_the_notebooks_model_and_serving_is_unchanged(
    monkeypatch: pytest.MonkeyPatch, document: dict[str, Any], machine: dict[str, Any]
) -> None:
    with pipeline_cloud(monkeypatch, document, Script(fm_test_rmse=50.3), ENDPOINT_NAMES) as cloud:
        previous = run_record(
            run_id="earlier",
            deployed_at="2026-11-22T03:00:00Z",
            run_uri=f"s3://{cloud.bucket}/runs/earlier/",
            metrics={"fm_test_rmse": 1.0, "baseline_global_mean_rmse": 1.28, "baseline_bias_rmse": 1.1},
            endpoint_configs={"fm": "loftrec-earlier-fm-config", "blazingtext": "loftrec-earlier-bt-config"},
        )
        cloud.s3.put_object(
            Bucket=cloud.bucket, Key="serving/current.json", Body=json.dumps(previous).encode()
        )

        execution = cloud.run("notebook-settings")
        _assert_no_runtime_error(execution)
        assert execution.status == "FAILED"
        assert (execution.error, execution.cause) == (
            "QualityGateRejected",
            "FM did not beat the bar; serving unchanged",
        )
        assert execution.path(machine["States"]) == [*TOP, "Notify rejection", "Rejected by quality gate"]

        run_id = _rejected_run_id(cloud)
        gate = cloud.object_json(f"runs/{run_id}/gate.json")
        assert gate["deploy"] is False
        assert gate["fm_test_rmse"] == 50.3
        ((subject, message),) = cloud.messages()
        assert subject == "loftrec: new model rejected, serving unchanged"
        assert message.startswith(
            "Run notebook-settings was rejected by the quality gate; serving is unchanged."
        )
        assert "FM test RMSE 50.3000 does not beat the global mean baseline 1.2800" in message
        assert (cloud.models(), cloud.endpoint_configs(), cloud.endpoints()) == ([], [], {})
        body = cloud.s3.get_object(Bucket=cloud.bucket, Key="serving/current.json")["Body"].read().decode()
        assert json.loads(body) == previous


def _rejected_run_id(cloud: PipelineCloud) -> str:
    (gate_key,) = [key for key in cloud.object_keys() if key.endswith("/gate.json")]
    return gate_key.split("/")[1]


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
    with pipeline_cloud(monkeypatch, document, Script(fm_test_rmse=1.0), ENDPOINT_NAMES) as cloud:
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
    with pipeline_cloud(monkeypatch, document, Script(fm_test_rmse=1.0), ENDPOINT_NAMES) as cloud:
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
