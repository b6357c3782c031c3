"""Which SageMaker FM hyperparameters should the untuned run use? Candidates on the validation split, then
the test figures of the notebook's settings, of cdk.json's and of what `make run` trains, each against the
user + item bias baseline on the same rows.

    .venv/bin/python bench/fm_defaults.py                           # the bundled MovieLens slice
    .venv/bin/python bench/fm_defaults.py --synth-rows 4057147      # the notebook's scale, --signal 8
    .venv/bin/python bench/fm_defaults.py --input DIR --name X      # any folder of Amazon-schema TSV files
    .venv/bin/python bench/fm_defaults.py --grid factors_lr=0.0001,0.001 epochs=3,5   # a search
    .venv/bin/python bench/fm_defaults.py --rule steps=400,800 epochs=4,6             # data-size rules

Builds a run's prep/ in a temporary folder (or --workdir, reused when it holds one) the way the pipeline
does: the prep job with cdk.json's thresholds and FM instance count. Each candidate is trained with the local
FM trainer (SageMaker FM's names and defaults) on the train shards, scored on the validation shard, clipped to
the rating range as served, and compared with the bias baseline's validation predictions
(prep/baselines/validation.npy) by the gate's statistic: the paired bootstrap interval of
RMSE(FM) / RMSE(bias) - 1 (lambdas/pipeline/paired.py). A candidate "passes" under the gate's rule
(lambdas/pipeline/gate.py decide_paired, cdk.json's gate_min_improvement): the point estimate at least the
margin better and the interval wholly below 0; with --seeds, under every seed.

Every choice is made on validation; the validation RMSE after each epoch (the training job's test:rmse) shows
what fewer epochs would have given. The test shard is read once, at the end, for the notebook's settings,
cdk.json's and the local run's (cdk.json's with the Makefile's LOCAL_FM overrides, while there are any).
Wall times are the local trainer's, relative to the notebook's settings on the same data: the cloud's
4-instance training time scales the same way with epochs and rows.

A candidate is a table of SageMaker FM hyperparameters as cdk.json holds it (contract.algorithms; feature_dim
and predictor_type are set here), checked as the cloud's training job would be (contract.hyperparameters).
--candidates takes names (CANDIDATES, cdk.json, make-run, by-rows-per-customer: a table chosen from the run's
train rows per customer) or @file.json holding {"name": {...}, ...};
--grid KEY=V1,V2 ... the product of those values over --base. --rule steps=S1,S2 epochs=E1,E2: tables
computed from the run's size, as the pipeline could from prep's manifest: --base with mini_batch_size
train_rows / S (S mini-batches an epoch, rounded, at least 1) and the given epochs; with --rule-lr, the
learning rates also scaled by mini_batch_size / --base's. The synthetic file goes under the work folder;
nothing is written elsewhere. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from bench.make_run import local_fm_overrides
from bench.synth_reviews import FULL_ROWS, Shape, generate
from contract import layout
from contract.documents import BASELINE_COLUMNS
from contract.features import RATING_RANGE
from contract.hyperparameters import check_fm
from fm.recordio import SparseRecords
from jobs.prep.job import PrepConfig, run_prep
from jobs.prep.prepare import Thresholds
from lambdas.pipeline.paired import PairedDifference, paired_difference
from local import movielens
from local.fm import predict, read_shards, train_fm
from stacks.config import Config, default_context, load_config

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "notebook"
CDK_JSON = "cdk.json"
MAKE_RUN = "make-run"
NOTEBOOK_HYPERPARAMETERS: dict[str, Any] = {"num_factors": 256, "epochs": 3, "mini_batch_size": 1000}
"""The workshop notebook's settings (SageMaker's defaults for everything else)."""

# Named candidates besides cdk.json and make-run (the alternatives the study measured). SageMaker's defaults
# for what a table does not set: bias_lr 0.1, linear_lr 0.001, factors_lr 0.0001, bias_wd 0.01, linear_wd
# 0.001, factors_wd 1e-5, epochs 1.
CANDIDATES: dict[str, dict[str, Any]] = {
    NOTEBOOK: NOTEBOOK_HYPERPARAMETERS,
    "notebook-10-epochs": {**NOTEBOOK_HYPERPARAMETERS, "epochs": 10},
    "linear-lr": {**NOTEBOOK_HYPERPARAMETERS, "linear_lr": 0.01},
    "64-factors": {"num_factors": 64, "epochs": 3, "mini_batch_size": 1000, "linear_lr": 0.01},
    "64-factors-linear-wd": {
        "num_factors": 64,
        "epochs": 4,
        "mini_batch_size": 1000,
        "linear_lr": 0.01,
        "linear_wd": 0.003,
    },
    "factors-lr-wd-10-epochs": {
        "num_factors": 64,
        "epochs": 10,
        "mini_batch_size": 1000,
        "linear_lr": 0.01,
        "factors_lr": 0.003,
        "factors_wd": 0.0001,
    },
    # The best measured at the notebook's scale (synthetic, --signal 8): w0 started at the ratings' level and
    # not decayed, the linear terms decayed a little more, one epoch more.
    "bias-init-4-epochs": {
        "num_factors": 64,
        "epochs": 4,
        "mini_batch_size": 1000,
        "linear_lr": 0.01,
        "linear_wd": 0.002,
        "bias_wd": 0.0,
        "bias_init_method": "constant",
        "bias_init_value": 4.0,
        "linear_init_method": "constant",
        "linear_init_value": 0.0,
    },
    # The MovieLens sets' (about 100 train rows a customer): ten epochs, factors learning ten times faster.
    "256-factors-10-epochs": {
        "num_factors": 256,
        "epochs": 10,
        "mini_batch_size": 1000,
        "linear_lr": 0.01,
        "factors_lr": 0.001,
    },
}


DENSE_ROWS_PER_CUSTOMER = 25.0
"""by-rows-per-customer's switch: measured sides are about 6 train rows a customer (the notebook's scale) and
about 100 (the MovieLens sets); nothing was measured in between."""
BY_ROWS_PER_CUSTOMER = "by-rows-per-customer"


def by_rows_per_customer(manifest: dict[str, Any]) -> dict[str, Any]:
    """A data-size rule from prep's manifest: the MovieLens sets' table where customers have many train rows,
    the notebook scale's best where they have few."""
    per_customer = int(manifest["counts"]["train_rows"]) / int(manifest["num_customers"])
    dense = per_customer >= DENSE_ROWS_PER_CUSTOMER
    return dict(CANDIDATES["256-factors-10-epochs" if dense else "bias-init-4-epochs"])


