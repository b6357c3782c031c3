"""How much better than the bias baseline can any model be on a run's validation rows, and how much of that
can a model learn from the train rows? The ceiling the FM defaults (bench/fm_defaults.py) are measured
against.

    .venv/bin/python bench/fm_ceiling.py --prep /tmp/fmd/synth4m/prep --synth-rows 4057147      # oracle + ALS
    .venv/bin/python bench/fm_ceiling.py --prep DIR --als k=4,8 lam=0.05,0.1 alpha=1 --sweeps 12   # ALS only

Reads a prep/ folder the pipeline's prep job wrote (bench/fm_defaults.py --workdir builds one). Every figure
is on the validation shard, clipped to the rating range as served, against the bias baseline's validation
predictions (prep/baselines/validation.npy) by the gate's statistic: the paired bootstrap interval of
RMSE(model) / RMSE(bias) - 1 (lambdas/pipeline/paired.py). "passes": at least cdk.json's
gate_min_improvement better with the interval wholly below 0 (the gate's decide_paired rule).

The oracle (with --synth-rows, for a file bench/synth_reviews.py made with the same --signal and
--synth-seed): the generator's hidden model, rebuilt by replaying its draws (synth_reviews.draw) and mapped to
prep's rows through prep/index (customer and product ids). Its rows:
- "oracle E[rating]": the expected rating given the noiseless score m, E[clip(rint(m + noise), 1, 5)], the
  best any predictor can do under squared loss;
- "oracle score": m itself, clipped; "oracle score rounded": clip(rint(m)), as the generator rounds;
- "oracle biases only, E[rating]": the expected rating given the true biases alone (the interaction taken as
  part of the noise): the best a bias model can do;
- "known items, users by ridge": the true item biases and factors held fixed, each customer's bias and factors
  fitted to its train rows by ridge regression with the generator's own prior (the Bayes posterior mean of
  the linear model): what the customer side alone allows at this many ratings per customer.

The learnable model: biased matrix factorization mu + b_u + b_i + <p_u, q_i> by alternating least squares,
biases regularised as the bias baseline (reg_user, reg_item from the manifest, or a grid's) and factors by
lam * n^alpha (items: lam_item, lam by default), n the entity's train rows (alpha 0: uniform L2; alpha 1:
the weighted-lambda ALS-WR of Zhou et al. 2008); bias_alpha 1 regularises the biases by reg * n likewise,
the shape of SageMaker FM's weight decay (applied to a row's weights each time the row is in a
mini-batch). The validation figure after every sweep is kept; the best sweep is reported with its number (a
choice made on validation, as early stopping is). Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import ndtr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from bench.synth_reviews import (
    FULL_ROWS,
    GLOBAL_MEAN,
    NOISE_SD,
    USER_BIAS_SD,
    RatingModel,
    Shape,
    draw,
)
from contract import layout
from contract.documents import BASELINE_COLUMNS
from contract.features import RATING_RANGE
from fm.recordio import SparseRecords
from lambdas.pipeline.paired import PairedDifference, paired_difference
from local.fm import read_shards
from stacks.config import default_context, load_config

THRESHOLDS = (1.5, 2.5, 3.5, 4.5)  # where rint then clip into 1..5 steps up


@dataclass(frozen=True)
class Pairs:
    """Rows as (customer key u, product row i, rating)."""

    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray


@dataclass(frozen=True)
class Prep:
    num_customers: int
    num_products: int
    reg_user: float
    reg_item: float
    train: Pairs
    validation: Pairs
    bias_validation: np.ndarray
    customer_ids: list[str]
    product_ids: list[str]


def pairs(records: SparseRecords, num_customers: int, num_products: int) -> Pairs:
    """Each row's one-hot customer and product keys (the time feature is left out)."""
    rows = records.indptr.shape[0] - 1
    row_of = np.repeat(np.arange(rows), np.diff(records.indptr))
    user = np.full(rows, -1, np.int64)
    item = np.full(rows, -1, np.int64)
    is_user = records.indices < num_customers
    is_item = (records.indices >= num_customers) & (records.indices < num_customers + num_products)
    user[row_of[is_user]] = records.indices[is_user]
    item[row_of[is_item]] = records.indices[is_item] - num_customers
    if (user < 0).any() or (item < 0).any():
        raise SystemExit("fm_ceiling: a row lacks its customer or product key")
    return Pairs(user, item, records.labels.astype(np.float64))


