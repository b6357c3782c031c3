"""The code assets as AWS gets them: every handler the template names imports from the Lambda asset's root,
as Lambda imports it, and the prep image's build context holds what its Dockerfile copies and the job
imports. Both are checked in the staged asset folders the synthesized assembly points at, not in the
repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from app import build_app
from stacks.config import cdk_json_context


@pytest.fixture(scope="module")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any], Path]:
    """(template, asset manifest, assembly folder) of a synthesized app."""
    outdir = tmp_path_factory.mktemp("cdk.out")
    app = build_app({**cdk_json_context(), "raw_data_uri": "s3://example-reviews/us/video/"}, outdir=outdir)
    cloud = app.synth()
    folder = Path(cloud.directory)
    template = json.loads((folder / "Loftrec.template.json").read_text())
    assets = json.loads((folder / "Loftrec.assets.json").read_text())
    return template, assets, folder


def _run(script: str, root: Path, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(root), **environment}
    # -I would drop PYTHONPATH; -s keeps user site-packages out, so only the asset and the venv's packages
    # (boto3, numpy: the runtime's and the layers') are importable.
    return subprocess.run(
        [sys.executable, "-s", "-c", script], cwd=root, env=env, capture_output=True, text=True, check=False
    )


def test_every_handler_resolves_from_the_asset_root(
    assembly: tuple[dict[str, Any], dict[str, Any], Path],
) -> None:
    template, assets, folder = assembly
    functions = template["Resources"].values()
    code = {
        f["Properties"]["Handler"]: f["Properties"]["Code"]["S3Key"].removesuffix(".zip")
        for f in functions
        if f["Type"] == "AWS::Lambda::Function"
    }
    assert len(code) == 7
    (asset,) = set(code.values())  # one asset for every function
    root = folder / assets["files"][asset]["source"]["path"]
    assert sorted(p.name for p in root.iterdir()) == ["contract", "lambdas"]
    assert not list(root.rglob("__pycache__"))
    pairs = [h.rsplit(".", 1) for h in sorted(code)]
    script = "import importlib\n" + "".join(
        f"assert callable(getattr(importlib.import_module({module!r}), {name!r}))\n" for module, name in pairs
    )
    result = _run(
        script,
        root,
        {"RUN_RECORD_URI": "s3://bucket/serving/current.json", "AWS_DEFAULT_REGION": "us-east-1"},
    )
    assert result.returncode == 0, result.stderr


def test_the_prep_image_context_holds_the_job_the_contract_and_fm(
    assembly: tuple[dict[str, Any], dict[str, Any], Path],
) -> None:
    _, assets, folder = assembly
    (image,) = assets["dockerImages"].values()
    root = folder / image["source"]["directory"]
    assert image["source"]["dockerFile"] == "jobs/prep/Dockerfile"
    assert sorted(p.name for p in root.iterdir()) == ["contract", "fm", "jobs"]
    dockerfile = (root / "jobs" / "prep" / "Dockerfile").read_text()
    for copied in ("contract/", "fm/", "jobs/", "jobs/prep/requirements.txt"):
        assert f"COPY {copied} " in dockerfile
        assert (root / copied).exists()
    result = _run("import jobs.prep.__main__, contract.index; print('ok')", root, {})
    assert result.returncode == 0, result.stderr
