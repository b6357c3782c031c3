"""Task states to calls: integrations, JSONPaths and intrinsic functions on a sample input."""

from __future__ import annotations

import pytest

from tools.iam.states import Dynamic, StatesError, evaluate, parameters, task_call_shape


def test_integration_arns() -> None:
    assert task_call_shape("arn:aws:states:::sagemaker:createTrainingJob.sync") == (
        "sagemaker",
        "CreateTrainingJob",
        "optimized",
        "sync",
    )
    assert task_call_shape("arn:aws:states:::aws-sdk:applicationautoscaling:registerScalableTarget") == (
        "application-autoscaling",
        "RegisterScalableTarget",
        "sdk",
        "",
    )
    assert task_call_shape("arn:aws-cn:states:::lambda:invoke") == ("lambda", "Invoke", "optimized", "")
    with pytest.raises(StatesError, match="no SDK service"):
        task_call_shape("arn:aws:states:::aws-sdk:sagemakr:describeEndpoint")


def test_paths_and_intrinsics() -> None:
    state = {"run": {"run_uri": "s3://b/runs/r/", "names": {"fm": "loftrec-r-fm"}, "count": 4}}
    context = {"Execution": {"Name": "weekly"}}
    assert evaluate("$.run.names.fm", state, context) == "loftrec-r-fm"
    assert (
        evaluate("States.Format('{}prep/train/', $.run.run_uri)", state, context)
        == "s3://b/runs/r/prep/train/"
    )
    assert evaluate("States.Array('--n', States.Format('{}', $.run.count))", state, context) == ["--n", "4"]
    assert evaluate("States.Format('it\\'s {}', $$.Execution.Name)", state, context) == "it's weekly"
    assert isinstance(evaluate("$.missing.path", state, context), Dynamic)
    assert isinstance(evaluate("States.Hash($.run.run_uri, 'SHA-1')", state, context), Dynamic)
    assert parameters({"A.$": "$.run.count", "B": {"C.$": "$$.Execution.Name"}}, state, context) == {
        "A": 4,
        "B": {"C": "weekly"},
    }
    with pytest.raises(StatesError, match="takes 2 values, not 1"):
        evaluate("States.Format('{} {}', $.run.count)", state, context)
