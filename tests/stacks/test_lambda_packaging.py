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


# What the Lambda Python runtime provides besides the standard library: boto3 and its dependencies (the
# "Lambda runtimes" page: the runtime includes the AWS SDK for Python).
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")
# Layers built for the Lambda platform (Python 3.14, arm64) that hold compiled code: this interpreter imports
# the venv's build of the same pinned version in their place.
COMPILED_LAYERS = {"NumpyLayer": ("numpy",)}


def _link_packages(folder: Path, names: tuple[str, ...]) -> Path:
    """A folder of links to the venv's copies of the given top-level packages and modules."""
    folder.mkdir(parents=True, exist_ok=True)
    site = Path(str(__import__("boto3").__file__)).resolve().parents[1]
    for name in names:
        source = site / name if (site / name).exists() else site / f"{name}.py"
        assert source.exists(), f"{name} is not in {site}"
        if not (folder / source.name).exists():
            (folder / source.name).symlink_to(source)
    return folder


def _run(script: str, path: list[Path], environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `script` with exactly `path` after the standard library: -S keeps every site-packages out."""
    env = {"PATH": os.environ.get("PATH", ""), **environment}
    bootstrap = f"import sys; sys.path[1:1] = {[str(p) for p in path]!r}\n" + script
    return subprocess.run(
        [sys.executable, "-S", "-c", bootstrap],
        cwd=path[0],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def _layer_paths(
    function: dict[str, Any], template: dict[str, Any], assets: dict[str, Any], folder: Path, stand_ins: Path
) -> list[Path]:
    paths = []
    for layer in function["Properties"].get("Layers", []):
        logical_id = layer["Ref"]
        kind = next((name for name in COMPILED_LAYERS if logical_id.startswith(name)), None)
        if kind is not None:
            paths.append(_link_packages(stand_ins / kind, COMPILED_LAYERS[kind]))
            continue
        key = template["Resources"][logical_id]["Properties"]["Content"]["S3Key"].removesuffix(".zip")
        paths.append(folder / assets["files"][key]["source"]["path"] / "python")
    return paths


def test_every_handler_imports_from_its_asset_and_layers_alone(
    assembly: tuple[dict[str, Any], dict[str, Any], Path], tmp_path: Path
) -> None:
    """As Lambda imports it: the function's code asset, its layers (in their order), and what the runtime
    provides; nothing of this project's virtual environment."""
    template, assets, folder = assembly
    functions = [f for f in template["Resources"].values() if f["Type"] == "AWS::Lambda::Function"]
    assert len(functions) == 9  # 3 shims, 6 pipeline steps
    (asset,) = {f["Properties"]["Code"]["S3Key"].removesuffix(".zip") for f in functions}  # one code asset
    root = folder / assets["files"][asset]["source"]["path"]
    assert sorted(p.name for p in root.iterdir()) == ["contract", "fm", "lambdas"]
    assert not list(root.rglob("__pycache__"))
    runtime = _link_packages(tmp_path / "runtime", RUNTIME_PACKAGES)
    for function in functions:
        handler = function["Properties"]["Handler"]
        module, name = handler.rsplit(".", 1)
        path = [root, *_layer_paths(function, template, assets, folder, tmp_path / "layers"), runtime]
        script = (
            f"import importlib\nassert callable(getattr(importlib.import_module({module!r}), {name!r}))\n"
        )
        variables = {**function["Properties"]["Environment"]["Variables"], "AWS_DEFAULT_REGION": "us-east-1"}
        variables = {
            k: v if isinstance(v, str) else "s3://bucket/serving/current.json" for k, v in variables.items()
        }
        result = _run(script, path, variables)
        assert result.returncode == 0, f"{handler}: {result.stderr}"


def test_a_function_without_its_layer_does_not_import(
    assembly: tuple[dict[str, Any], dict[str, Any], Path], tmp_path: Path
) -> None:
    """The check above can fail: a function without its layers lacks Powertools."""
    template, assets, folder = assembly
    (asset,) = {
        f["Properties"]["Code"]["S3Key"].removesuffix(".zip")
        for f in template["Resources"].values()
        if f["Type"] == "AWS::Lambda::Function"
    }
    root = folder / assets["files"][asset]["source"]["path"]
    runtime = _link_packages(tmp_path / "runtime", RUNTIME_PACKAGES)
    result = _run("import lambdas.pipeline.start_run", [root, runtime], {})
    assert result.returncode != 0
    assert "No module named 'aws_lambda_powertools'" in result.stderr


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
    # The image installs numpy and pyarrow: the venv's site-packages stand in for them.
    venv = Path(str(__import__("numpy").__file__)).resolve().parents[1]
    result = _run("import jobs.prep.__main__, contract.index; print('ok')", [root, venv], {})
    assert result.returncode == 0, result.stderr
