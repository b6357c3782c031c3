"""Ranking quality of FM's top-N against most-popular and random, with paired bootstrap 95 % intervals.

    .venv/bin/python bench/ranking_quality.py                        # the bundled MovieLens slice
    .venv/bin/python bench/ranking_quality.py --input DIR --name X   # any folder of Amazon-schema TSV files

Builds a run in a temporary folder the way the local twin does: the prep job (cdk.json's thresholds and FM
instance count), then the local FM trainer with cdk.json's hyperparameters and the Makefile's LOCAL_FM
overrides if it sets any (what `make run` trains). Each customer's test review (the latest) is ranked among
the products the customer had not reviewed in train (fm/ranking.py): Recall@10 and NDCG@10 of FM's top-N,
of the most-popular ranking and of a random one.

The blend FM score + w log(1 + reviews) gets its w on a validation split, never on the test rows: each
customer's latest train review is held out (fm.ranking.validation_split), FM is trained again on the rest
with the same hyperparameters, and w maximizes NDCG@10 on the held-out reviews; the test figure of the
run's model with that w is reported once. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from bench.make_run import local_fm_overrides
from contract.features import FeatureLayout
from contract.index import load_index
from fm.artifact import FmParameters
from fm.factors import ServingFactors, build_factors, reviewed_products
from fm.ranking import (
    HeldOut,
    Interval,
    bootstrap_means,
    choose_popularity_weight,
    expected_metrics,
    fm_ranks,
    held_out,
    popularity_ranks,
    random_ranks,
    validation_split,
)
from fm.recordio import SparseRecords, write_sparse_records
from fm.topn import iter_top_n
from jobs.prep.job import PrepConfig, run_prep
from jobs.prep.prepare import Thresholds
from local import movielens
from local.fm import read_shards, train_fm
from stacks.config import default_context, load_config

ROOT = Path(__file__).resolve().parents[1]
CUTOFF = 10


def shard_bytes(records: SparseRecords) -> bytes:
    out = io.BytesIO()
    write_sparse_records(
        out, records.indptr, records.indices, records.values, records.labels, records.feature_dim
    )
    return out.getvalue()


def train(records: SparseRecords, hyperparameters: dict[str, Any], seed: int) -> FmParameters:
    model = train_fm(records, None, hyperparameters, seed=seed).model
    return FmParameters(model.w0, model.w, model.v)


def factors_for(params: FmParameters, features: FeatureLayout, records: SparseRecords) -> ServingFactors:
    return build_factors(params, features, reviewed_products([shard_bytes(records)], features))


def recommended_popularity(factors: ServingFactors, held: HeldOut, weight: float) -> float:
    """Median train review count of the products in the customers' top 10."""
    rows = [
        batch.rows[batch.rows >= 0]
        for batch in iter_top_n(factors, held.customers, held.times, k=CUTOFF, popularity_weight=weight)
    ]
    return float(np.median(factors.popularity[np.concatenate(rows)]))


def popular_popularity(factors: ServingFactors, held: HeldOut) -> float:
    """Median train review count of the products in the customers' most-popular top 10 (reviewed excluded)."""
    rows = []
    for customer in held.customers.tolist():
        keys = factors.popularity.astype(np.float64)
        keys[factors.reviewed(customer)] = -np.inf
        rows.append(np.lexsort((np.arange(keys.shape[0]), -keys))[:CUTOFF])
    return float(np.median(factors.popularity[np.concatenate(rows)]))


