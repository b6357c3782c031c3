"""The prep job's entrypoint: `python -m jobs.prep --input DIR --output DIR [options]`.

In SageMaker Processing the image's ENTRYPOINT runs this with the state machine's arguments (the container
paths of contract.layout, --failure-message among them); the defaults of --input and --output are those
paths. Locally the same
command runs on any folders. Exit status: 0 done, 1 the input cannot make a run (the one-line reason is on
stderr and in the failure-message file), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

# pyarrow reads this once, when it loads: jemalloc (see release_memory_promptly) instead of mimalloc.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")

from contract import layout
from jobs.arguments import at_least
from jobs.prep.baselines import BiasSettings
from jobs.prep.failure import PrepError, os_cause, write_failure_message
from jobs.prep.job import PrepConfig, release_memory_promptly, run_prep
from jobs.prep.prepare import Thresholds


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a fraction within 0..1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    defaults = PrepConfig()
    p = argparse.ArgumentParser(
        prog="python -m jobs.prep",
        description="Turn Amazon Customer Reviews TSV files into FM RecordIO shards, a BlazingText corpus, "
        "the serving index and a manifest.",
    )
    p.add_argument(
        "--input",
        type=Path,
        default=Path(layout.CONTAINER_INPUT),
        help="folder of .tsv / .tsv.gz files (%(default)s)",
    )
    p.add_argument(
        "--output",
        type=Path,
        default=Path(layout.CONTAINER_OUTPUT),
        help="the run's prep/ folder (%(default)s)",
    )
    p.add_argument(
        "--min-customer-reviews",
        type=at_least(1),
        default=defaults.thresholds.min_customer_reviews,
        help="keep customers with at least this many reviews, counted on the raw rows (%(default)s)",
    )
    p.add_argument(
        "--min-product-reviews",
        type=at_least(1),
        default=defaults.thresholds.min_product_reviews,
        help="keep products with at least this many reviews, counted on the raw rows (%(default)s)",
    )
    p.add_argument(
        "--max-bad-row-fraction",
        dest="max_bad_row_fraction",
        type=_fraction,
        default=defaults.max_bad_row_fraction,
        help="fail above this fraction of bad rows (%(default)s)",
    )
    p.add_argument(
        "--fm-instance-count",
        type=at_least(1),
        default=defaults.fm_instance_count,
        help="FM training instances: the train shard count is a multiple of it (%(default)s)",
    )
    p.add_argument(
        "--shards-per-instance",
        type=at_least(1),
        default=defaults.shards_per_instance,
        help="train shards = fm instance count x this (%(default)s)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=defaults.seed,
        help="seed of the train row shuffle and key of the split's hash, which picks the test and validation "
        "rows among a date's reviews (%(default)s)",
    )
    p.add_argument(
        "--in-place",
        action="store_true",
        help="write straight into --output, the manifest last, instead of into a folder beside it that is "
        f"renamed when complete; always so for {layout.CONTAINER_OUTPUT}, the Processing job's output folder",
    )
    p.add_argument(
        "--failure-message",
        type=Path,
        default=None,
        help="on failure also write the one-line reason here "
        f"(SageMaker Processing: {layout.CONTAINER_FAILURE_MESSAGE})",
    )
    return p


def writes_in_place(output: Path, flag: bool) -> bool:
    """Whether the job writes straight into its output folder (jobs.prep.destination): asked for, or the
    Processing job's output folder, which SageMaker mounts and uploads and which cannot be renamed."""
    return flag or Path(os.path.abspath(output)) == Path(layout.CONTAINER_OUTPUT)


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    release_memory_promptly()
    # SageMaker stops a job with SIGTERM: unwinding lets the job remove what it wrote.
    signal.signal(signal.SIGTERM, _stop)
    config = PrepConfig(
        thresholds=Thresholds(args.min_customer_reviews, args.min_product_reviews),
        max_bad_row_fraction=args.max_bad_row_fraction,
        fm_instance_count=args.fm_instance_count,
        shards_per_instance=args.shards_per_instance,
        seed=args.seed,
        bias=BiasSettings(),
    )
    try:
        run_prep(args.input, args.output, config, in_place=writes_in_place(args.output, args.in_place))
    except PrepError as e:  # bad input, an unwritable output, a full disk: the line says it all
        message = f"prep failed: {e}"
    except MemoryError:
        message = (
            "prep failed: out of memory: give the job an instance with more memory (prep_instance_type) "
            "or less input"
        )
    except Exception as e:  # a bug: the traceback for the log, still one line where the operator looks
        traceback.print_exc()
        message = f"prep failed: internal error: {type(e).__name__}: {e}"
    else:
        return 0
    print(message, file=sys.stderr, flush=True)
    if args.failure_message is not None:
        try:
            write_failure_message(args.failure_message, message)
        except OSError as e:
            print(
                f"prep: cannot write the failure message to {args.failure_message}: {os_cause(e)}",
                file=sys.stderr,
            )
    return 1


if __name__ == "__main__":
    sys.exit(main())
