"""python -m local.fm: train the local Factorization Machines regressor on a run's prep shards."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from local.fm.training import fm_display, train_from_prep
from local.hyperparameters import hyperparameters_argument
from local.progress import Progress


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local.fm",
        description="Train the local Factorization Machines regressor on prep shards; write model.tar.gz "
        "(SageMaker FM's artifact) and metrics.json.",
    )
    parser.add_argument(
        "--prep",
        type=Path,
        required=True,
        help="the run's prep/ folder (train/, and validation/ as the test channel)",
    )
    parser.add_argument("--output", type=Path, required=True, help="where model.tar.gz and metrics.json go")
    parser.add_argument(
        "--hyperparameters",
        required=True,
        help="a JSON object of SageMaker FM hyperparameters, or @file.json",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        hyperparameters = hyperparameters_argument(args.hyperparameters)
    except (OSError, json.JSONDecodeError) as e:
        parser.error(f"--hyperparameters: {e}")
    try:
        with Progress("FM", unit="batch") as progress:
            result = train_from_prep(
                args.prep, args.output, hyperparameters, seed=args.seed, progress=fm_display(progress)
            )
    except (ValueError, FileNotFoundError, FloatingPointError) as e:  # HyperparameterError, ArtifactError
        print(f"local.fm: {e}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in result.metrics().items() if k != "hyperparameters"}, indent=2))
    return 0
