"""A hand-made run for the top-N tests: 2 customers, 4 products, 2 factors, every score written out by hand.

    w0 = 3, w_t = 0.5, v_t = (0.2, 0)
    C1: w = 0.5,   v = (1, 0)        P0: w = 0.1, v = (0.5, 0)      P2: w = 0.3, v = (0.25, 0.25)
    C2: w = -0.25, v = (0, 1)        P1: w = 0.2, v = (0, 0.5)      P3: w = 0,   v = (1, -1)

score(u, i, t) = w0 + w_u + w_i + t w_t + <v_u, v_i> + t <v_u, v_t> + t <v_i, v_t>:

    t = 0   C1: P0 4.1, P1 3.7, P2 4.05, P3 4.5      C2: P0 2.85, P1 3.45, P2 3.3, P3 1.75
    t = 1   C1: P0 4.9, P1 4.4, P2 4.8,  P3 5.4   (w_t + <v_C1, v_t> = 0.7, <v_i, v_t> = 0.1, 0, 0.05, 0.2)

Train rows (customer, product, time): (C1, P3, 0), (C1, P0, 0.5), (C2, P1, 0), (C2, P0, 0.3), (C2, P0, 0.7):
C1 reviewed P0 and P3, C2 P0 and P1; popularity P0 3, P1 1, P2 0, P3 1.

For the serving-data export (write_export_run), a validation shard, a test shard and a title table:
validation (C1, P1, t 0) rated 4 and (C2, P3, t 0) rated 3; test (C1, P2, t 1) rated 5. Title vectors (2-D,
unit): zero (1, 0), one (0.6, 0.8), two (0.8, 0.6), three (0, 1). So over every row C1 reviewed P0..P3, C2
P0, P1 and P3, and the popularity is P0 3, P1 2, P2 1, P3 2.

Every train rating is 4 unless a test says otherwise: the customer base (mu + b_u of the bias model) is 4
for both customers.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from contract.features import FeatureLayout, TimeTransform
from contract.index import ServingIndex, load_index, write_index
from contract.layout import HELD_OUT_TITLE_FILES, TITLE_TABLE_FILES
from fm.artifact import FmParameters, write_fm_artifact
from fm.biases import CustomerBase
from fm.factors import ServingFactors, base_of, build_factors, rated_pairs, reviewed_products
from fm.recordio import write_sparse_records
from lambdas.serving.title_table import build_title_table

FEATURES = FeatureLayout(num_customers=2, num_products=4)
CUSTOMER_IDS = ["C1", "C2"]
FIRST_REVIEW_DAYS = [16000, 16100]  # 2013-10-22, 2014-01-30
PRODUCT_IDS = ["P0", "P1", "P2", "P3"]
TITLES = ["Zero", "One", "Two", "Three"]
TIME_TRANSFORM = TimeTransform(scale_days=100)
TRAIN_ROWS = [(0, 3, 0.0), (0, 0, 0.5), (1, 1, 0.0), (1, 0, 0.3), (1, 0, 0.7)]
SCORES_AT_0 = {0: [4.1, 3.7, 4.05, 4.5], 1: [2.85, 3.45, 3.3, 1.75]}
SCORES_AT_1 = {0: [4.9, 4.4, 4.8, 5.4]}


def parameters() -> FmParameters:
    d = FEATURES.feature_dim
    w = np.zeros(d, np.float32)
    v = np.zeros((d, 2), np.float32)
    w[0], v[0] = 0.5, (1.0, 0.0)
    w[1], v[1] = -0.25, (0.0, 1.0)
    for row, (weight, factors) in enumerate(
        [(0.1, (0.5, 0)), (0.2, (0, 0.5)), (0.3, (0.25, 0.25)), (0, (1, -1))]
    ):
        w[FEATURES.item_key(row)], v[FEATURES.item_key(row)] = weight, factors
    w[FEATURES.time_key], v[FEATURES.time_key] = 0.5, (0.2, 0.0)
    return FmParameters(w0=3.0, w=w, v=v)


VALIDATION_ROWS = [(0, 1, 0.0), (1, 3, 0.0)]
VALIDATION_RATINGS = [4.0, 3.0]
TEST_ROWS = [(0, 2, 1.0)]
TEST_RATINGS = [5.0]
TITLE_VECTORS = {"zero": (1.0, 0.0), "one": (0.6, 0.8), "two": (0.8, 0.6), "three": (0.0, 1.0)}


def shard(
    rows: list[tuple[int, int, float]] = TRAIN_ROWS,
    features: FeatureLayout = FEATURES,
    ratings: list[float] | None = None,
) -> bytes:
    """prep's RecordIO rows: keys (user, item, time), values (1, 1, t), label 4 unless `ratings` says."""
    indices = [k for u, i, _ in rows for k in (features.user_key(u), features.item_key(i), features.time_key)]
    values = [x for _, _, t in rows for x in (1.0, 1.0, t)]
    labels = np.full(len(rows), 4.0) if ratings is None else np.asarray(ratings, np.float64)
    out = io.BytesIO()
    indptr = np.arange(0, 3 * len(rows) + 1, 3)
    write_sparse_records(
        out,
        indptr,
        np.asarray(indices, np.int64),
        np.asarray(values, np.float32),
        labels,
        features.feature_dim,
    )
    return out.getvalue()


