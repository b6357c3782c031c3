"""Every handler the template names imports the way Lambda imports it: with lambdas/ as the code root."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from aws_cdk import assertions

LAMBDAS = Path(__file__).resolve().parents[2] / "lambdas"


def test_every_handler_resolves_from_the_asset_root(template: assertions.Template) -> None:
    handlers = sorted(
        f["Properties"]["Handler"] for f in template.find_resources("AWS::Lambda::Function").values()
    )
    assert len(handlers) == 7
    pairs = [h.rsplit(".", 1) for h in handlers]
    script = "import importlib\n" + "".join(
        f"assert callable(getattr(importlib.import_module({module!r}), {name!r}))\n" for module, name in pairs
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(LAMBDAS),
        "RUN_RECORD_URI": "s3://bucket/serving/current.json",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    # -I would drop PYTHONPATH; -s keeps user site-packages out, so only the asset and the venv's packages
    # (boto3, numpy: the runtime's and the layer's) are importable.
    result = subprocess.run(
        [sys.executable, "-s", "-c", script],
        cwd=LAMBDAS,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