def named(config: Config) -> dict[str, dict[str, Any]]:
    """Every candidate a name can pick: CANDIDATES, cdk.json's table and, with LOCAL_FM, the local run's."""
    out = {**CANDIDATES, CDK_JSON: dict(config.fm_hyperparameters)}
    overrides = local_fm_overrides()
    if overrides:
        out[MAKE_RUN] = {**config.fm_hyperparameters, **overrides}
    return out


def grid(base: dict[str, Any], axes: list[str]) -> dict[str, dict[str, Any]]:
    """base and every combination of KEY=V1,V2 values (JSON numbers) over it, named by what differs."""
    combos: list[dict[str, Any]] = [{}]
    for axis in axes:
        key, _, values = axis.partition("=")
        if not values:
            raise SystemExit(f"fm_defaults: --grid {axis!r}: expected KEY=V1,V2,...")
        combos = [{**c, key: json.loads(v)} for c in combos for v in values.split(",")]
    out: dict[str, dict[str, Any]] = {"base": dict(base)}
    for combo in combos:
        name = ", ".join(f"{k} {v:g}" for k, v in combo.items() if base.get(k) != v) or "base"
        out[name] = {**base, **combo}
    return out


LEARNING_RATES = ("bias_lr", "linear_lr", "factors_lr")
SAGEMAKER_LR_DEFAULTS = {"bias_lr": 0.1, "linear_lr": 0.001, "factors_lr": 0.0001}


