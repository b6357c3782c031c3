"""The batch recommendations job's entrypoint:

    python -m jobs.recommend --run DIR [--k 10] [--date YYYY-MM-DD] [options]
    python -m jobs.recommend --factors DIR --index DIR --output DIR [options]

--run DIR takes a run folder (runs/<run-id>/: its serving/fm/ and prep/index/ in, its recommendations/
out); the parts' defaults are the SageMaker Processing container's paths (contract.layout), where the job
runs on the prep image with this module as the entrypoint. Exit status: 0 done, 1 the inputs cannot make
recommendations (the one-line reason is on stderr and in the --failure-message file), 2 bad arguments.

Threads: --workers chunks are scored side by side (default: every core this process may use), each with a
single OpenBLAS thread, which this entrypoint sets (OPENBLAS_NUM_THREADS=1, unless already set) before
numpy loads.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# numpy reads the BLAS thread count when it loads, so the setting above comes before every import.
import argparse
import datetime as dt
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from contract import layout
from jobs.arguments import at_least
from jobs.prep.failure import write_failure_message
from jobs.recommend.job import RecommendConfig, RecommendError, run_recommend

_DEFAULTS = RecommendConfig()


def _weight(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0.0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a date YYYY-MM-DD, got {text}") from None


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m jobs.recommend",
        description="Top-k products for every customer of a run, from its FM serving factors, as gzipped "
        "JSON Lines shards with a manifest.",
    )
    p.add_argument(
        "--run",
        type=Path,
        default=None,
        help=f"a run folder: reads {layout.SERVING_FACTORS} and {layout.INDEX}, "
        f"writes {layout.RECOMMENDATIONS}",
    )
    p.add_argument("--factors", type=Path, default=None, help=f"({layout.RECOMMEND_CONTAINER_FACTORS})")
    p.add_argument("--index", type=Path, default=None, help=f"({layout.RECOMMEND_CONTAINER_INDEX})")
    p.add_argument("--output", type=Path, default=None, help=f"({layout.RECOMMEND_CONTAINER_OUTPUT})")
    p.add_argument("--k", type=at_least(1), default=_DEFAULTS.k, help="products per customer (%(default)s)")
    p.add_argument("--date", type=_date, default=None, help="the date recommended for (default: today, UTC)")
    p.add_argument(
        "--include-reviewed",
        action="store_true",
        help="also recommend products the customer reviewed (default: exclude them)",
    )
    p.add_argument(
        "--popularity-weight",
        type=_weight,
        default=_DEFAULTS.popularity_weight,
        help="rank by FM's score + this x log(1 + reviews) (%(default)s: FM's score alone)",
    )
    p.add_argument(
        "--chunk-customers",
        type=at_least(1),
        default=_DEFAULTS.chunk_customers,
        help="customers scored at once (%(default)s); memory: about 4 x this x products bytes per worker",
    )
    p.add_argument(
        "--lines-per-shard",
        type=at_least(1),
        default=_DEFAULTS.lines_per_shard,
        help="customers per output shard (%(default)s)",
    )
    p.add_argument(
        "--workers", type=at_least(1), default=None, help="threads scoring chunks (default: the cores)"
    )
    p.add_argument(
        "--failure-message",
        type=Path,
        default=None,
        help="on failure also write the one-line reason here "
        f"(SageMaker Processing: {layout.CONTAINER_FAILURE_MESSAGE})",
    )
    return p


def folders(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[Path, Path, Path]:
    parts = (args.factors, args.index, args.output)
    if args.run is not None:
        if any(part is not None for part in parts):
            parser.error("--run DIR names all three folders: give either --run or --factors/--index/--output")
        run: Path = args.run
        return run / layout.SERVING_FACTORS, run / layout.INDEX, run / layout.RECOMMENDATIONS
    return (
        args.factors or Path(layout.RECOMMEND_CONTAINER_FACTORS),
        args.index or Path(layout.RECOMMEND_CONTAINER_INDEX),
        args.output or Path(layout.RECOMMEND_CONTAINER_OUTPUT),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    factors, index, output = folders(parser, args)
    config = RecommendConfig(
        k=args.k,
        date=args.date,
        exclude_reviewed=not args.include_reviewed,
        popularity_weight=args.popularity_weight,
        chunk_customers=args.chunk_customers,
        lines_per_shard=args.lines_per_shard,
        workers=args.workers or _cores(),
    )
    try:
        run_recommend(factors, index, output, config)
    except RecommendError as e:
        message = f"recommend failed: {e}"
    except Exception as e:  # an internal error still leaves a reason where the operator looks first
        traceback.print_exc()
        message = f"recommend failed: internal error: {type(e).__name__}: {e}"
    else:
        return 0
    print(message, file=sys.stderr, flush=True)
    if args.failure_message is not None:
        write_failure_message(args.failure_message, message)
    return 1


if __name__ == "__main__":
    sys.exit(main())