def cell(interval: Interval) -> str:
    return f"{interval.mean:.4f} [{interval.low:.4f}, {interval.high:.4f}]"


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915 (one measurement, step by step)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--input", type=Path, default=None, help="TSV folder (default: the bundled MovieLens)"
    )
    parser.add_argument("--name", default="bundled MovieLens ml-latest-small", help="the data set's name")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the run here (default: a temp dir)")
    parser.add_argument("--seed", type=int, default=0, help="FM's initialization and epoch order")
    parser.add_argument("--samples", type=int, default=1000, help="bootstrap samples")
    args = parser.parse_args(argv)

    config = load_config(default_context())
    with tempfile.TemporaryDirectory(prefix="ranking-") as temp:
        work = args.workdir or Path(temp)
        source = args.input
        if source is None:
            source = work / "input"
            movielens.convert(ROOT / "data" / "movielens-latest-small", source / "movielens.tsv")
        started = time.perf_counter()
        prep = work / "prep"
        manifest = run_prep(
            source,
            prep,
            PrepConfig(
                thresholds=Thresholds(config.min_customer_reviews, config.min_product_reviews),
                max_bad_row_fraction=config.max_bad_row_fraction,
                fm_instance_count=config.fm_instance_count,
            ),
            log=lambda _: None,
        )
        index = load_index(prep / "index")
        features = index.features
        hyperparameters: dict[str, Any] = {
            **config.fm_hyperparameters,
            **(local_fm_overrides() or {}),
            "feature_dim": features.feature_dim,
            "predictor_type": "regressor",
        }
        train_records = read_shards(prep / "train")
        test = held_out(read_shards(prep / "test"), features)

        # The run's model, trained on all of train: the figures on the test rows.
        params = train(train_records, hyperparameters, args.seed)
        factors = factors_for(params, features, train_records)

        # The validation split chooses the blend weight.
        rest, validation_records = validation_split(train_records, features, index.product_ids)
        validation = held_out(validation_records, features)
        params_validation = train(rest, hyperparameters, args.seed)
        factors_validation = factors_for(params_validation, features, rest)
        choice = choose_popularity_weight(
            factors_validation, validation_records, cutoff=CUTOFF, customers=None
        )
        weight, table = choice.weight, choice.table

        fm = fm_ranks(factors, test)
        blend = fm_ranks(factors, test, popularity_weight=weight)
        popular = popularity_ranks(factors, test)
        ranked = {"FM": fm, f"FM + {weight:g} log(1 + reviews)": blend, "most popular": popular}
        ranked["random"] = random_ranks(fm)
        values = {
            f"{name}|{metric}": v
            for name, r in ranked.items()
            for metric, v in expected_metrics(r, CUTOFF).items()
        }
        blend_name = f"FM + {weight:g} log(1 + reviews)"
        compared = [("FM", "most popular"), (blend_name, "most popular"), (blend_name, "FM")]
        pairs = [
            (f"{a}|{metric}", f"{b}|{metric}")
            for a, b in compared
            for metric in (f"recall@{CUTOFF}", f"ndcg@{CUTOFF}")
        ]
        intervals = bootstrap_means(values, samples=args.samples, seed=args.seed, differences=pairs)
        medians = {
            "FM": recommended_popularity(factors, test, 0.0),
            f"FM + {weight:g} log(1 + reviews)": recommended_popularity(factors, test, weight),
            "most popular": popular_popularity(factors, test),
        }
        held_median = float(np.median(factors.popularity[test.products]))
        seconds = time.perf_counter() - started

    print(f"## {args.name}\n")
    print(
        f"{features.num_customers:,} customers, {features.num_products:,} products, "
        f"{manifest['counts']['train_rows']:,} train rows, {test.customers.shape[0]:,} test customers; "
        f"FM {json.dumps({k: v for k, v in hyperparameters.items() if k != 'feature_dim'})}; "
        f"{args.samples} paired bootstrap samples; {seconds:.0f} s\n"
    )
    header = f"Recall@{CUTOFF} [95 % CI] | NDCG@{CUTOFF} [95 % CI] | median reviews in its top {CUTOFF}"
    print(f"| ranking | {header} |")
    print("|---|---|---|---|")
    for name in ranked:
        recall = intervals[f"{name}|recall@{CUTOFF}"]
        ndcg = intervals[f"{name}|ndcg@{CUTOFF}"]
        median = f"{medians[name]:,.0f}" if name in medians else "-"
        print(f"| {name} | {cell(recall)} | {cell(ndcg)} | {median} |")
    for a, b in compared:
        recall = intervals[f"{a}|recall@{CUTOFF} - {b}|recall@{CUTOFF}"]
        ndcg = intervals[f"{a}|ndcg@{CUTOFF} - {b}|ndcg@{CUTOFF}"]
        print(f"| {a} minus {b} | {cell(recall)} | {cell(ndcg)} | |")
    print(f"\nThe held-out products have a median of {held_median:,.0f} train reviews.\n")
    print(
        f"Validation ({validation.customers.shape[0]:,} customers' latest train review held out, FM "
        f"retrained on the other {rest.labels.shape[0]:,} rows), chosen w = {weight:g}:\n"
    )
    print("| w | " + " | ".join(f"{w:g}" for w in table) + " |")
    print("|---|" + "---|" * len(table))
    for metric in (f"recall@{CUTOFF}", f"ndcg@{CUTOFF}"):
        print(f"| {metric} | " + " | ".join(f"{table[w][metric]:.4f}" for w in table) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
