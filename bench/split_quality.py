"""What the split picks under the greatest-product-id tie-break and under the split hash (jobs/prep/split.py).

    .venv/bin/python -m bench.split_quality --input DIR [--input DIR ...] [--seed 42]

Each --input is a folder of review files in the Amazon schema (e.g. local/movielens.py's or
bench/movielens100k.py's output). The prep job's own reader and preparation run on it; the split is then
made twice with the job's code, once breaking a date's ties by the greatest product id (the rule it
replaced) and once by the split hash. For the test set and the validation set of each rule it prints:
- ties: the share of customers with more than one product on the date the choice is made;
- popularity: the median number of train reviews of the chosen products, against the same over the
  candidates (a choice uniform among each customer's candidates would match it) and over all kept rows;
- ids: the mean percentile of the chosen product's id among all product ids (byte order; 50 for a
  choice blind to ids), the share of ids by first character, and the chi-square p-value of the chosen
  first characters against a uniform choice among each customer's candidates (the statistic of
  tests/jobs/test_prep_split.py);
- year: the median year in the chosen products' titles ("Title (1995)", MovieLens), if most have one;
- the bias baseline's RMSE on the chosen rows, fitted on that rule's train rows.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import chisquare

from jobs.prep.baselines import BiasSettings, Rows, compute_baselines
from jobs.prep.prepare import Prepared, Thresholds, prepare
from jobs.prep.read import find_input_files, read_reviews
from jobs.prep.split import TieRank, hash_rank, split_rows

YEAR = re.compile(r"\((\d{4})\)\s*$")


def greatest_id_rank(prepared: Prepared) -> TieRank:
    """The replaced tie-break: the greatest product id (byte order) ranks first."""
    order = sorted(range(prepared.num_products), key=lambda i: prepared.product_ids[i].encode())
    id_rank = np.empty(prepared.num_products, dtype=np.uint64)
    id_rank[order] = np.arange(prepared.num_products, dtype=np.uint64)
    top = np.uint64(prepared.num_products)

    def rank(_user: np.ndarray, item: np.ndarray) -> np.ndarray:
        ranked: np.ndarray = top - id_rank[item]
        return ranked

    return rank


@dataclass
class Picked:
    """One set (test or validation) chosen by one rule."""

    rows: np.ndarray  # positions of the chosen rows
    candidates: np.ndarray  # positions of every candidate row (the chosen customers' latest eligible date)


def candidates_of(prepared: Prepared, eligible: np.ndarray, customers: np.ndarray) -> np.ndarray:
    """Rows on each chosen customer's latest eligible date."""
    day = np.where(eligible, prepared.day.astype(np.int64), np.iinfo(np.int64).min)
    latest = np.full(prepared.num_customers, np.iinfo(np.int64).min)
    np.maximum.at(latest, prepared.user, day)
    chosen = np.zeros(prepared.num_customers, dtype=bool)
    chosen[customers] = True
    found: np.ndarray = np.flatnonzero(eligible & (day == latest[prepared.user]) & chosen[prepared.user])
    return found


def split_with(prepared: Prepared, tie_rank: TieRank) -> tuple[dict[str, Picked], np.ndarray]:
    is_test, is_validation, is_train = split_rows(
        user=prepared.user,
        item=prepared.item,
        day=prepared.day,
        rating=prepared.rating,
        num_users=prepared.num_customers,
        tie_rank=tie_rank,
    )
    test = np.flatnonzero(is_test)
    test_item = np.full(prepared.num_customers, -1)
    test_item[prepared.user[test]] = prepared.item[test]
    rest = prepared.item != test_item[prepared.user]
    validation = np.flatnonzero(is_validation)
    everything = np.ones(len(is_test), dtype=bool)
    picked = {
        "test": Picked(test, candidates_of(prepared, everything, prepared.user[test])),
        "validation": Picked(validation, candidates_of(prepared, rest, prepared.user[validation])),
    }
    return picked, is_train


def first_characters(prepared: Prepared) -> list[str]:
    """The first character of each product id (item order); the common ones only, the rest as "other"."""
    firsts = [p[:1] for p in prepared.product_ids]
    counts: dict[str, int] = {}
    for f in firsts:
        counts[f] = counts.get(f, 0) + 1
    common = {f for f, n in counts.items() if n >= 0.02 * len(firsts)}
    return [f if f in common else "other" for f in firsts]


@dataclass
class Row:
    label: str
    figures: dict[str, str]