def load_prep(prep: Path) -> Prep:
    manifest = json.loads((prep / "manifest.json").read_text())
    n, m = int(manifest["num_customers"]), int(manifest["num_products"])
    bias = manifest["baselines"]["bias"]

    def ids(name: str) -> list[str]:
        text = (prep / layout.INDEX.removeprefix("prep/") / name).read_text(encoding="utf-8")
        return [line.split("\t", 1)[0] for line in text.split("\n")[:-1]]

    return Prep(
        num_customers=n,
        num_products=m,
        reg_user=float(bias["reg_user"]),
        reg_item=float(bias["reg_item"]),
        train=pairs(read_shards(prep / layout.in_prep(layout.TRAIN)), n, m),
        validation=pairs(read_shards(prep / layout.in_prep(layout.VALIDATION)), n, m),
        bias_validation=np.load(prep / layout.in_prep(layout.BASELINES_VALIDATION))[
            :, BASELINE_COLUMNS.index("bias")
        ],
        customer_ids=ids("customers.tsv"),
        product_ids=ids("products.tsv"),
    )


def clip(scores: np.ndarray) -> np.ndarray:
    low, high = RATING_RANGE
    out: np.ndarray = np.clip(scores, low, high)
    return out


def expected_rating(score: np.ndarray, sd: float | np.ndarray) -> np.ndarray:
    """E[clip(rint(score + N(0, sd)), 1, 5)] = 1 + sum over the steps t of P(score + noise > t)."""
    out: np.ndarray = 1.0 + sum(ndtr((score - t) / sd) for t in THRESHOLDS)
    return out


# ------------------------------------------------------------------------------------- the oracle


@dataclass(frozen=True)
class Hidden:
    """The generator's model mapped to prep's keys: user_of[u] and item_of[i] are the generator's numbers."""

    model: RatingModel
    user_of: np.ndarray
    item_of: np.ndarray


def hidden(prep: Prep, shape: Shape) -> Hidden:
    drawn = draw(shape)
    customer_number = {c: k for k, c in enumerate(drawn.catalog.customer_ids)}
    product_number = {p: k for k, p in enumerate(drawn.catalog.product_ids)}
    try:
        user_of = np.array([customer_number[c] for c in prep.customer_ids], np.int64)
        item_of = np.array([product_number[p] for p in prep.product_ids], np.int64)
    except KeyError as missing:
        raise SystemExit(
            f"fm_ceiling: id {missing} of prep/index is not in the generator's catalog: "
            "--synth-rows, --signal and --synth-seed must be the file's"
        ) from None
    return Hidden(drawn.model, user_of, item_of)


def oracle_rows(prep: Prep, h: Hidden, shape: Shape) -> dict[str, np.ndarray]:
    va = prep.validation
    cust, prod = h.user_of[va.user], h.item_of[va.item]
    score = h.model.mean(cust, prod)
    biases = h.model.mean(cust, prod, interaction=False)
    interaction_sd = float(np.std(score - biases))
    return {
        "oracle E[rating]": expected_rating(score, NOISE_SD),
        "oracle score": clip(score),
        "oracle score rounded": clip(np.rint(score)),
        "oracle biases only, E[rating]": expected_rating(biases, math.hypot(NOISE_SD, interaction_sd)),
        "known items, users by ridge": known_items(prep, h, shape.signal_strength),
    }


def known_items(prep: Prep, h: Hidden, signal_strength: float) -> np.ndarray:
    """Each customer's [b_u, p_u] by ridge on its train rows, the items' b_i and q_i the true ones, the
    prior the generator's (b_u ~ N(0, 0.6^2), p_u ~ N(0, signal_strength^2)): the posterior mean."""
    tr = prep.train
    model = h.model
    items = model.items if model.items is not None else np.zeros((len(model.item_bias), 0))
    prod = h.item_of[tr.item]
    x = np.hstack([np.ones((len(prod), 1)), items[prod]])
    target = tr.rating - GLOBAL_MEAN - model.item_bias[prod]
    k = items.shape[1]
    user_sd = np.r_[USER_BIAS_SD, np.full(k, signal_strength)]
    coef = ridge(tr.user, x, target, prep.num_customers, (NOISE_SD / user_sd) ** 2)
    va = prep.validation
    vprod = h.item_of[va.item]
    vx = np.hstack([np.ones((len(vprod), 1)), items[vprod]])
    return clip(GLOBAL_MEAN + model.item_bias[vprod] + np.einsum("rf,rf->r", coef[va.user], vx))


