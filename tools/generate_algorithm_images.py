#!/usr/bin/env python3
"""Write stacks/algorithm_images.json: the ECR registry account of each built-in algorithm per region.

Source: the SageMaker Python SDK's image_uri_config (a test/dev dependency, never needed at synth). Run
after upgrading the SDK pin: `.venv/bin/python tools/generate_algorithm_images.py`. A test checks that the
checked-in file equals what this prints.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

# Built-in algorithm images are tagged "1"; the repository names are the SDK's.
ALGORITHMS = {"fm": "factorization-machines", "blazingtext": "blazingtext"}
OUTPUT = Path(__file__).resolve().parent.parent / "stacks" / "algorithm_images.json"


def generate() -> dict[str, Any]:
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    from sagemaker import image_uris  # noqa: PLC0415 -- dev-only dependency

    table: dict[str, Any] = {"tag": "1", "repositories": {}, "registries": {}}
    for key, repository in ALGORITHMS.items():
        config = image_uris.config_for_framework(repository)  # type: ignore[no-untyped-call]
        version = config["versions"]["1"]
        table["repositories"][key] = version["repository"]
        for region, account in sorted(version["registries"].items()):
            table["registries"].setdefault(region, {})[key] = account
    # Keep only regions where both algorithms exist: a stack in any other region could not train.
    table["registries"] = {
        region: accounts
        for region, accounts in table["registries"].items()
        if set(accounts) == set(ALGORITHMS)
    }
    return table


def render() -> str:
    return json.dumps(generate(), indent=1, sort_keys=True) + "\n"


if __name__ == "__main__":
    OUTPUT.write_text(render())
    print(f"wrote {OUTPUT}")
