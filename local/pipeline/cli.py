"""The whole loftrec pipeline on one machine: `make run`.

The same steps as the cloud's state machine, with the same code where the cloud runs ours: the prep job's
entrypoint in-process, a local FM trainer and gensim's FastText standing in for the built-in algorithms
(they read and write the same files), the same quality-gate decision, and the real serving shims answering
through a local server that speaks the SageMaker runtime protocol. Then it measures what the cloud cannot
cheaply: test RMSE with confidence intervals against the baselines, a cold start on products held out
entirely, and the title-embedding map; all in a report under the run folder.

Without --input it runs on the bundled MovieLens ml-latest-small, converted to the Amazon reviews schema.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from local.pipeline import PipelineError
from local.pipeline.run import ROOT, Run, run_pipeline

PROG = "python -m local.pipeline"


def summary(run: Run) -> str:
    """The run's figures in a few lines, for the terminal (the report holds them all)."""
    r = run.results
    m = r["manifest"]
    counts = m["counts"]
    lines = [
        f"loftrec local run {r['run_id']}",
        f"  rows read {counts['rows_read']:,}, bad {sum(counts['bad_rows'].values()):,} "
        f"{counts['bad_rows']}, "
        f"kept {counts['rows_kept']:,}",
        f"  customers {m['num_customers']:,}, products {m['num_products']:,}, "
        f"train {counts['train_rows']:,}, test {counts['test_rows']:,}",
        "  test RMSE (95 % bootstrap interval):",
    ]
    for name, score in r["rmse"].items():
        lines.append(f"    {name:<34} {score['rmse']:.4f}  [{score['low']:.4f}, {score['high']:.4f}]")
    v = r["range_violations"]
    lines.append(
        f"  FM predictions outside 1..5: {v['below'] + v['above']} of {v['rows']} (min {v['min']:.2f})"
    )
    lines.append(f"  quality gate: {'deploy' if r['gate']['deploy'] else 'reject'}")
    if "cold_start" in r:
        c = r["cold_start"]
        lines.append(
            f"  cold start: {c['held_out_products']} products held out, {c['answered']} of "
            f"{c['held_out_test_rows']} test rows answered from titles:"
        )
        for name, score in c["rmse"].items():
            lines.append(f"    {name:<34} {score['rmse']:.4f}  [{score['low']:.4f}, {score['high']:.4f}]")
    lines.append("  timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in r["timings_s"].items()))
    lines.append(f"  peak RSS {r['peak_rss_mb']:,.0f} MB")
    lines.append(f"report: {r['report']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--input", type=Path, help="folder of Amazon-schema TSV files (default: bundled MovieLens)"
    )
    parser.add_argument(
        "--output", type=Path, default=ROOT / "local-bucket", help="where runs/ and serving/ go (%(default)s)"
    )
    parser.add_argument(
        "--fm-hyperparameters",
        default="{}",
        help="JSON object of FM hyperparameters over cdk.json's, e.g. '{\"epochs\": 10}'",
    )
    parser.add_argument(
        "--cold-start-fraction",
        type=float,
        default=0.1,
        help="share of the test set's products held out for the cold start; 0 skips it (%(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        overrides = json.loads(args.fm_hyperparameters)
        if not isinstance(overrides, dict):
            raise PipelineError("--fm-hyperparameters must be a JSON object")
        if not 0 <= args.cold_start_fraction < 1:
            raise PipelineError("--cold-start-fraction must be at least 0 and below 1")
        run = run_pipeline(
            input_dir=args.input,
            output_root=args.output,
            fm_overrides=overrides,
            cold_start_fraction=args.cold_start_fraction,
        )
    except (PipelineError, json.JSONDecodeError) as error:
        print(f"loftrec: {error}", file=sys.stderr)
        return 2
    print(summary(run))
    return 0
