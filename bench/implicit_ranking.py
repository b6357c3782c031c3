"""Top-N from FM trained on the implicit "reviewed" signal (SageMaker FM's binary_classifier with sampled
negatives) against the rating FM + popularity blend, most-popular and random, on the same test rows.

    .venv/bin/python -m jobs.prep --input DIR --output /tmp/x/prep      # or a local run's runs/<id>/prep/
    .venv/bin/python bench/implicit_ranking.py --prep /tmp/x/prep --name "bundled MovieLens"

DIR: a folder of Amazon-schema TSV files: local.movielens.convert of data/movielens-latest-small for the
bundled data, bench/movielens100k.py's output for MovieLens 100k. The default grid (2 x 3 x 3 settings,
15 epochs each) takes about 5 to 10 minutes per data set of 100k reviews on this machine.

Implicit training rows: every train review is a positive (label 1), with its customer, product and time
value as prep coded them; each positive gets `negatives` products the customer did not review in train
(label 0, same customer and time value), drawn with probability proportional to max(1, train reviews)^beta
(beta 0: uniform), a fresh seeded draw per setting. The local FM trainer's binary classifier learns them
with logistic loss; top-N ranks a customer's unreviewed products by its output (the logit, in the order of
its sigmoid score), through fm.factors and fm.ranking as the rating model's top-N is ranked.

Every choice is made on prep's validation rows (each customer's validation product ranked among the
products the customer did not review in train; popularity counts train reviews): the implicit model's
negatives per positive, beta, factors_lr and epochs (NDCG@10 after each epoch), and the rating model's
blend weight (fm.ranking.choose_popularity_weight). The chosen models (trained on train) are then judged
once on the test rows: each customer's test product ranked among the products not reviewed in train or
validation, popularity counting both. Paired bootstrap 95 % intervals (the same resampled customers for
every ranking) of Recall@10 and NDCG@10 and of each ranking's difference from most-popular. Prints
Markdown.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from bench.make_run import local_fm_overrides
from contract.features import NONZEROS_PER_ROW, FeatureLayout
from contract.index import load_index
from fm.artifact import FmParameters
from fm.factors import ReviewedProducts, build_factors, reviewed_products
from fm.ranking import (
    Interval,
    Ranks,
    bootstrap_means,
    choose_popularity_weight,
    expected_metrics,
    fm_ranks,
    held_out,
    popularity_ranks,
    random_ranks,
)
from fm.recordio import SparseRecords
from local.fm import read_shards, train_fm
from stacks.config import default_context, load_config

ROOT = Path(__file__).resolve().parents[1]
CUTOFF = 10
NDCG = f"ndcg@{CUTOFF}"
RECALL = f"recall@{CUTOFF}"
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Setting:
    negatives: int
    beta: float
    factors_lr: float

    def label(self) -> str:
        return f"N={self.negatives}, beta={self.beta:g}, factors_lr={self.factors_lr:g}"


def shard_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def implicit_rows(
    train: SparseRecords,
    features: FeatureLayout,
    reviewed: ReviewedProducts,
    *,
    negatives: int,
    beta: float,
    seed: int,
) -> SparseRecords:
    """Every train row as a positive (label 1) and `negatives` sampled unreviewed products per positive
    (label 0) with the positive's customer and time value; draws that hit a reviewed product are drawn
    again (up to 20 rounds; what is still reviewed then is dropped)."""
    counts = np.diff(train.indptr)
    if bool((counts != NONZEROS_PER_ROW).any()):
        raise ValueError("a train row does not hold exactly (user, item, time): not a prep row")
    keys = train.indices.reshape(-1, NONZEROS_PER_ROW)
    values = train.values.reshape(-1, NONZEROS_PER_ROW)
    n, m = features.num_customers, features.num_products
    customers = keys[:, 0].astype(np.int64)
    weights = np.maximum(reviewed.popularity.astype(np.float64), 1.0) ** beta
    weights /= weights.sum()
    pairs = np.sort(customers * m + (keys[:, 1] - n))
    rng = np.random.default_rng(seed)
    owner = np.repeat(np.arange(customers.shape[0], dtype=np.int64), negatives)
    drawn = rng.choice(m, size=owner.shape[0], p=weights).astype(np.int64)
    for _ in range(20):
        codes = customers[owner] * m + drawn
        at = np.minimum(np.searchsorted(pairs, codes), pairs.shape[0] - 1)
        hit = pairs[at] == codes
        if not bool(hit.any()):
            break
        drawn[hit] = rng.choice(m, size=int(hit.sum()), p=weights)
    codes = customers[owner] * m + drawn
    at = np.minimum(np.searchsorted(pairs, codes), pairs.shape[0] - 1)
    keep = pairs[at] != codes
    owner, drawn = owner[keep], drawn[keep]
    neg_keys = np.stack([customers[owner], n + drawn, keys[owner, 2]], axis=1)
    neg_values = np.stack([values[owner, 0], values[owner, 1], values[owner, 2]], axis=1)
    all_keys = np.concatenate([keys, neg_keys]).reshape(-1)
    all_values = np.concatenate([values, neg_values]).reshape(-1).astype(np.float32)
    labels = np.concatenate([np.ones(keys.shape[0]), np.zeros(owner.shape[0])]).astype(np.float32)
    indptr = np.arange(0, all_keys.shape[0] + 1, NONZEROS_PER_ROW, dtype=np.int64)
    return SparseRecords(indptr, all_keys.astype(np.int64), all_values, labels, train.feature_dim)


def copy_params(model: FmParameters) -> FmParameters:
    return FmParameters(float(model.w0), model.w.copy(), model.v.copy())


def cell(interval: Interval) -> str:
    return f"{interval.mean:.4f} [{interval.low:.4f}, {interval.high:.4f}]"


def main(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0915 (one measurement, step by step)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--prep", type=Path, required=True, help="a prep run folder (train/, validation/, test/)"
    )
    parser.add_argument("--name", default="data set", help="the data set's name, for the heading")
    parser.add_argument("--seed", type=int, default=0, help="FM's initialization, epoch order and negatives")
    parser.add_argument("--samples", type=int, default=1000, help="bootstrap samples")
    parser.add_argument("--epochs", type=int, default=15, help="epochs the implicit model is followed for")
    parser.add_argument("--negatives", default="1,4", help="negatives per positive to try")
    parser.add_argument("--betas", default="0,0.5,1", help="popularity exponents of the sampler to try")
    parser.add_argument(
        "--factors-lrs", default="0.003,0.01,0.03", help="the implicit model's factors_lr to try"
    )
    parser.add_argument("--num-factors", type=int, default=None, help="default: the rating model's")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    index = load_index(args.prep / "index")
    features = index.features
    train_files = shard_files(args.prep / "train")
    validation_files = shard_files(args.prep / "validation")
    train = read_shards(args.prep / "train")
    validation_records = read_shards(args.prep / "validation")
    validation = held_out(validation_records, features)
    test = held_out(read_shards(args.prep / "test"), features)
    seen_train = reviewed_products(train_files, features)
    seen_test = reviewed_products([*train_files, *validation_files], features)

    config = load_config(default_context())
    rating_hp: dict[str, Any] = {
        **config.fm_hyperparameters,
        **(local_fm_overrides() or {}),
        "feature_dim": features.feature_dim,
        "predictor_type": "regressor",
    }
    rating = train_fm(train, None, rating_hp, seed=args.seed).model
    choice = choose_popularity_weight(
        build_factors(rating, features, seen_train), validation_records, cutoff=CUTOFF, customers=None
    )

    # The implicit model: every setting followed epoch by epoch on validation.
    base_hp: dict[str, Any] = {
        **rating_hp,
        "predictor_type": "binary_classifier",
        "epochs": args.epochs,
    }
    if args.num_factors is not None:
        base_hp["num_factors"] = args.num_factors
    grid = [
        Setting(int(n), float(b), float(lr))
        for n in args.negatives.split(",")
        for b in args.betas.split(",")
        for lr in args.factors_lrs.split(",")
    ]
    curves: dict[Setting, list[float]] = {}
    best: tuple[float, Setting, int, FmParameters] | None = None
    rows_of: dict[Setting, int] = {}
    for setting in grid:
        rows = implicit_rows(
            train, features, seen_train, negatives=setting.negatives, beta=setting.beta, seed=args.seed
        )
        rows_of[setting] = rows.labels.shape[0]
        curve: list[float] = []

        def on_epoch(
            epoch: int, model: FmParameters, setting: Setting = setting, curve: list[float] = curve
        ) -> None:
            nonlocal best
            ranks = fm_ranks(build_factors(model, features, seen_train), validation)
            score = float(expected_metrics(ranks, CUTOFF)[NDCG].mean())
            curve.append(score)
            if best is None or score > best[0]:
                best = (score, setting, epoch, copy_params(model))

        train_fm(
            rows, None, {**base_hp, "factors_lr": setting.factors_lr}, seed=args.seed, epoch_end=on_epoch
        )
        curves[setting] = curve
        print(f"validation {setting.label()}: " + " ".join(f"{v:.4f}" for v in curve), file=sys.stderr)
    assert best is not None
    best_ndcg, best_setting, best_epoch, implicit = best

    # The test rows, once.
    rating_factors = build_factors(rating, features, seen_test)
    implicit_factors = build_factors(implicit, features, seen_test)
    weight = choice.weight
    blend = f"rating FM + {weight:g} log(1 + reviews)"
    ranked: dict[str, Ranks] = {
        "implicit FM (binary classifier)": fm_ranks(implicit_factors, test),
        blend: fm_ranks(rating_factors, test, popularity_weight=weight),
        "rating FM alone": fm_ranks(rating_factors, test),
        "most popular": popularity_ranks(rating_factors, test),
    }
    ranked["random"] = random_ranks(ranked["most popular"])
    values = {
        f"{name}|{metric}": v
        for name, r in ranked.items()
        for metric, v in expected_metrics(r, CUTOFF).items()
    }
    others = [name for name in ranked if name != "most popular"]
    pairs = [(f"{a}|{metric}", f"most popular|{metric}") for a in others for metric in (RECALL, NDCG)]
    intervals = bootstrap_means(values, samples=args.samples, seed=args.seed, differences=pairs)
    seconds = time.perf_counter() - started

    print(f"## {args.name}\n")
    print(
        f"{features.num_customers:,} customers, {features.num_products:,} products, "
        f"{train.labels.shape[0]:,} train rows, {validation.size:,} validation and {test.size:,} test "
        f"customers; {args.samples} paired bootstrap samples; {seconds:.0f} s.\n"
    )
    shown = json.dumps({k: v for k, v in base_hp.items() if k not in ("feature_dim", "epochs", "factors_lr")})
    print(
        f"Implicit FM chosen on validation: {best_setting.label()}, epochs {best_epoch} "
        f"({rows_of[best_setting]:,} training rows), validation NDCG@{CUTOFF} {best_ndcg:.4f}; other "
        f"hyperparameters {shown}."
        f" Rating FM {json.dumps({k: v for k, v in rating_hp.items() if k != 'feature_dim'})}, blend weight "
        f"{weight:g} chosen on validation (validation NDCG@{CUTOFF} {choice.table[weight][NDCG]:.4f}, "
        f"most popular {choice.most_popular[NDCG]:.4f}).\n"
    )
    print(f"| test rows | Recall@{CUTOFF} [95 % CI] | NDCG@{CUTOFF} [95 % CI] |")
    print("|---|---|---|")
    for name in ranked:
        print(f"| {name} | {cell(intervals[f'{name}|{RECALL}'])} | {cell(intervals[f'{name}|{NDCG}'])} |")
    for name in others:
        recall = intervals[f"{name}|{RECALL} - most popular|{RECALL}"]
        ndcg = intervals[f"{name}|{NDCG} - most popular|{NDCG}"]
        print(f"| {name} minus most popular | {cell(recall)} | {cell(ndcg)} |")
    print(f"\nValidation NDCG@{CUTOFF} of the implicit FM after each epoch:\n")
    print("| setting | " + " | ".join(str(e) for e in range(1, args.epochs + 1)) + " |")
    print("|---|" + "---|" * args.epochs)
    for setting, curve in curves.items():
        print(f"| {setting.label()} | " + " | ".join(f"{v:.4f}" for v in curve) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
