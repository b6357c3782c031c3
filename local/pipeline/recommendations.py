"""Top-N in the local run: POST /recommendations through the real shim, checked against the FM endpoint of
the local runtime, and the batch step (jobs.recommend) writing the run's recommendations/.

The shim scores from the run's serving factors without calling an endpoint; its FM score of each product it
lists (the answer's ranking key less popularity_weight x log(1 + reviews)) must equal what the FM endpoint
answers for the same customer, product and date, within TOLERANCE.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from contract import layout
from contract.index import load_index
from fm.pairs import read_rows
from fm.topn import epoch_day, time_values
from jobs.recommend.job import RecommendConfig, RecommendError, run_recommend
from lambdas.serving.endpoints import fm_instance
from local.pipeline import PipelineError
from local.pipeline.shims import call
from local.runtime_server import RuntimeServer

__all__ = ["SAMPLE_CUSTOMERS", "TOLERANCE", "batch_recommendations", "check_recommendations", "run_date"]

TOLERANCE = 1e-4
SAMPLE_CUSTOMERS = 5
K = 10
UNKNOWN_CUSTOMER = "no-such-customer"


def run_date(run_folder: Path) -> dt.date:
    """The date top-N is asked for: the day after the latest test review (a date of the data, so that two
    runs on the same input answer alike)."""
    index = load_index(run_folder / layout.INDEX)
    with (run_folder / layout.TEST_SHARD).open("rb") as shard:
        days = read_rows([shard], index, where=layout.TEST_SHARD).days
    last = int(days.max()) if days.shape[0] else 0
    return dt.date(1970, 1, 1) + dt.timedelta(days=last + 1)


def check_recommendations(
    run_folder: Path,
    handlers: ModuleType,
    server: RuntimeServer,
    endpoint: str,
    *,
    date: dt.date,
    seed: int,
) -> dict[str, Any]:
    """POST /recommendations for a seeded sample of customers and for an unknown one; each listed product's
    FM score compared with the FM endpoint's. PipelineError when a score differs by more than TOLERANCE."""
    index = load_index(run_folder / layout.INDEX)
    rng = np.random.default_rng(seed)
    sample = np.sort(
        rng.choice(index.num_customers, size=min(SAMPLE_CUSTOMERS, index.num_customers), replace=False)
    )
    answers = []
    instances: list[dict[str, Any]] = []
    shim_scores: list[float] = []
    times = time_values(index, sample, epoch_day(date))
    for customer, time in zip(sample.tolist(), times.tolist(), strict=True):
        body = {"customer_id": index.customer_ids[customer], "k": K, "date": date.isoformat()}
        answer = call(handlers, "recommendations", body)
        answers.append(answer)
        weight = float(answer["popularity_weight"])
        for item in answer["recommendations"]:
            row = index.product_rows[item["product_id"]]
            instances.append(fm_instance(index, index.customer_keys[index.customer_ids[customer]], row, time))
            shim_scores.append(float(item["score"]) - weight * math.log1p(int(item["reviews"])))
    status, payload, error = server.invoke(
        endpoint, "application/json", json.dumps({"instances": instances}).encode()
    )
    if status != 200:
        raise PipelineError(f"the FM endpoint {endpoint} answered {status} ({error}): {payload}")
    endpoint_scores = np.array([p["score"] for p in payload["predictions"]], np.float64)
    gap = float(np.max(np.abs(endpoint_scores - np.array(shim_scores)))) if shim_scores else 0.0
    if gap > TOLERANCE:
        raise PipelineError(
            f"POST /recommendations scores differ from the FM endpoint's by up to {gap:.2e} (tolerance "
            f"{TOLERANCE:g}) on {len(shim_scores)} products"
        )
    unknown = call(
        handlers, "recommendations", {"customer_id": UNKNOWN_CUSTOMER, "k": 3, "date": date.isoformat()}
    )
    return {
        "date": date.isoformat(),
        "customers": len(answers),
        "products_checked": len(shim_scores),
        "max_score_difference": gap,
        "tolerance": TOLERANCE,
        "example": answers[0] if answers else None,
        "unknown_customer": unknown,
    }


def batch_recommendations(run_folder: Path, *, date: dt.date, popularity_weight: float) -> dict[str, Any]:
    """The batch step: every customer's top K into the run's recommendations/ (JSON Lines gz shards and
    manifest.json, written last); its manifest."""
    try:
        return run_recommend(
            run_folder / layout.SERVING_FACTORS,
            run_folder / layout.INDEX,
            run_folder / layout.RECOMMENDATIONS,
            RecommendConfig(k=K, date=date, popularity_weight=popularity_weight),
            log=lambda line: print(f"  recommend: {line}", file=sys.stderr),
        )
    except RecommendError as error:
        raise PipelineError(f"batch recommendations: {error}") from None
