"""A small run whose ratings a known factorization machine made, so that the pipeline's gate, exports and
batch job meet real files with answers worked out beforehand.

40 customers each review 8 of 12 products on 8 distinct days; the star rating is the known FM's score
(w0 + customer bias + product bias + <customer factors, product factors>, two factors) rounded and clipped to
1..5. The prep job's own code (jobs.prep) turns the reviews into a run's prep/ folder with the pipeline's
thresholds (5 reviews per customer, 10 per product: every row is kept). `fm_parameters` gives that FM under
the run's index: its predictions are the ratings before rounding, within 0.5 of every rating, so it beats
the bias baselines by far; "noise" gives a model that predicts nothing (random factors), which the gate
rejects. `transform_output` scores a shard with a model as SageMaker FM's Batch Transform writes it (JSON
Lines, one {"score"} per record, in the shard's order: fm-in-formats.html).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import random
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np

from contract.documents import Manifest
from contract.index import ServingIndex, title_token
from fm.artifact import FmParameters, read_fm_artifact, write_fm_artifact
from fm.recordio import read_sparse_records
from jobs.prep.job import PrepConfig, run_prep
from jobs.prep.prepare import Thresholds
from tests.jobs.test_prep_support import tsv_bytes

CUSTOMERS = [f"C{n:02d}" for n in range(40)]
PRODUCTS = [f"P{n:02d}" for n in range(12)]
TITLES = {product: f"Film {chr(ord('A') + n)} ({1990 + n})" for n, product in enumerate(PRODUCTS)}
REVIEWS_PER_CUSTOMER = 8
NUM_FACTORS = 2
W0 = 3.0
FIRST_DAY = dt.date(2015, 1, 1)
Quality = Literal["truth", "noise"]


def _truth() -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Every customer's and product's bias and factors (seeded)."""
    rng = np.random.default_rng(7)
    bias = {key: float(rng.normal(0, 0.3)) for key in [*CUSTOMERS, *PRODUCTS]}
    factors = {key: rng.normal(0, 0.9, NUM_FACTORS) for key in [*CUSTOMERS, *PRODUCTS]}
    return bias, factors


def true_score(customer: str, product: str) -> float:
    bias, factors = _truth()
    return W0 + bias[customer] + bias[product] + float(factors[customer] @ factors[product])


def reviews() -> list[tuple[str, str, str, str, str]]:
    """(customer_id, product_id, product_title, star_rating, review_date) of every review."""
    chooser = random.Random(11)
    rows = []
    for n, customer in enumerate(CUSTOMERS):
        for day, product in enumerate(chooser.sample(PRODUCTS, REVIEWS_PER_CUSTOMER)):
            rating = min(5, max(1, round(true_score(customer, product))))
            date = FIRST_DAY + dt.timedelta(days=n + 3 * day)
            rows.append((customer, product, TITLES[product], str(rating), date.isoformat()))
    return rows


def reviews_tsv() -> bytes:
    return tsv_bytes(reviews())


def vectors_txt() -> str:
    """BlazingText's vectors.txt: a 3-dimensional vector for every title token (seeded)."""
    rng = np.random.default_rng(5)
    lines = [f"{len(TITLES)} 3"]
    for title in TITLES.values():
        lines.append(" ".join([title_token(title), *(f"{x:.4f}" for x in rng.normal(0, 1, 3))]))
    return "\n".join(lines) + "\n"


def prep_run(output: Path, *, fm_instance_count: int = 4) -> Manifest:
    """The run's prep/ folder at `output`, written by the prep job's code from reviews_tsv()."""
    with tempfile.TemporaryDirectory() as raw:
        (Path(raw) / "reviews.tsv").write_bytes(reviews_tsv())
        config = PrepConfig(
            thresholds=Thresholds(min_customer_reviews=5, min_product_reviews=10),
            fm_instance_count=fm_instance_count,
        )
        return run_prep(Path(raw), output, config, log=lambda _line: None, in_place=True)


def fm_parameters(index: ServingIndex, quality: Quality = "truth") -> FmParameters:
    """The known FM under the run's index (feature keys as prep assigned them), or noise."""
    features = index.features
    w = np.zeros(features.feature_dim, np.float32)
    v = np.zeros((features.feature_dim, NUM_FACTORS), np.float32)
    if quality == "noise":
        rng = np.random.default_rng(3)
        v[: features.time_key] = rng.normal(0, 1.5, (features.time_key, NUM_FACTORS))
        return FmParameters(w0=W0, w=w, v=v)
    bias, factors = _truth()
    for key, customer in enumerate(index.customer_ids):
        w[key], v[key] = bias[customer], factors[customer]
    for row, product in enumerate(index.product_ids):
        w[features.item_key(row)], v[features.item_key(row)] = bias[product], factors[product]
    return FmParameters(w0=W0, w=w, v=v)


def fm_artifact(index: ServingIndex, quality: Quality = "truth") -> bytes:
    """model.tar.gz as SageMaker FM writes it, for fm_parameters(index, quality)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.tar.gz"
        write_fm_artifact(
            path,
            fm_parameters(index, quality),
            {"predictor_type": "regressor", "num_factors": NUM_FACTORS, "feature_dim": index.feature_dim},
        )
        return path.read_bytes()


def predict(params: FmParameters, shard: bytes) -> np.ndarray:
    """FM's score of every record of a RecordIO-protobuf shard (float64)."""
    records = read_sparse_records(io.BytesIO(shard))
    rows = records.indptr.shape[0] - 1
    scores = np.full(rows, params.w0, np.float64)
    w, v = params.w.astype(np.float64), params.v.astype(np.float64)
    for r in range(rows):
        at = slice(records.indptr[r], records.indptr[r + 1])
        keys, x = records.indices[at], records.values[at].astype(np.float64)
        vx = v[keys] * x[:, None]
        scores[r] += w[keys] @ x + 0.5 * float((vx.sum(0) ** 2 - (vx**2).sum(0)).sum())
    return scores


def transform_output(model_tar: bytes, shard: bytes) -> bytes:
    """What FM's Batch Transform writes for a shard with Accept application/jsonlines."""
    scores = predict(read_fm_artifact(model_tar), shard)
    return "".join(json.dumps({"score": float(s)}) + "\n" for s in scores).encode()
