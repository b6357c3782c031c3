"""The local run's report: report.md with PNG plots, written from the run's results.

Figures are rounded (RMSE to 4 decimals, relative differences to 0.1 %, ranking metrics to 3 decimals);
every difference comes with its paired 95 % bootstrap interval; plots start where the differences show
(RMSE axes span the intervals, not 0..max), and each heading names what its table or plot shows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no screen
import matplotlib.pyplot as plt
import numpy as np
from sklearn.manifold import TSNE

from local.pipeline.evaluation import percent_difference

__all__ = [
    "cold_start_verdict",
    "rmse_axis",
    "title_space_verdict",
    "topn_verdict",
    "warning_lines",
    "write_report",
]

CUTOFF = 10


def rmse_axis(lows: list[float], highs: list[float]) -> tuple[float, float]:
    """The x range of an RMSE plot: the intervals with a margin of a tenth of their span, not from 0, so
    that the differences show."""
    low, high = min(lows), max(highs)
    margin = max((high - low) * 0.1, 1e-3)
    return low - margin, high + margin


def _interval_plot(scores: dict[str, dict[str, float]], title: str, xlabel: str, path: Path) -> None:
    names = list(scores)
    values = [scores[n]["rmse"] for n in names]
    lows = [scores[n]["low"] for n in names]
    highs = [scores[n]["high"] for n in names]
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * len(names) + 1.4))
    ax.errorbar(
        values,
        range(len(names)),
        xerr=[np.subtract(values, lows), np.subtract(highs, values)],
        fmt="o",
        color="#4C72B0",
        capsize=4,
    )
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlim(*rmse_axis(lows, highs))
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _difference_plot(rows: list[tuple[str, float, float, float]], title: str, path: Path) -> None:
    """Relative RMSE differences (candidate / other - 1) with their paired intervals, around zero."""
    names = [r[0] for r in rows]
    values = np.array([r[1] for r in rows]) * 100
    lows = np.array([r[2] for r in rows]) * 100
    highs = np.array([r[3] for r in rows]) * 100
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * len(rows) + 1.4))
    ax.errorbar(values, range(len(rows)), xerr=[values - lows, highs - values], fmt="o", capsize=4)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(rows)), names)
    ax.invert_yaxis()
    ax.set_xlabel("relative RMSE difference, % (negative: FM better), paired 95 % interval")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _curves(epochs: list[dict[str, Any]], path: Path) -> None:
    x = [e["epoch"] for e in epochs]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(x, [e["train_rmse"] for e in epochs], marker="o", label="train rows")
    if all(e["test_rmse"] is not None for e in epochs):
        ax.plot(x, [e["test_rmse"] for e in epochs], marker="o", label="validation rows (FM's test channel)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("RMSE")
    ax.set_title("FM training: RMSE per epoch on train and validation rows")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _title_map(tokens: list[str], vectors: list[list[float]], path: Path) -> None:
    points = np.asarray(vectors, dtype=np.float64)
    perplexity = max(2.0, min(30.0, (len(points) - 1) / 3))
    xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=0).fit_transform(points)
    fig, ax = plt.subplots(figsize=(14, 12))
    ax.scatter(xy[:, 0], xy[:, 1], s=8, color="#4C72B0")
    for (x, y), token in zip(xy, tokens, strict=True):
        ax.annotate(token[:40], (x, y), fontsize=7, alpha=0.8)
    ax.set_title(f"t-SNE of the title vectors of the {len(tokens)} most reviewed products")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _rmse_cell(score: dict[str, float] | None) -> str:
    if score is None:
        return "n/a"
    return f"{score['rmse']:.4f} [{score['low']:.4f}, {score['high']:.4f}]"


def _side_by_side(by_split: dict[str, Any]) -> list[str]:
    validation, test = by_split["validation"], by_split["test"]
    lines = [
        f"| model | validation RMSE [95 % interval] ({validation['rows']:,} rows) "
        f"| test RMSE [95 % interval] ({test['rows']:,} rows) |",
        "|---|---|---|",
    ]
    for name in test["rmse"]:
        lines.append(
            f"| {name} | {_rmse_cell(validation['rmse'].get(name))} | {_rmse_cell(test['rmse'][name])} |"
        )
    lines += [
        "",
        "| difference (relative RMSE, negative: FM better) | validation [paired 95 % interval] "
        "| test [paired 95 % interval] |",
        "|---|---|---|",
    ]
    for name, difference in test["differences"].items():
        other = validation["differences"].get(name)
        cell = "n/a" if other is None else percent_difference(other)
        lines.append(f"| {name} | {cell} | {percent_difference(difference)} |")
    return lines


def _violations(by_split: dict[str, Any]) -> list[str]:
    lines = [
        "| split | rows | below 1 | above 5 | lowest | highest |",
        "|---|---|---|---|---|---|",
    ]
    for split, v in by_split.items():
        lines.append(
            f"| {split} | {v['rows']:,} | {v['below']:,} | {v['above']:,} | {v['min']:.3f} | {v['max']:.3f} |"
        )
    return lines


def _gate(gate: dict[str, Any], deployed: bool, record: str) -> list[str]:
    lines = [
        f"Decision: **{'deploy' if gate['deploy'] else 'reject'}** "
        f"({gate.get('test_rows', 0):,} test rows; paired bootstrap, {gate['bootstrap']['samples']:,} "
        f"resamples, seed {gate['bootstrap']['seed']}).",
        "",
        "| against | rows | FM test RMSE | its RMSE | relative difference [95 % interval] | passed |",
        "|---|---|---|---|---|---|",
    ]
    for c in gate.get("versus", []):
        lines.append(
            f"| {c['against']} | {c['rows']:,} | {c['candidate_rmse']:.4f} | {c['other_rmse']:.4f} | "
            f"{percent_difference(c)} | {'yes' if c['passed'] else '**no**'} |"
        )
    lines += ["", "Reasons:", "", *[f"- {reason}" for reason in gate["reasons"]], ""]
    if deployed:
        lines.append(f"The run is deployed: `{record}` names it.")
    else:
        lines.append(
            f"The run is **not deployed**: `{record}` is left as it was; the deployed serving is unchanged."
        )
    return [*lines, ""]


def topn_verdict(test: dict[str, Any]) -> str:
    """Whether FM's top-N beats most-popular on the test rows, from the paired intervals of NDCG@10."""
    metric = f"ndcg@{test['cutoff']}"
    said = []
    for name, label in (
        ("fm", "FM's top-N alone"),
        ("fm_popularity", "FM + popularity (the served ranking)"),
    ):
        interval = test["differences"][f"{name} - most_popular"][metric]
        low, high = interval["interval"]
        if low > 0:
            verdict = "beats most-popular"
        elif high < 0:
            verdict = "loses to most-popular"
        else:
            verdict = "does not differ measurably from most-popular"
        said.append(
            f"{label} {verdict} on {metric.upper()} ({interval['mean']:+.3f} [{low:+.3f}, {high:+.3f}])"
        )
    return "; ".join(said) + "."


