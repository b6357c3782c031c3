"""The whole loftrec pipeline on one machine: `make run`.

The same steps as the cloud's state machine, with the same code where the cloud runs ours: the prep job's
entrypoint in-process, a local FM trainer and gensim's FastText standing in for the built-in algorithms
(they read and write the same files; FM's "test" channel is the validation shard), the "Export FM factors"
step, the same paired quality gate on the test rows (against the baselines and the deployed run, if any),
honoured: only a deployed run is written to serving/current.json. The real serving shims answer through a
local server that speaks the SageMaker runtime protocol, POST /recommendations among them (checked against
the FM endpoint), and the batch step writes every customer's top 10 to the run's recommendations/. Then it
measures what the cloud cannot cheaply: validation and test RMSE side by side with paired intervals, the
top-N ranking table, a cold start on products held out entirely, and what the title space encodes; all in
a report under the run folder. --tune first chooses FM's hyperparameters on the validation rows.

Without --input it runs on the bundled MovieLens ml-latest-small, converted to the Amazon reviews schema."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from jobs.prep.__main__ import build_parser as prep_parser
from jobs.prep.job import PrepConfig
from jobs.prep.prepare import Thresholds
from local.hyperparameters import hyperparameters_argument
from local.pipeline import PipelineError
from local.pipeline.evaluation import percent_difference
from local.pipeline.run import run_pipeline
from local.pipeline.start import BLAZINGTEXT_OPTION, FM_OPTION, ROOT, Run, load_defaults
from stacks.config import Config

PROG = "python -m local.pipeline"

PREP_OPTIONS: dict[str, str | None] = {
    "--min-customer-reviews": "min_customer_reviews",
    "--min-product-reviews": "min_product_reviews",
    "--max-bad-row-fraction": "max_bad_row_fraction",
    "--fm-instance-count": "fm_instance_count",
    "--shards-per-instance": None,
    "--seed": None,
}
"""The prep job's options (python -m jobs.prep) the local run takes, parsed and checked by the prep job's
own parser's rules, each by the cdk.json key its default comes from (None: the prep job's default)."""
PREP_OPTIONS_NOT_TAKEN = {
    "--help": "the local run's own",
    "--input": "the local run's own: the raw files (the run's prep/ is the output)",
    "--output": "the local run's own: the output root, under which the run folder is",
    "--failure-message": "SageMaker Processing's ExitMessage file; the local run prints the reason",
    "--in-place": "the Processing container's mount; the local run writes beside and renames into place",
}
SEED_HELP = "seed of the train row shuffle, the bootstrap intervals and the cold-start hold-out (%(default)s)"


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are PipelineError: one line naming the option, no usage text."""

    def error(self, message: str) -> NoReturn:
        raise PipelineError(message.removeprefix("argument "))


def _table(text: str) -> dict[str, Any]:
    """A hyperparameter table from the command line: a JSON object, or @file.json holding one."""
    shown = text if len(text) <= 80 else text[:77] + "..."
    try:
        table = hyperparameters_argument(text)
    except OSError as error:
        raise argparse.ArgumentTypeError(f"cannot read {text[1:]} ({error.strerror})") from None
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON ({error}): {shown!r}") from None
    if not isinstance(table, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, got {shown!r}")
    return table


def _merged(tables: list[dict[str, Any]] | None) -> dict[str, Any]:
    """Tables given one after another, later keys over earlier ones."""
    merged: dict[str, Any] = {}
    for table in tables or []:
        merged.update(table)
    return merged


def _add_prep_options(parser: argparse.ArgumentParser, config: Config) -> None:
    group = parser.add_argument_group(
        "the prep job's options (python -m jobs.prep), defaults from cdk.json or the prep job's"
    )
    # argparse lists a parser's options in _actions only; the prep job's parser is the one set of rules.
    for action in prep_parser()._actions:
        option = action.option_strings[-1] if action.option_strings else None
        if option not in PREP_OPTIONS:
            continue
        key = PREP_OPTIONS[option]
        checked: dict[str, Any] = {} if action.type is None else {"type": action.type}
        group.add_argument(
            *action.option_strings,
            **checked,
            dest=action.dest,
            default=action.default if key is None else getattr(config, key),
            metavar=action.metavar,
            help=SEED_HELP if option == "--seed" else action.help,
        )


def build_parser(config: Config) -> argparse.ArgumentParser:
    """The command line, with cdk.json's values as its defaults."""
    parser = _Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--input", type=Path, help="folder of Amazon-schema TSV files (default: bundled MovieLens)"
    )
    parser.add_argument(
        "--output", type=Path, default=ROOT / "local-bucket", help="where runs/ and serving/ go (%(default)s)"
    )
    parser.add_argument(
        FM_OPTION,
        type=_table,
        action="append",
        metavar="JSON",
        help="FM hyperparameters over cdk.json's, key by key, e.g. '{\"epochs\": 10}' or @file.json; "
        "repeated, later keys win",
    )
    parser.add_argument(
        BLAZINGTEXT_OPTION,
        type=_table,
        action="append",
        metavar="JSON",
        help="BlazingText hyperparameters over cdk.json's, as --fm-hyperparameters",
    )
    parser.add_argument(
        "--cold-start-fraction",
        type=float,
        default=0.1,
        help="share of the test set's products held out for the cold start; 0 skips it (%(default)s)",
    )
    parser.add_argument(
        "--tune",
        nargs="?",
        type=int,
        const=0,
        default=None,
        metavar="TRIALS",
        help="choose FM's hyperparameters first by a seeded random search on the validation rows over "
        "cdk.json's fm_tuning.ranges (the cloud tuning job's space; a built-in space without it), TRIALS "
        "trials (default fm_tuning.max_jobs, else 8); the best is trained and reported. Off by default",
    )
    _add_prep_options(parser, config)
    return parser