# ----------------------------------------------------------------------------------------------- ALS


def ridge(owner: np.ndarray, x: np.ndarray, target: np.ndarray, n: int, reg: np.ndarray) -> np.ndarray:
    """For each owner o: argmin sum over its rows (target - x . c)^2 + sum reg[o, f] c_f^2, shape (n, f).
    reg: (f,) for every owner, or (n, f)."""
    f = x.shape[1]
    gram = np.zeros((n, f, f))
    for a, b in itertools.combinations_with_replacement(range(f), 2):
        gram[:, a, b] = np.bincount(owner, weights=x[:, a] * x[:, b], minlength=n)
        gram[:, b, a] = gram[:, a, b]
    rhs = np.stack([np.bincount(owner, weights=x[:, a] * target, minlength=n) for a in range(f)], axis=1)
    diagonal = np.broadcast_to(reg, (n, f))
    gram[:, np.arange(f), np.arange(f)] += diagonal
    solved: np.ndarray = np.linalg.solve(gram, rhs[..., None])[..., 0]
    return solved


@dataclass(frozen=True)
class AlsResult:
    name: str
    best: PairedDifference
    best_sweep: int
    curve: list[float]
    seconds: float


def als(
    prep: Prep,
    *,
    k: int,
    lam: float,
    alpha: float,
    sweeps: int,
    lam_item: float | None = None,
    reg: tuple[float, float],
    bias_alpha: float = 0.0,
    seed: int = 0,
) -> AlsResult:
    """Biased MF by ALS, reg the biases' (user, item); the validation figure after each sweep (users, then
    items, each a ridge)."""
    began = time.perf_counter()
    tr, va = prep.train, prep.validation
    n, m = prep.num_customers, prep.num_products
    mu = float(tr.rating.mean())
    rng = np.random.default_rng(seed)
    user_rows = np.bincount(tr.user, minlength=n).astype(np.float64)
    item_rows = np.bincount(tr.item, minlength=m).astype(np.float64)
    reg_u = np.hstack(
        [
            reg[0] * np.maximum(user_rows, 1.0)[:, None] ** bias_alpha,
            lam * np.maximum(user_rows, 1.0)[:, None] ** alpha * np.ones((1, k)),
        ]
    )
    reg_i = np.hstack(
        [
            reg[1] * np.maximum(item_rows, 1.0)[:, None] ** bias_alpha,
            (lam if lam_item is None else lam_item)
            * np.maximum(item_rows, 1.0)[:, None] ** alpha
            * np.ones((1, k)),
        ]
    )
    item = np.hstack([np.zeros((m, 1)), rng.normal(0.0, 0.1, (m, k))])  # [b_i, q_i]
    user = np.zeros((n, k + 1))  # [b_u, p_u]
    curve: list[float] = []
    best: PairedDifference | None = None
    best_sweep = 0
    for sweep in range(1, sweeps + 1):
        x = np.hstack([np.ones((len(tr.item), 1)), item[tr.item, 1:]])
        user = ridge(tr.user, x, tr.rating - mu - item[tr.item, 0], n, reg_u)
        x = np.hstack([np.ones((len(tr.user), 1)), user[tr.user, 1:]])
        item = ridge(tr.item, x, tr.rating - mu - user[tr.user, 0], m, reg_i)
        scores = clip(
            mu
            + user[va.user, 0]
            + item[va.item, 0]
            + np.einsum("rf,rf->r", user[va.user, 1:], item[va.item, 1:])
        )
        figure = paired_difference(va.rating, scores, prep.bias_validation)
        curve.append(figure.candidate_rmse)
        if best is None or figure.candidate_rmse < best.candidate_rmse:
            best, best_sweep = figure, sweep
    assert best is not None
    lams = f"{lam:g}" if lam_item is None else f"{lam:g} / {lam_item:g}"
    name = f"ALS k {k}, lam {lams}, alpha {alpha:g}, bias reg {reg[0]:g} / {reg[1]:g}" + (
        f" x n^{bias_alpha:g}" if bias_alpha else ""
    )
    return AlsResult(name, best, best_sweep, curve, time.perf_counter() - began)