RANKING_NAMES = {
    "fm": "FM alone",
    "fm_popularity": "FM + w log(1 + reviews)",
    "most_popular": "most popular",
    "random": "random",
}


def _metric_cell(figure: dict[str, Any]) -> str:
    low, high = figure["interval"]
    return f"{figure['mean']:.3f} [{low:.3f}, {high:.3f}]"


def _ranking(ranking: dict[str, Any]) -> list[str]:
    test = ranking.get("test")
    if not test or not test["rankings"]:
        return ["No test rows to rank.", ""]
    recall, ndcg = f"recall@{test['cutoff']}", f"ndcg@{test['cutoff']}"
    lines = [
        f"Each customer's test product ranked among the products the customer had not reviewed in train + "
        f"validation ({test['rows']:,} of {test['test_rows']:,} test rows); popularity counted on train + "
        f"validation. The weight w = {test['popularity_weight']:g} was chosen on the validation rows "
        f"({ranking.get('chosen_on', 'default')}, {ranking.get('rows', 0):,} rows, metric "
        f"{ranking.get('metric', ndcg)}). Means with 95 % bootstrap intervals over customers.",
        "",
        f"| ranking | Recall@{test['cutoff']} | NDCG@{test['cutoff']} |",
        "|---|---|---|",
        *[
            f"| {RANKING_NAMES[name]} | {_metric_cell(figures[recall])} | {_metric_cell(figures[ndcg])} |"
            for name, figures in test["rankings"].items()
        ],
        "",
        "| paired difference | Recall | NDCG |",
        "|---|---|---|",
        *[
            f"| {' - '.join(RANKING_NAMES[part] for part in name.split(' - '))} | "
            f"{_metric_cell(figures[recall])} | {_metric_cell(figures[ndcg])} |"
            for name, figures in test["differences"].items()
        ],
        "",
        f"**{topn_verdict(test)}**",
        "",
        "Why FM alone ranks poorly: it is trained on ratings, so its top-N is the products a customer would "
        "rate highest, not the ones the customer is likely to choose; the served ranking adds "
        "w log(1 + reviews), the standard remedy, with w chosen on the validation rows.",
        "",
    ]
    return lines


