"""The local run's report: report.md with PNG plots, written from the run's results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no screen
import matplotlib.pyplot as plt
import numpy as np
from sklearn.manifold import TSNE


def _interval_plot(scores: dict[str, dict[str, float]], title: str, path: Path) -> None:
    names = list(scores)
    values = [scores[n]["rmse"] for n in names]
    errors = [
        [scores[n]["rmse"] - scores[n]["low"] for n in names],
        [scores[n]["high"] - scores[n]["rmse"] for n in names],
    ]
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(names) + 1.2))
    ax.barh(names, values, xerr=errors, color="#4C72B0", capsize=4)
    ax.invert_yaxis()
    ax.set_xlabel("test RMSE (95 % bootstrap interval)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _curves(epochs: list[dict[str, Any]], path: Path) -> None:
    x = [e["epoch"] for e in epochs]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(x, [e["train_rmse"] for e in epochs], marker="o", label="train")
    ax.plot(x, [e["test_rmse"] for e in epochs], marker="o", label="test")
    ax.set_xlabel("epoch")
    ax.set_ylabel("RMSE")
    ax.set_title("FM training")
    ax.legend()
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
    ax.set_title("t-SNE of the title vectors of the 100 most reviewed products")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _table(scores: dict[str, dict[str, float]]) -> list[str]:
    lines = ["| model | test RMSE | 95 % interval | rows |", "|---|---|---|---|"]
    lines += [
        f"| {n} | {s['rmse']:.4f} | [{s['low']:.4f}, {s['high']:.4f}] | {s['n']:,} |"
        for n, s in scores.items()
    ]
    return lines


def write_report(folder: Path, r: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    m = r["manifest"]
    counts = m["counts"]
    _interval_plot(r["rmse"], "Test RMSE", folder / "rmse.png")
    _curves(r["fm_metrics"]["epochs"], folder / "training_curves.png")
    lines = [
        f"# loftrec local run {r['run_id']}",
        "",
        f"Input: `{r['input']}`. Every figure below is measured on this run; the run folder holds its files.",
        "",
        "## Test RMSE",
        "",
        "Each customer's latest review is the test set; FM is scored raw (as SageMaker reports "
        "`test:rmse`) and clipped to 1..5 (as the shims answer). Intervals: 95 % percentile bootstrap over "
        f"test rows ({r['rmse']['FM']['n']:,} rows, 1,000 resamples).",
        "",
        *_table(r["rmse"]),
        "",
        "![RMSE](rmse.png)",
        "",
        f"FM predictions outside the 1..5 rating range: {r['range_violations']['below']} below, "
        f"{r['range_violations']['above']} above, of {r['range_violations']['rows']:,} "
        f"(lowest {r['range_violations']['min']:.3f}, highest {r['range_violations']['max']:.3f}).",
        "",
        "## FM training",
        "",
        f"Hyperparameters: `{r['fm_hyperparameters']}`.",
        "",
        "![training curves](training_curves.png)",
        "",
        "## Quality gate",
        "",
        f"Decision: **{'deploy' if r['gate']['deploy'] else 'reject'}**.",
        "",
        *[f"- {reason}" for reason in r["gate"]["reasons"]],
        "",
    ]
    if "cold_start" in r:
        c = r["cold_start"]
        _interval_plot(c["rmse"], "Cold start: held-out products", folder / "cold_start.png")
        lines += [
            "## Cold start, measured",
            "",
            f"{c['held_out_products']} products (of those in the test set) were held out entirely: from FM's "
            "training rows and from the title corpus. Both models were trained again without them; then "
            f"each of their {c['held_out_test_rows']} test rows was asked for through the predict shim with "
            "the product's title only. The shim blends FM's ratings for the most similar known titles, "
            "weighted by similarity. "
            f"Answered from titles: {c['answered']}; outcomes: {c['statuses']}.",
            "",
            *_table(c["rmse"]),
            "",
            "![cold start](cold_start.png)",
            "",
        ]
    title_map = r["title_map"]
    if len(title_map["tokens"]) >= 5:
        _title_map(title_map["tokens"], title_map["vectors"], folder / "title_map.png")
        lines += ["## Title embeddings", "", "![title map](title_map.png)", ""]
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
    lines += [
        "## Counts and timings",
        "",
        f"- rows read {counts['rows_read']:,}; bad rows by reason {counts['bad_rows']}; "
        f"kept {counts['rows_kept']:,}",
        f"- customers {m['num_customers']:,}, products {m['num_products']:,}, "
        f"feature_dim {m['feature_dim']:,}",
        f"- train rows {counts['train_rows']:,}, test rows {counts['test_rows']:,}",
        f"- title table: {r['title_table']['count']:,} known titles with vectors",
        "- seconds per step: " + ", ".join(f"{k} {v:.1f}" for k, v in r["timings_s"].items()),
        f"- peak RSS {r['peak_rss_mb']:,.0f} MB",
        "",
        "## Sample answers from the shims",
        "",
        "```json",
        *[json.dumps(answer) for answer in r["samples"]["known_pairs"]],
        json.dumps(r["samples"]["cold_start"][0]),
        "```",
        "",
    ]
    path = folder / "report.md"
    path.write_text("\n".join(lines))
    return path
