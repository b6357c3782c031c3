"""The whole app: synthesizes offline, environment-agnostic unless told, cdk-nag clean, and a bad setting
stops synth with one line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3

from app import build_app
from stacks.config import cdk_json_context, supported_regions

ROOT = Path(__file__).resolve().parents[2]


def test_synthesizes_environment_agnostic_with_cdk_nag_clean() -> None:
    app = build_app(cdk_json_context())
    assembly = app.synth()  # raises ValidationFailed on any unacknowledged cdk-nag finding
    stack = assembly.get_stack_by_name("Loftrec")
    assert stack.environment.account == "unknown-account"
    assert stack.environment.region == "unknown-region"


def test_account_and_region_from_context() -> None:
    app = build_app({**cdk_json_context(), "account": "123456789012", "region": "eu-west-1"})
    stack = app.synth().get_stack_by_name("Loftrec")
    assert (stack.environment.account, stack.environment.region) == ("123456789012", "eu-west-1")


def test_unacknowledged_cdk_nag_finding_fails_synth() -> None:
    app = build_app(cdk_json_context())
    stack = app.node.find_child("Loftrec")
    assert isinstance(stack, cdk.Stack)
    s3.Bucket(stack, "Careless")  # no access logs, no TLS-only policy
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()


def run_app(context: dict[str, object]) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CDK_CONTEXT_JSON": json.dumps(context),
        "CDK_OUTDIR": str(ROOT / "build" / "test-out"),
    }
    return subprocess.run(
        [sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )


def test_invalid_setting_stops_the_app_with_one_line() -> None:
    result = run_app({**cdk_json_context(), "fm_instance_count": "0"})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "loftrec: invalid configuration: fm_instance_count=0 is not allowed: an integer >= 1"
    ]


def test_a_region_without_the_algorithm_images_stops_the_app_with_one_line() -> None:
    result = run_app({**cdk_json_context(), "region": "mx-central-1"})
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(
        "loftrec: invalid configuration: region='mx-central-1' is not allowed: a region with both built-in "
        "algorithm images (stacks/algorithm_images.json): af-south-1, "
    )


def test_an_environment_agnostic_stack_refuses_other_regions_at_deploy_in_one_line() -> None:
    assembly = build_app(cdk_json_context()).synth()
    rules = assembly.get_stack_by_name("Loftrec").template["Rules"]
    (assertion,) = rules["SupportedRegion"]["Assertions"]
    regions, region = assertion["Assert"]["Fn::Contains"]
    assert region == {"Ref": "AWS::Region"}
    assert regions == list(supported_regions())
    assert assertion["AssertDescription"] == (
        "loftrec deploys only to a region with both built-in algorithm images: " + ", ".join(regions)
    )


def test_cdk_cli_reports_the_invalid_setting(tmp_path: Path) -> None:
    cdk_bin = ROOT / "node_modules" / ".bin" / "cdk"
    if not cdk_bin.exists():
        pytest.skip("the pinned CDK CLI is not installed (make install runs npm ci)")
    env = {
        **os.environ,
        "CDK_DISABLE_VERSION_CHECK": "1",
        "CDK_DISABLE_CLI_TELEMETRY": "1",
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
    }
    result = subprocess.run(
        [
            str(cdk_bin),
            "synth",
            "-q",
            "-o",
            str(tmp_path / "out"),
            "-c",
            "retrain_schedule=cron(0 3 * * * *)",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert (
        "loftrec: invalid configuration: retrain_schedule='cron(0 3 * * * *)' is not allowed" in result.stderr
    )
    shutil.rmtree(tmp_path / "out", ignore_errors=True)