def _tuning(tuning: dict[str, Any]) -> list[str]:
    lines = [
        f"Random search, {len(tuning['trials'])} trials, seed {tuning['seed']}, each trial the local trainer "
        f"scored on the validation rows (the objective, as SageMaker's tuning job takes FM's test:rmse on "
        f"the validation channel); ranges from {tuning['ranges_from']}. Best: trial {tuning['best']['trial']}"
        f", validation RMSE {tuning['best']['validation_rmse']:.4f}; it is the model trained below.",
        "",
        "| trial | " + " | ".join(tuning["ranges"]) + " | validation RMSE |",
        "|---|" + "---|" * len(tuning["ranges"]) + "---|",
    ]
    for trial in tuning["trials"]:
        values = " | ".join(f"{trial['hyperparameters'][name]:.4g}" for name in tuning["ranges"])
        rmse = "diverged" if trial["validation_rmse"] is None else f"{trial['validation_rmse']:.4f}"
        lines.append(f"| {trial['trial']} | {values} | {rmse} |")
    return [*lines, ""]


def _cold_start(c: dict[str, Any], folder: Path) -> list[str]:
    _interval_plot(
        c["rmse"],
        "Cold start: RMSE on the held-out products' test rows",
        "RMSE (95 % bootstrap interval)",
        folder / "cold_start.png",
    )
    versus = c.get("versus_user_bias")
    shrinkage = c["shrinkage"]
    nonsense = c["nonsense_title"]["answer"]
    lines = [
        f"{c['held_out_products']} products of the test set were held out entirely: from FM's training rows, "
        "the validation rows and the title corpus. Both models were trained again without them. A cold "
        "start is the user-bias prediction (mu + b_u, fitted on the experiment's train rows) plus the title "
        "neighbours' item difference in FM's space, shrunk by lambda = S / (S + alpha); the shrinkage was "
        "chosen on the experiment's validation rows of the products whose titles its corpus left out, their "
        "vectors built from n-grams as a new title's are "
        f"(alpha {shrinkage['alpha']:g}, min_similarity "
        f"{shrinkage['min_similarity']:g}, {shrinkage['chosen_on']}"
        + _versus_base(shrinkage.get("versus_base"))
        + f"); then each of their "
        f"{c['held_out_test_rows']} test rows was asked for through the predict shim with the product's "
        f"title only. Answered as cold starts: {c['answered']}; answered from {c['answered_from']}.",
        "",
        "| model | RMSE [95 % interval] | rows |",
        "|---|---|---|",
        *[f"| {n} | {_rmse_cell(s)} | {s['n']:,} |" for n, s in c["rmse"].items()],
        "",
    ]
    if versus is not None:
        verdict = cold_start_verdict(versus, c["answered_from"])
        lines += [
            f"**Cold start vs the user-bias prediction, same {versus['rows']:,} rows: "
            f"{percent_difference(versus)} (relative RMSE, paired 95 % "
            f"interval): {verdict} the user-bias prediction.**",
            "",
        ]
    lines += [
        "![cold start](cold_start.png)",
        "",
        f"A nonsense title (`{c['nonsense_title']['title']}`): answered from "
        f"`{nonsense.get('answered_from')}`, rating {nonsense.get('rating', float('nan')):.3f}"
        + (f", flagged: {nonsense['reason']['message']}" if "reason" in nonsense else "")
        + ".",
        "",
    ]
    return lines


def cold_start_verdict(versus: dict[str, Any], answered_from: dict[str, int]) -> str:
    """How the cold start compares with the user-bias prediction: by the paired interval, or "the same
    answers as" when no answer used a neighbour (each one is the user-bias prediction)."""
    if set(answered_from) == {"customer_only"}:
        return "the same answers as"
    if versus["interval"][1] < 0:
        return "better than"
    if versus["interval"][0] > 0:
        return "worse than"
    return "not measurably different from"