def flat_base(features: FeatureLayout = FEATURES, value: float = 4.0) -> CustomerBase:
    """A customer base of `value` for every customer (the bias model of ratings that are all `value`)."""
    return CustomerBase(mean=value, values=np.full(features.num_customers, value, np.float32))


def factors(params: FmParameters | None = None, base: CustomerBase | None = None) -> ServingFactors:
    """The hand-made run's factors; the base fitted on the train rows (every rating 4: mu 4, b_u 0) unless
    `base` says."""
    pairs = rated_pairs([shard()], FEATURES)
    return build_factors(
        params or parameters(),
        FEATURES,
        reviewed_products([shard()], FEATURES),
        base or base_of(pairs, FEATURES),
    )


def write_run(run: Path, params: FmParameters | None = None) -> ServingIndex:
    """prep/index/, prep/train/part-00000.rio and fm/model.tar.gz of the hand-made run under `run`."""
    write_index(
        run / "prep" / "index",
        customer_ids=CUSTOMER_IDS,
        first_review_days=FIRST_REVIEW_DAYS,
        product_ids=PRODUCT_IDS,
        titles=TITLES,
        time_transform=TIME_TRANSFORM,
        global_mean=3.5,
    )
    (run / "prep" / "train").mkdir(parents=True)
    (run / "prep" / "train" / "part-00000.rio").write_bytes(shard())
    write_fm_artifact(run / "fm" / "model.tar.gz", params or parameters(), {"predictor_type": "regressor"})
    return load_index(run / "prep" / "index")


def title_table_files(
    without: str | None = None, names: Sequence[str] = TITLE_TABLE_FILES
) -> dict[str, bytes]:
    """The title table of TITLE_VECTORS (titles.txt, titles.f32, titles.json) as its exporter writes it; a
    token `without` has no vector. With names HELD_OUT_TITLE_FILES, the same vectors as the held-out titles'
    table: every title treated as held out, its vector the one it has in the title table."""
    vectors = {token: vector for token, vector in TITLE_VECTORS.items() if token != without}
    lines = [
        f"{len(vectors)} 2".encode(),
        *(f"{token} {x} {y}".encode() for token, (x, y) in vectors.items()),
    ]
    table = build_title_table(lines, set(TITLE_VECTORS))
    return dict(zip(names, (table.titles_txt, table.titles_f32, table.titles_json), strict=True))


def write_export_run(run: Path) -> ServingIndex:
    """write_run's run with what the serving-data export reads besides: prep/validation/, prep/test/ and the
    title table in serving/."""
    index = write_run(run)
    for folder, rows, ratings in (
        ("validation", VALIDATION_ROWS, VALIDATION_RATINGS),
        ("test", TEST_ROWS, TEST_RATINGS),
    ):
        (run / "prep" / folder).mkdir(parents=True)
        (run / "prep" / folder / "part-00000.rio").write_bytes(shard(rows, ratings=ratings))
    (run / "serving").mkdir(parents=True, exist_ok=True)
    for files in (TITLE_TABLE_FILES, HELD_OUT_TITLE_FILES):
        for name, data in title_table_files(names=files).items():
            (run / "serving" / name).write_bytes(data)
    return index


def brute_force_score(params: FmParameters, x: dict[int, float]) -> float:
    """FM's formula over a sparse row {key: value}, in float64, pair by pair."""
    w = params.w.astype(np.float64)
    v = params.v.astype(np.float64)
    keys = sorted(x)
    score = params.w0 + sum(w[k] * x[k] for k in keys)
    for a, ka in enumerate(keys):
        for kb in keys[a + 1 :]:
            score += float(v[ka] @ v[kb]) * x[ka] * x[kb]
    return float(score)


def random_parameters(features: FeatureLayout, num_factors: int, seed: int) -> FmParameters:
    rng = np.random.default_rng(seed)
    d = features.feature_dim
    return FmParameters(
        w0=3.5,
        w=rng.normal(0, 0.3, d).astype(np.float32),
        v=rng.normal(0, 0.3, (d, num_factors)).astype(np.float32),
    )