def describe(
    prepared: Prepared,
    picked: Picked,
    is_train: np.ndarray,
    *,
    id_percentile: np.ndarray,
    first: np.ndarray,
    groups: list[str],
    years: np.ndarray,
    rmse_of: Callable[[np.ndarray], float],
) -> dict[str, str]:
    user, item = prepared.user, prepared.item
    train_reviews = np.bincount(item[is_train], minlength=prepared.num_products)
    chosen_items = item[picked.rows]
    candidate_items = item[picked.candidates]
    # Distinct products per customer among its candidates (a pair reviewed twice on a date is one).
    pairs = np.unique(user[picked.candidates].astype(np.int64) * prepared.num_products + candidate_items)
    distinct = np.bincount(pairs // prepared.num_products, minlength=prepared.num_customers)
    customers = user[picked.rows]
    tied = float(np.mean(distinct[customers] > 1)) if len(customers) else float("nan")

    # Expected first characters under a uniform choice among each customer's distinct candidates.
    pair_user = pairs // prepared.num_products
    pair_item = pairs % prepared.num_products
    weights = 1.0 / distinct[pair_user]
    expected = np.bincount(first[pair_item], weights=weights, minlength=len(groups))
    observed = np.bincount(first[chosen_items], minlength=len(groups)).astype(np.float64)
    keep = expected > 0
    p_value = float(chisquare(observed[keep], expected[keep] * observed.sum() / expected[keep].sum()).pvalue)
    shares = " ".join(
        f"{g}:{100 * o / max(1, observed.sum()):.0f}" for g, o in zip(groups, observed, strict=True)
    )
    chosen_years = years[chosen_items]
    candidate_years = years[candidate_items]
    return {
        "rows": f"{len(picked.rows):,}",
        "ties": f"{100 * tied:.0f} %",
        "pop chosen": f"{np.median(train_reviews[chosen_items]):.0f}",
        "pop cand": f"{np.median(train_reviews[candidate_items]):.0f}",
        "id pct": f"{100 * id_percentile[chosen_items].mean():.0f}",
        "id pct cand": f"{100 * id_percentile[candidate_items].mean():.0f}",
        "year": _median_year(chosen_years),
        "year cand": _median_year(candidate_years),
        "chi2 p": f"{p_value:.2g}",
        "bias RMSE": f"{rmse_of(picked.rows):.4f}",
        "first chars %": shares,
        "_cand_shares": " ".join(
            f"{g}:{100 * e / max(1e-12, expected.sum()):.0f}" for g, e in zip(groups, expected, strict=True)
        ),
    }


def _median_year(years: np.ndarray) -> str:
    known = years[years > 0]
    return f"{np.median(known):.0f}" if len(known) >= 0.9 * len(years) and len(known) else "-"


def measure(folder: Path, seed: int, thresholds: Thresholds) -> None:
    reviews = read_reviews(find_input_files(folder), root=folder)
    prepared = prepare(reviews, thresholds, seed)
    n_ids = prepared.num_products
    order = sorted(range(n_ids), key=lambda i: prepared.product_ids[i].encode())
    id_percentile = np.empty(n_ids)
    id_percentile[order] = (np.arange(n_ids) + 0.5) / n_ids
    firsts = first_characters(prepared)
    groups = sorted(set(firsts))
    first = np.array([groups.index(f) for f in firsts])
    years = np.array([int(m.group(1)) if (m := YEAR.search(t)) else 0 for t in prepared.product_titles])

    population = np.bincount(first[prepared.item], minlength=len(groups))
    print(f"\n== {folder}: {prepared.rows_kept:,} kept rows, N={prepared.num_customers:,}, M={n_ids:,}")
    print(f"seed {seed}; thresholds {thresholds.min_customer_reviews}/{thresholds.min_product_reviews}")
    print(
        "all kept rows: first characters % "
        + " ".join(f"{g}:{100 * n / population.sum():.0f}" for g, n in zip(groups, population, strict=True))
        + f"; median title year {_median_year(years[prepared.item])}"
    )
    table: list[Row] = []
    for label, tie_rank in (
        ("greatest id", greatest_id_rank(prepared)),
        ("hash", hash_rank(prepared.customer_ids, prepared.product_ids, seed)),
    ):
        picked, is_train = split_with(prepared, tie_rank)
        train = Rows(prepared.user[is_train], prepared.item[is_train], prepared.rating[is_train])
        all_train_reviews = np.bincount(prepared.item[is_train], minlength=n_ids)

        def rmse_of(rows: np.ndarray, train: Rows = train) -> float:
            chosen = Rows(prepared.user[rows], prepared.item[rows], prepared.rating[rows])
            baselines, _, _ = compute_baselines(
                train=train,
                test=chosen,
                validation=chosen,
                num_users=prepared.num_customers,
                num_items=n_ids,
                settings=BiasSettings(),
            )
            return baselines["bias"]["rmse"]

        print(
            f"{label}: train rows {int(is_train.sum()):,}; median train reviews of all kept rows' products "
            f"{np.median(all_train_reviews[prepared.item]):.0f}"
        )
        for name, chosen in picked.items():
            figures = describe(
                prepared,
                chosen,
                is_train,
                id_percentile=id_percentile,
                first=first,
                groups=groups,
                years=years,
                rmse_of=rmse_of,
            )
            table.append(Row(f"{name:10} {label}", figures))
    columns = [c for c in table[0].figures if not c.startswith("_") and c != "first chars %"]
    print(f"{'':23}" + "".join(f"{c:>13}" for c in columns))
    for row in table:
        print(f"{row.label:23}" + "".join(f"{row.figures[c]:>13}" for c in columns))
    for row in table:
        print(f"{row.label:23} first chars %: chosen {row.figures['first chars %']}")
        print(f"{'':23}                candidates {row.figures['_cand_shares']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--input", type=Path, action="append", required=True)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--min-customer-reviews", type=int, default=Thresholds().min_customer_reviews)
    parser.add_argument("--min-product-reviews", type=int, default=Thresholds().min_product_reviews)
    args = parser.parse_args(argv)
    thresholds = Thresholds(args.min_customer_reviews, args.min_product_reviews)
    for folder in args.input:
        measure(folder, args.seed, thresholds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
