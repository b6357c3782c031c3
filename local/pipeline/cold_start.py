"""The cold start, measured: products held out entirely, as if they were new.

A sample of the test set's products is removed from FM's training rows and from the title corpus, and the
experiment is run as a second run would be: its own run folder (cold_start/ inside the run's) with its own
prep/ (train, validation and test shards without the held-out products, corpus, and an index in which the
held-out products have no feature key), the same training jobs, the same title-table and "Export FM factors"
steps (whose cold-start shrinkage is chosen on the experiment's validation rows), served by the same local
runtime under its own endpoint names and record. Then the held-out products' test ratings are asked for
through the predict shim with their titles alone (fm/coldstart's answer: the user-bias prediction plus the
title neighbours' item difference in FM's space, shrunk by their similarity mass), and compared with the
user-bias prediction (the bias model without the item term, fitted on the experiment's train rows) on the
same rows: the relative RMSE difference with its paired 95 % interval (lambdas.pipeline.paired). The
answer's base is that same prediction (the export step fits it on the same rows with the same settings),
so a shrinkage of 0 ties it exactly. A nonsense title ("!!!") is asked for too: it must get the base,
flagged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

from contract import layout
from contract.algorithms import MODELS, RESOURCE_PREFIX
from contract.documents import RunMetrics
from contract.features import RATING_RANGE
from contract.index import ServingIndex, load_index, title_token, write_index
from lambdas.pipeline.paired import paired_difference
from local.fm import read_shards
from local.pipeline.evaluation import bias_predictions, bootstrap
from local.pipeline.records import row_keys, subset, write_channel
from local.pipeline.shims import call, deploy_models, predict_in_batches, request_items, write_record
from local.pipeline.training import channel_rows, export_titles, train_fm_job, train_title_embeddings_job
from local.runtime_server import RuntimeServer
from stacks.config import Config

__all__ = ["COLD_ENDPOINTS", "COLD_START", "NONSENSE_TITLE", "cold_start_experiment"]

NONSENSE_TITLE = "!!!"

COLD_START = "cold_start/"
"""The experiment's run folder, inside the run's."""
COLD_ENDPOINTS: dict[str, str] = {model: f"{RESOURCE_PREFIX}-cold-start-{model}" for model in MODELS}
"""The experiment's endpoints on the local runtime, beside the run's own."""


def held_out_index(index: ServingIndex, held: npt.NDArray[np.int64], folder: Path) -> None:
    """The run's index with the held-out products' rows renamed, so that the shims know neither their ids
    nor their titles; every row keeps its place, so every other feature key stays the same."""
    held_set = set(held.tolist())
    placeholder = [f"held-out-{i}" if i in held_set else None for i in range(index.num_products)]
    write_index(
        folder,
        customer_ids=index.customer_ids,
        first_review_days=index.first_review_day.tolist(),
        product_ids=[p or pid for p, pid in zip(placeholder, index.product_ids, strict=True)],
        titles=[p or title for p, title in zip(placeholder, index.product_titles, strict=True)],
        time_transform=index.time_transform,
        global_mean=index.global_mean,
    )


def corpus_without(source: Path, target: Path, tokens: set[str]) -> None:
    """The corpus (one line per customer) with the given title tokens taken out of every line."""
    lines = source.read_text(encoding="utf-8").removesuffix("\n").split("\n")
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            f.write(" ".join(t for t in line.split() if t not in tokens) + "\n")


def cold_start_experiment(
    *,
    run_folder: Path,
    record_path: Path,
    run_id: str,
    handlers: ModuleType,
    server: RuntimeServer,
    config: Config,
    hyperparameters: dict[str, object],
    blazingtext_hyperparameters: Mapping[str, object],
    metrics: RunMetrics,
    fraction: float,
    seed: int,
) -> dict[str, Any]:
    """Hold out `fraction` of the test set's products, train and serve without them, and score the
    title-neighbour blend on their test rows. Leaves the deployed-run record on the experiment's run."""
    index = load_index(run_folder / layout.INDEX)
    features = index.features
    train = read_shards(run_folder / layout.TRAIN)
    validation = (
        read_shards(run_folder / layout.VALIDATION)
        if channel_rows(run_folder / layout.VALIDATION)
        else subset(train, np.zeros(train.labels.shape[0], bool))  # no validation row: an empty channel
    )
    test = read_shards(run_folder / layout.TEST)
    train_product = row_keys(train, features).product
    validation_product = row_keys(validation, features).product
    test_product = row_keys(test, features).product
    candidates = np.unique(test_product)
    rng = np.random.default_rng(seed)
    held = np.sort(rng.choice(candidates, size=max(1, round(fraction * len(candidates))), replace=False))
    held_rows = np.isin(test_product, held)

    # Its prep/: the run's, as if the held-out products did not exist yet.
    experiment = run_folder / COLD_START
    kept_train = subset(train, ~np.isin(train_product, held))
    write_channel(experiment / layout.TRAIN, kept_train)
    write_channel(experiment / layout.VALIDATION, subset(validation, ~np.isin(validation_product, held)))
    write_channel(experiment / layout.TEST, subset(test, ~held_rows))
    corpus_without(
        run_folder / layout.CORPUS_FILE,
        experiment / layout.CORPUS_FILE,
        {title_token(index.product_titles[i]) for i in held},
    )
    held_out_index(index, held, experiment / layout.INDEX)

    # Its training jobs, title table, endpoints and record.
    train_fm_job(experiment, hyperparameters, "FM without held-out")
    train_title_embeddings_job(experiment, blazingtext_hyperparameters, "FastText without held-out")
    export_titles(experiment)
    deploy_models(server, experiment, COLD_ENDPOINTS)
    # The experiment's model is not scored on the test rows as a whole: its record carries no FM test RMSE.
    experiment_metrics: RunMetrics = {**metrics, "fm_test_rmse": None}
    write_record(
        record_path, experiment, f"{run_id}-cold-start", experiment_metrics, endpoints=COLD_ENDPOINTS
    )

    # The held-out products' test rows, asked for by product id and title as an application would.
    held_test = subset(test, held_rows)
    items = request_items(index, row_keys(held_test, features), titles=True)
    answers = predict_in_batches(handlers, items, config.serving_max_batch_size, "cold-start requests")
    answered = np.array([a.get("status") == "cold_start" for a in answers])
    blend = np.array([a.get("rating", np.nan) for a in answers], dtype=np.float64)
    # The answer's base: the user-bias prediction of the export step (the shrinkage's target).
    own_side = np.clip(
        np.array([a.get("customer_side", np.nan) for a in answers], dtype=np.float64), *RATING_RANGE
    )
    actual = held_test.labels.astype(np.float64)
    mu = float(kept_train.labels.mean())
    no_item = bias_predictions(kept_train, held_test, features, with_item=False)
    scores = bootstrap(
        {
            "global mean (train without held-out)": np.full(int(answered.sum()), mu),
            "user bias (no item term)": no_item[answered],
            "the answer's base (customer_side)": own_side[answered],
            "cold start (title neighbours in FM's space, shrunk)": blend[answered],
        },
        actual[answered],
        seed,
    )
    versus_user_bias = None
    if answered.any():
        difference = paired_difference(actual[answered], blend[answered], no_item[answered])
        versus_user_bias = {
            "relative": difference.relative,
            "interval": [difference.low, difference.high],
            "rows": difference.rows,
            "cold_start_rmse": difference.candidate_rmse,
            "user_bias_rmse": difference.other_rmse,
        }
    statuses: dict[str, int] = {}
    sources: dict[str, int] = {}
    for a in answers:
        key = a["status"] if a["status"] != "error" else f"error: {a['error']['code']}"
        statuses[key] = statuses.get(key, 0) + 1
        if "answered_from" in a:
            sources[a["answered_from"]] = sources.get(a["answered_from"], 0) + 1
    nonsense_item = {
        "customer_id": items[0]["customer_id"],
        "product_id": "NEW-NONSENSE",
        "product_title": NONSENSE_TITLE,
        "date": items[0]["date"],
    }
    nonsense = call(handlers, "predictions", {"items": [nonsense_item]})["predictions"][0]
    choice = json.loads((experiment / layout.COLD_START).read_text())
    return {
        "held_out_products": len(held),
        "held_out_test_rows": int(held_rows.sum()),
        "answered": int(answered.sum()),
        "statuses": statuses,
        "answered_from": sources,
        "rmse": scores,
        "versus_user_bias": versus_user_bias,
        "shrinkage": {
            name: choice.get(name)
            for name in ("alpha", "min_similarity", "chosen_on", "rows", "rmse", "base_rmse", "versus_base")
        },
        "nonsense_title": {"title": NONSENSE_TITLE, "answer": nonsense},
        "example": next(
            (a for a in answers if a.get("answered_from") == "title_neighbours"),
            next((a for a in answers if a.get("status") == "cold_start"), None),
        ),
    }