def _versus_base(versus: dict[str, Any] | None) -> str:
    """The validation evidence for trusting the neighbours, or why none are trusted."""
    if versus is None:
        return "; no shrinkage beat the user-bias prediction there by a paired interval wholly below 0"
    return f"; on those rows {percent_difference(versus)} vs the user-bias prediction"


def _space(space: dict[str, Any]) -> list[str]:
    if "nearest_neighbours" not in space:
        return []
    near, chance = space["nearest_neighbours"], space["random_pairs"]

    def cell(value: float | None, percent: bool = True) -> str:
        if value is None:
            return "n/a"
        return f"{value * 100:.1f} %" if percent else f"{value:.1f}"

    lines = [
        "### What the title space encodes",
        "",
        f"Each of the {space['titles']:,} known titles with a vector and its nearest other title (cosine), "
        f"against {chance['pairs']:,} random pairs of titles (seed {space['random_seed']}):",
        "",
        "| pairs | same year | same decade | mean year gap | a shared word |",
        "|---|---|---|---|---|",
        f"| nearest neighbours | {cell(near['same_year'])} | {cell(near['same_decade'])} | "
        f"{cell(near['mean_year_gap'], percent=False)} | {cell(near['shared_word'])} |",
        f"| random pairs (chance) | {cell(chance['same_year'])} | {cell(chance['same_decade'])} | "
        f"{cell(chance['mean_year_gap'], percent=False)} | {cell(chance['shared_word'])} |",
        "",
    ]
    verdict = title_space_verdict(space)
    return [*lines, verdict, ""] if verdict else lines


def title_space_verdict(space: dict[str, Any]) -> str | None:
    """What the title space encodes most, by the share of nearest-neighbour pairs that have a property
    beyond the share of random pairs that have it (percentage points: a ratio of two tiny shares would
    crown a property that almost no pair has)."""
    near, chance = space.get("nearest_neighbours"), space.get("random_pairs")
    if near is None or chance is None:
        return None
    excess = {}
    for name, label in (("same_year", "the release year"), ("shared_word", "a word of the title")):
        if near[name] is not None and chance[name] is not None:
            excess[label] = (near[name], chance[name])
    if not excess:
        return None
    best = max(excess, key=lambda label: excess[label][0] - excess[label][1])
    said = ", ".join(
        f"{label} in {shares[0] * 100:.1f} % (random pairs {shares[1] * 100:.1f} %)"
        for label, shares in excess.items()
    )
    return f"Nearest neighbours share {said}: on this data the title space encodes {best} most of all."


def _last_epoch(epochs: list[dict[str, Any]]) -> str:
    last = epochs[-1]
    validation = "no validation rows" if last["test_rmse"] is None else f"validation {last['test_rmse']:.4f}"
    return (
        f"After epoch {last['epoch']}: RMSE train {last['train_rmse']:.4f}, {validation} (FM's test:rmse: "
        "its test channel is the validation shard). No early stopping: the number of epochs is a "
        "hyperparameter, chosen on the validation rows by --tune when asked."
    )


def warning_lines(manifest: dict[str, Any]) -> list[str]:
    """The prep job's warnings (manifest "warnings"), each a block quote in bold, at the top of the report."""
    lines = []
    for warning in manifest.get("warnings", []):
        lines += [f"> **WARNING: {warning}**", ""]
    return lines