# ------------------------------------------------------------------------------------------- output


def interval(d: PairedDifference) -> str:
    return f"{d.relative:+.2%} [{d.low:+.2%}, {d.high:+.2%}]"


def passes(d: PairedDifference, margin: float) -> bool:
    return d.relative <= -margin and d.high < 0


def axes(spec: list[str], prep: Prep) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {
        "k": [8.0],
        "lam": [0.1],
        "lam_item": [-1.0],
        "alpha": [1.0],
        "reg_user": [prep.reg_user],
        "reg_item": [prep.reg_item],
        "bias_alpha": [0.0],
    }
    for axis in spec:
        key, _, values = axis.partition("=")
        if key not in out or not values:
            keys = ", ".join(out)
            raise SystemExit(f"fm_ceiling: --als {axis!r}: expected KEY=V1,V2,... with KEY one of {keys}")
        out[key] = [float(v) for v in values.split(",")]
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--prep", type=Path, required=True, help="a prep/ folder (holds manifest.json)")
    p.add_argument("--synth-rows", type=int, default=0, help=f"the oracle: the file's rows ({FULL_ROWS:,})")
    p.add_argument("--signal", type=int, default=8, help="with --synth-rows: latent dimensions (8)")
    p.add_argument("--synth-seed", type=int, default=7, help="with --synth-rows: the generator's seed (7)")
    p.add_argument(
        "--als",
        nargs="*",
        default=None,
        metavar="KEY=V1,V2",
        help="ALS grid: k, lam (users'), lam_item (lam), alpha, reg_user, reg_item (the bias baseline's)",
    )
    p.add_argument("--sweeps", type=int, default=10, help="ALS sweeps (10)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not (args.prep / "manifest.json").is_file():
        raise SystemExit(f"fm_ceiling: {args.prep} holds no manifest.json: not a prep folder")
    margin = load_config(default_context()).gate_min_improvement
    prep = load_prep(args.prep)
    va = prep.validation
    print(
        f"## {args.prep}\n\n{prep.num_customers:,} customers, {prep.num_products:,} products, "
        f"{len(prep.train.rating):,} train rows ({len(prep.train.rating) / prep.num_customers:.1f} per "
        f"customer), {len(va.rating):,} validation rows; gate margin {margin:.0%}\n"
    )
    print("| model | validation RMSE | bias RMSE | model / bias - 1 [95 % CI] | passes | note |")
    print("|---|---|---|---|---|---|")

    def row(name: str, d: PairedDifference, note: str) -> None:
        print(
            f"| {name} | {d.candidate_rmse:.4f} | {d.other_rmse:.4f} | {interval(d)} | "
            f"{'yes' if passes(d, margin) else 'no'} | {note} |",
            flush=True,
        )

    if args.synth_rows:
        shape = Shape(rows=args.synth_rows, seed=args.synth_seed, signal=args.signal)
        for name, scores in oracle_rows(prep, hidden(prep, shape), shape).items():
            row(name, paired_difference(va.rating, scores, prep.bias_validation), "")
    if args.als is not None:
        grid = axes(args.als, prep)
        for k, lam, li, alpha, ru, ri, ba in itertools.product(*grid.values()):
            r = als(
                prep,
                k=int(k),
                lam=lam,
                alpha=alpha,
                sweeps=args.sweeps,
                reg=(ru, ri),
                bias_alpha=ba,
                lam_item=None if li < 0 else li,
            )
            curve = " ".join(f"{c:.4f}" for c in r.curve)
            row(
                r.name,
                r.best,
                f"best sweep {r.best_sweep}/{args.sweeps}; by sweep {curve}; {r.seconds:.0f} s",
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