def run_arguments(argv: Sequence[str] | None, config: Config) -> dict[str, Any]:
    """The command line -> run_pipeline's keyword arguments; PipelineError names a bad option."""
    args = build_parser(config).parse_args(argv)
    prep = PrepConfig(
        thresholds=Thresholds(args.min_customer_reviews, args.min_product_reviews),
        max_bad_row_fraction=args.max_bad_row_fraction,
        fm_instance_count=args.fm_instance_count,
        shards_per_instance=args.shards_per_instance,
        seed=args.seed,
    )
    return {
        "input_dir": args.input,
        "output_root": args.output,
        "fm_overrides": _merged(args.fm_hyperparameters),
        "blazingtext_overrides": _merged(args.blazingtext_hyperparameters),
        "cold_start_fraction": args.cold_start_fraction,
        "prep": prep,
        "config": config,
        "seed": args.seed,
        "tune_trials": args.tune,
    }


def summary(run: Run) -> str:
    """The run's figures in a few lines, for the terminal (the report holds them all)."""
    r = run.results
    m = r["manifest"]
    counts = m["counts"]
    lines = [f"loftrec local run {r['run_id']}"]
    lines += [f"  WARNING: {warning}" for warning in m.get("warnings", [])]
    lines += [
        f"  rows read {counts['rows_read']:,}, bad {sum(counts['bad_rows'].values()):,} "
        f"{counts['bad_rows']}, kept {counts['rows_kept']:,}",
        f"  customers {m['num_customers']:,}, products {m['num_products']:,}, "
        f"train {counts['train_rows']:,}, validation {counts['validation_rows']:,}, "
        f"test {counts['test_rows']:,}",
        "  RMSE, validation | test (95 % bootstrap interval):",
    ]
    by_split = r["rmse_by_split"]
    for name, score in by_split["test"]["rmse"].items():
        other = by_split["validation"]["rmse"].get(name)
        shown = "n/a" if other is None else f"{other['rmse']:.4f} [{other['low']:.4f}, {other['high']:.4f}]"
        lines.append(
            f"    {name:<32} {shown} | {score['rmse']:.4f} [{score['low']:.4f}, {score['high']:.4f}]"
        )
    v = r["range_violations"]["test"]
    lines.append(
        f"  FM test predictions outside 1..5: {v['below'] + v['above']} of {v['rows']} "
        f"(min {v['min']:.2f}, max {v['max']:.2f})"
    )
    gate = r["gate"]
    lines.append(f"  quality gate: {'deploy' if gate['deploy'] else 'reject'}")
    for comparison in gate.get("versus", []):
        low, high = comparison["interval"]
        lines.append(
            f"    vs {comparison['against']:<30} {comparison['relative'] * 100:+.1f} % "
            f"[{low * 100:+.1f} %, {high * 100:+.1f} %] on {comparison['rows']:,} rows: "
            f"{'passed' if comparison['passed'] else 'failed'}"
        )
    if not r["deployed"]:
        lines.append(f"    not deployed: {r['record']} left as it was")
    test = r["ranking"].get("test")
    if test and test["rankings"]:
        from local.pipeline.report import RANKING_NAMES, topn_verdict  # noqa: PLC0415 -- matplotlib

        lines.append(f"  top-N on the test rows, NDCG@{test['cutoff']} (Recall@{test['cutoff']}):")
        for name, figures in test["rankings"].items():
            ndcg, recall = figures[f"ndcg@{test['cutoff']}"], figures[f"recall@{test['cutoff']}"]
            lines.append(f"    {RANKING_NAMES[name]:<26} {ndcg['mean']:.3f} ({recall['mean']:.3f})")
        lines.append(f"    {topn_verdict(test)}")
    if "cold_start" in r:
        c = r["cold_start"]
        lines.append(
            f"  cold start: {c['held_out_products']} products held out, {c['answered']} of "
            f"{c['held_out_test_rows']} test rows answered from titles:"
        )
        for name, score in c["rmse"].items():
            lines.append(f"    {name:<52} {score['rmse']:.4f}  [{score['low']:.4f}, {score['high']:.4f}]")
        versus = c.get("versus_user_bias")
        if versus is not None:
            lines.append(f"    vs user bias: {percent_difference(versus)}")
    lines.append(f"  recommendations: {r['recommendations_folder']}")
    lines.append("  timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in r["timings_s"].items()))
    lines.append(f"  peak RSS {r['peak_rss_mb']:,.0f} MB")
    lines.append(f"report: {r['report']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status 0: the run is done; 2: it could not be (one line on stderr: `loftrec: <why>`, and the run
    left nothing behind); 130: interrupted."""
    try:
        config = load_defaults()
        run = run_pipeline(**run_arguments(argv, config))
    except PipelineError as error:
        print(f"loftrec: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # the machine's: a full disk, a folder taken away
        print(f"loftrec: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("loftrec: interrupted; the run left nothing behind", file=sys.stderr)
        return 130
    print(summary(run))
    return 0