def write_report(folder: Path, r: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    m = r["manifest"]
    counts = m["counts"]
    by_split = r["rmse_by_split"]
    _interval_plot(
        by_split["test"]["rmse"],
        "Test RMSE per model",
        "test RMSE (95 % bootstrap interval)",
        folder / "rmse.png",
    )
    difference_rows = [
        (f"{name.split(' vs ')[1]} ({split})", d["relative"], *d["interval"])
        for split in ("validation", "test")
        for name, d in by_split[split]["differences"].items()
    ]
    _difference_plot(difference_rows, "FM's RMSE relative to each other model", folder / "differences.png")
    _curves(r["fm_metrics"]["epochs"], folder / "training_curves.png")
    lines = [f"# loftrec local run {r['run_id']}", "", *warning_lines(m)]
    lines += [
        f"Input: `{r['input']}`. Every figure below is measured on this run; the run folder holds its files. "
        "Every choice (tuning, the blend weight, the shrinkage) was made on the validation rows; the test "
        "rows give the gate and the final figures only.",
        "",
        "## Quality gate (test rows, paired)",
        "",
        *_gate(r["gate"], r["deployed"], r["record"]),
        "## RMSE on validation and test rows",
        "",
        "Validation: one review per customer with enough reviews, before the test review; test: each "
        "customer's latest review (ties by a seeded hash). FM as served (clipped to 1..5) and raw. "
        "Intervals: 95 % percentile bootstrap over rows; differences paired (the same resampled rows).",
        "",
        *_side_by_side(by_split),
        "",
        "![test RMSE](rmse.png)",
        "",
        "![differences](differences.png)",
        "",
        "### FM's raw predictions outside the 1..5 rating range",
        "",
        *_violations(r["range_violations"]),
        "",
        "## FM training",
        "",
        f"Hyperparameters: `{r['fm_hyperparameters']}`.",
        "",
        _last_epoch(r["fm_metrics"]["epochs"]),
        "",
        "![training curves](training_curves.png)",
        "",
    ]
    if "tuning" in r:
        lines += ["## Tuning (validation rows)", "", *_tuning(r["tuning"])]
    lines += ["## Top-N ranking on the test rows", "", *_ranking(r["ranking"])]
    check = r["recommendations_check"]
    batch = r["batch_recommendations"]
    lines += [
        "## Top-N recommendations",
        "",
        f"POST /recommendations through the shim for {check['customers']} customers (k 10, date "
        f"{check['date']}): each of the {check['products_checked']} listed products' FM score equals the FM "
        f"endpoint's for the same customer, product and date within {check['tolerance']:g} (largest "
        f"difference {check['max_score_difference']:.1e}). An unknown customer gets the most popular "
        f"products, fallback {check['unknown_customer']['fallback']}.",
        "",
        f"Batch: `{r['recommendations_folder']}`: {batch['counts']['lines']:,} customers, top {batch['k']}, "
        f"{len(batch['shards'])} shard(s), popularity weight {batch['popularity_weight']:g}, "
        f"date {batch['date']}"
        + ("; the deployed-run record points at it." if r["deployed"] else "; not deployed."),
        "",
    ]
    if "cold_start" in r:
        lines += [
            "## Cold start, measured on products held out entirely",
            "",
            *_cold_start(r["cold_start"], folder),
        ]
    title_map = r["title_map"]
    lines += ["## Title embeddings", ""]
    if len(title_map["tokens"]) >= 5:
        _title_map(title_map["tokens"], title_map["vectors"], folder / "title_map.png")
        lines += ["![title map](title_map.png)", ""]
    if title_map["probe"] is not None:
        lines += [
            f"Similarity to `{title_map['probe']['rows'][0]['token']}` (cosine of FastText vectors; unseen "
            "tokens get vectors from their character n-grams):",
            "",
            "| role | title token | cosine |",
            "|---|---|---|",
            *[
                f"| {row['role']} | `{row['token']}` | {row['cosine']:.3f} |"
                for row in title_map["probe"]["rows"]
            ],
            "",
        ]
    lines += _space(title_map.get("space", {}))
    lines += [
        "## Counts and timings",
        "",
        f"- rows read {counts['rows_read']:,}; bad rows by reason {counts['bad_rows']}; "
        f"kept {counts['rows_kept']:,}",
        f"- customers {m['num_customers']:,}, products {m['num_products']:,}, "
        f"feature_dim {m['feature_dim']:,}",
        f"- train rows {counts['train_rows']:,}, validation rows {counts['validation_rows']:,}, "
        f"test rows {counts['test_rows']:,}",
        f"- title table: {r['title_table']['count']:,} known titles with vectors",
        "- seconds per step: " + ", ".join(f"{k} {v:.1f}" for k, v in r["timings_s"].items()),
        f"- peak RSS {r['peak_rss_mb']:,.0f} MB",
        "",
        "## Sample answers from the shims",
        "",
        "```json",
        *[json.dumps(answer) for answer in r["samples"]["known_pairs"]],
        json.dumps(r["samples"]["cold_start"][0]),
        json.dumps(check["example"])[:2000],
        "```",
        "",
    ]
    path = folder / "report.md"
    path.write_text("\n".join(lines))
    return path