def rules(
    base: dict[str, Any], axes: list[str], train_rows: int, *, scale_lr: bool
) -> dict[str, dict[str, Any]]:
    """base with mini_batch_size = train_rows / steps (rounded, >= 1) and epochs, for every steps=... and
    epochs=... value; scale_lr: each learning rate times the new mini_batch_size / base's."""
    values: dict[str, list[int]] = {"steps": [], "epochs": [int(base.get("epochs", 1))]}
    for axis in axes:
        key, _, listed = axis.partition("=")
        if key not in values or not listed:
            raise SystemExit(f"fm_defaults: --rule {axis!r}: expected steps=S1,S2,... or epochs=E1,E2,...")
        values[key] = [int(v) for v in listed.split(",")]
    if not values["steps"]:
        raise SystemExit("fm_defaults: --rule needs steps=S1,S2,...")
    out: dict[str, dict[str, Any]] = {}
    base_batch = int(base.get("mini_batch_size", 1000))
    for steps in values["steps"]:
        for epochs in values["epochs"]:
            batch = max(1, round(train_rows / steps))
            table = {**base, "mini_batch_size": batch, "epochs": epochs}
            if scale_lr:
                for key in LEARNING_RATES:
                    table[key] = float(base.get(key, SAGEMAKER_LR_DEFAULTS[key])) * batch / base_batch
            out[f"steps {steps}, epochs {epochs}{', lr scaled' if scale_lr else ''}"] = table
    return out


def checked(found: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    for name, table in found.items():
        try:
            check_fm(table)  # what the cloud's training job would be sent
        except ValueError as error:
            raise SystemExit(f"fm_defaults: candidate {name}: {error}") from None
    return found


def base_table(args: argparse.Namespace, known: dict[str, dict[str, Any]]) -> dict[str, Any]:
    table: dict[str, Any] = known[args.base] if args.base in known else json.loads(args.base)
    return table


def candidates_from(args: argparse.Namespace, known: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    if args.rule:
        return {}  # made once the run's size is known (rules)
    if args.grid:
        found = grid(base_table(args, known), args.grid)
    elif args.candidates.startswith("@"):
        found = json.loads(Path(args.candidates[1:]).read_text())
    else:
        found = {}
        for name in args.candidates.split(","):
            if name == BY_ROWS_PER_CUSTOMER:
                continue  # made once the run's size is known (main)
            if name not in known:
                names = ", ".join([*known, BY_ROWS_PER_CUSTOMER])
                raise SystemExit(f"fm_defaults: unknown candidate {name!r}: one of {names}")
            found[name] = known[name]
    return checked(found)


@dataclass(frozen=True)
class Data:
    name: str
    manifest: dict[str, Any]
    train: SparseRecords
    validation: SparseRecords
    bias_validation: np.ndarray
    prep: Path


@dataclass(frozen=True)
class Measured:
    name: str
    hyperparameters: dict[str, Any]
    validation: PairedDifference
    curve: list[float]  # validation RMSE after each epoch (unclipped: the training job's test:rmse)
    seconds: float
    model: Any
    others: tuple[PairedDifference, ...] = ()  # the other seeds' validation figures


def clip(scores: np.ndarray) -> np.ndarray:
    low, high = RATING_RANGE
    clipped: np.ndarray = np.clip(scores, low, high)
    return clipped


def passes(difference: PairedDifference, margin: float) -> bool:
    """The gate's rule versus a baseline (decide_paired): at least `margin` better, the interval below 0."""
    return difference.relative <= -margin and difference.high < 0


def all_pass(m: Measured, margin: float) -> bool:
    return all(passes(d, margin) for d in (m.validation, *m.others))


def csr(records: SparseRecords) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return records.indptr, records.indices, records.values


def load_data(args: argparse.Namespace, config: Config, work: Path) -> Data:
    """The prep job's output for the chosen input (built under work, or reused from it)."""
    source = work / "input"
    if args.input is not None:
        source, name = args.input, args.name or str(args.input)
    elif args.synth_rows:
        path = source / "reviews.tsv"
        if not path.is_file():
            generate(path, Shape(rows=args.synth_rows, seed=args.synth_seed, signal=args.signal))
        name = args.name or f"synthetic reviews, {args.synth_rows:,} rows, --signal {args.signal}"
    else:
        path = source / "movielens.tsv"
        if not path.is_file():
            movielens.convert(ROOT / "data" / "movielens-latest-small", path)
        name = args.name or "bundled MovieLens ml-latest-small"
    prep = work / "prep"
    if not (prep / "manifest.json").is_file():
        prep_config = PrepConfig(
            thresholds=Thresholds(config.min_customer_reviews, config.min_product_reviews),
            max_bad_row_fraction=config.max_bad_row_fraction,
            fm_instance_count=config.fm_instance_count,
        )
        run_prep(source, prep, prep_config, log=lambda _: None)
    bias = BASELINE_COLUMNS.index("bias")
    return Data(
        name=name,
        manifest=json.loads((prep / "manifest.json").read_text()),
        train=read_shards(prep / layout.in_prep(layout.TRAIN)),
        validation=read_shards(prep / layout.in_prep(layout.VALIDATION)),
        bias_validation=np.load(prep / layout.in_prep(layout.BASELINES_VALIDATION))[:, bias],
        prep=prep,
    )


def measure(
    name: str, table: dict[str, Any], data: Data, *, seeds: tuple[int, ...], samples: int
) -> Measured:
    hyperparameters = {**table, "feature_dim": data.train.feature_dim, "predictor_type": "regressor"}
    validation = data.validation

    def versus_bias(model: Any) -> PairedDifference:
        scores = clip(predict(model, *csr(validation)))
        return paired_difference(validation.labels, scores, data.bias_validation, samples=samples)

    result = train_fm(data.train, validation, hyperparameters, seed=seeds[0])
    others = tuple(
        versus_bias(train_fm(data.train, None, hyperparameters, seed=seed).model) for seed in seeds[1:]
    )
    curve = [float(str(epoch["test_rmse"])) for epoch in result.epochs]
    return Measured(name, table, versus_bias(result.model), curve, result.seconds, result.model, others)


def interval(difference: PairedDifference) -> str:
    return f"{difference.relative:+.1%} [{difference.low:+.1%}, {difference.high:+.1%}]"


def describe(table: dict[str, Any]) -> str:
    return json.dumps(table, separators=(", ", ": "))


def print_tables(
    data: Data,
    measured: list[Measured],
    tested: list[tuple[str, dict[str, Any], PairedDifference, float]],
    *,
    args: argparse.Namespace,
    margin: float,
    seconds: float,
) -> None:
    counts = data.manifest["counts"]
    print(f"## {data.name}\n")
    print(
        f"{data.manifest['num_customers']:,} customers, {data.manifest['num_products']:,} products, "
        f"{counts['train_rows']:,} train, {counts['validation_rows']:,} validation and "
        f"{counts['test_rows']:,} test rows; FM seeds {args.seeds}; {args.samples} paired bootstrap samples; "
        f"gate margin {margin:.0%}; {seconds:.0f} s in all, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}\n"
    )
    base = next((m.seconds for m in measured if m.hyperparameters == NOTEBOOK_HYPERPARAMETERS), None)
    print(
        "| candidate | validation RMSE | bias RMSE | FM / bias - 1 [95 % CI] | other seeds | passes | "
        "validation RMSE by epoch | train s | time vs notebook |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for m in measured:
        ratio = f"{m.seconds / base:.2f}" if base else "-"
        curve = " ".join(f"{r:.3f}" for r in m.curve)
        others = "; ".join(interval(o) for o in m.others) or "-"
        print(
            f"| {m.name} | {m.validation.candidate_rmse:.4f} | {m.validation.other_rmse:.4f} | "
            f"{interval(m.validation)} | {others} | {'yes' if all_pass(m, margin) else 'no'} | {curve} | "
            f"{m.seconds:.0f} | {ratio} |"
        )
    print()
    for m in measured:
        print(f"- {m.name}: `{describe(m.hyperparameters)}`")
    if tested:
        print(
            "\nTest split (read once, for these settings only; FM seed {}):\n".format(
                args.seeds.split(",")[0]
            )
        )
        print("| setting | test RMSE | bias RMSE | FM / bias - 1 [95 % CI] | passes vs bias | train s |")
        print("|---|---|---|---|---|---|")
        for label, table, figure, train_seconds in tested:
            print(
                f"| {label}: `{describe(table)}` | {figure.candidate_rmse:.4f} | {figure.other_rmse:.4f} | "
                f"{interval(figure)} | {'yes' if passes(figure, margin) else 'no'} | {train_seconds:.0f} |"
            )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--input", type=Path, default=None, help="TSV folder (default: the bundled MovieLens)"
    )
    source.add_argument("--synth-rows", type=int, default=0, help=f"a synthetic file's rows ({FULL_ROWS:,})")
    p.add_argument("--signal", type=int, default=8, help="with --synth-rows: latent dimensions (8)")
    p.add_argument("--synth-seed", type=int, default=7, help="with --synth-rows: the generator's seed (7)")
    p.add_argument("--name", default=None, help="the data set's name in the table")
    p.add_argument(
        "--workdir", type=Path, default=None, help="build (or reuse) the run here, not in a temp dir"
    )
    p.add_argument(
        "--candidates",
        default=f"{NOTEBOOK},{CDK_JSON},{MAKE_RUN}",
        help="comma-separated names (CANDIDATES, cdk.json, make-run) or @file.json of {name: table}",
    )
    p.add_argument("--grid", nargs="*", default=[], metavar="KEY=V1,V2", help="every combination over --base")
    p.add_argument(
        "--rule", nargs="*", default=[], metavar="KEY=V1,V2", help="steps=S1,S2 [epochs=E1,E2] over --base"
    )
    p.add_argument(
        "--rule-lr", action="store_true", help="--rule: learning rates scaled with mini_batch_size"
    )
    p.add_argument("--base", default=CDK_JSON, help="--grid's and --rule's table: a name or a JSON object")
    p.add_argument("--no-test", action="store_true", help="validation only: never read the test shard")
    p.add_argument(
        "--tested",
        default=f"{NOTEBOOK},{CDK_JSON},{MAKE_RUN}",
        help="the settings whose test figures are reported, by name (make-run only while LOCAL_FM exists)",
    )
    p.add_argument("--seeds", default="0", help="FM seeds, comma-separated (the first one's figures shown)")
    p.add_argument("--samples", type=int, default=1000, help="bootstrap samples (1000, as the gate)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    config = load_config(default_context())
    known = named(config)
    if MAKE_RUN not in known and args.candidates == parser().get_default("candidates"):
        args.candidates = f"{NOTEBOOK},{CDK_JSON}"
    candidates = candidates_from(args, known)
    seeds = tuple(int(seed) for seed in args.seeds.split(","))
    margin = config.gate_min_improvement

    with tempfile.TemporaryDirectory(prefix="fm-defaults-", dir=os.environ.get("TMPDIR", "/tmp")) as temp:
        work = args.workdir or Path(temp)
        work.mkdir(parents=True, exist_ok=True)
        began = time.perf_counter()
        data = load_data(args, config, work)
        if args.rule:
            train_rows = int(data.manifest["counts"]["train_rows"])
            base = base_table(args, known)
            candidates = checked(rules(base, args.rule, train_rows, scale_lr=args.rule_lr))
        elif BY_ROWS_PER_CUSTOMER in args.candidates.split(","):
            candidates = checked({**candidates, BY_ROWS_PER_CUSTOMER: by_rows_per_customer(data.manifest)})
        measured: list[Measured] = []
        for name, table in candidates.items():
            measured.append(measure(name, table, data, seeds=seeds, samples=args.samples))
            m = measured[-1]
            print(
                f"[{time.perf_counter() - began:5.0f} s] {name}: "
                f"validation {m.validation.candidate_rmse:.4f} vs bias {m.validation.other_rmse:.4f}, "
                f"{interval(m.validation)} ({m.seconds:.0f} s)",
                file=sys.stderr,
                flush=True,
            )

        tested: list[tuple[str, dict[str, Any], PairedDifference, float]] = []
        if not args.no_test:
            test = read_shards(data.prep / layout.in_prep(layout.TEST))
            bias_test = np.load(data.prep / layout.in_prep(layout.BASELINES_TEST))[
                :, BASELINE_COLUMNS.index("bias")
            ]
            finals = [(n, known[n]) for n in args.tested.split(",") if n in known]
            for label, table in finals:
                if any(table == t[1] for t in tested):
                    continue
                same = next((m for m in measured if m.hyperparameters == table), None)
                if same is None:
                    same = measure(label, table, data, seeds=seeds[:1], samples=args.samples)
                scores = clip(predict(same.model, *csr(test)))
                figure = paired_difference(test.labels, scores, bias_test, samples=args.samples)
                tested.append((label, table, figure, same.seconds))
        seconds = time.perf_counter() - began
    print_tables(data, measured, tested, args=args, margin=margin, seconds=seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
