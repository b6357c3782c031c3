"""Hand-made runs for the serving tests: a tiny index, a hand-chosen FM model, a FastText model trained on a
hand-made corpus, the exported title table, FM's serving factors (from a hand-made train shard), the cold
start's shrinkage, the ranking's popularity weight and the deployed-run record, all in the agreed formats and
written with the functions the pipeline writes them with."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import importlib
import json
import math
import os
import random
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from contract import index as contract_index
from contract import layout
from contract.documents import run_record
from contract.features import FeatureLayout, TimeTransform
from fm.coldstart import Shrinkage
from fm.factors import build_and_write
from fm.ranking import Ranking
from fm.recordio import write_sparse_records
from lambdas.serving.title_table import export_title_table
from local.fm import FmParameters, save_model
from local.runtime_server import BlazingTextModel, RuntimeServer
from tests.tools.iam.harness import record_handlers

CUSTOMERS = [  # customer_id, first_review_day (days since 1970-01-01)
    ("C1", 16000),  # 2013-10-22
    ("C2", 16100),
    ("C3", 16200),
    ("C4", 16300),
]
PRODUCTS = [  # product_id, title (row i is feature key len(CUSTOMERS) + i)
    ("P-SH1", "Sherlock Season 1"),
    ("P-SH2", "Sherlock Season 2"),
    ("P-SH3", "Sherlock Season 3"),
    ("P-IMG", "The Imitation Game"),
    ("P-KK1", "Keeping Up with the Kardashians Season 1"),
    ("P-KK2", "Keeping Up with the Kardashians Season 2"),
    ("P-DA1", "Downton Abbey Season 1"),
    ("P-CR1", "The Crown Season 1"),
    ("P-SH1-HD", "SHERLOCK Season 1"),  # another product with the same title token as P-SH1 (fewer reviews)
    ("P-OBS", "An Obscure Film"),  # a known product whose title is not in the BlazingText vocabulary
]
N, M = len(CUSTOMERS), len(PRODUCTS)
FEATURE_DIM = N + M + 1
TIME_KEY = FEATURE_DIM - 1
REVIEWS = [  # the reviews the run knows of (its train shard): what each customer reviewed, and popularity
    ("C1", "P-SH1"),
    ("C1", "P-IMG"),
    ("C2", "P-SH1"),
    ("C2", "P-SH2"),
    ("C3", "P-SH1"),
    ("C3", "P-KK1"),
    ("C4", "P-DA1"),
]
REVIEW_COUNTS = {"P-SH1": 3, "P-SH2": 1, "P-IMG": 1, "P-KK1": 1, "P-DA1": 1}  # every other product: 0
SHRINKAGE = Shrinkage(alpha=1.0, min_similarity=0.65)
"""serving/cold_start.json: lambda = S / (S + 1), neighbours below a cosine of 0.65 left out."""
POPULARITY_WEIGHT = 0.5
"""serving/ranking.json: top-N's key is FM's score + 0.5 log(1 + reviews)."""
TIME_TRANSFORM = {"kind": "log1p_ratio", "scale_days": 1000}  # min(1, log1p(days) / log1p(1000))
SERIES = [
    ["sherlock-season-1", "sherlock-season-2", "sherlock-season-3", "the-imitation-game"],
    [
        "keeping-up-with-the-kardashians-season-1",
        "keeping-up-with-the-kardashians-season-2",
        "the-real-housewives-season-1",  # in the vocabulary, not a known product: never in the title table
    ],
    ["downton-abbey-season-1", "the-crown-season-1"],
]
VECTOR_DIM = 24
# Trained models shared by the whole session; the directory goes when the interpreter exits.
_SESSION_DIR = tempfile.TemporaryDirectory(prefix="loftrec-serving-tests-")


def product_key(product_id: str) -> int:
    return N + [p for p, _ in PRODUCTS].index(product_id)


def fm_parameters(w0: float = 3.0) -> tuple[float, np.ndarray, np.ndarray]:
    """A hand-chosen FM: most weights zero, so that the scores tests check can be written out by hand."""
    w = np.zeros(FEATURE_DIM, dtype=np.float32)
    v = np.zeros((FEATURE_DIM, 2), dtype=np.float32)
    w[0], v[0] = 0.5, (0.5, 0.1)  # C1
    w[1] = 3.0  # C2: a generous rater, pushes scores above 5 (clipped)
    w[product_key("P-SH1")], v[product_key("P-SH1")] = 0.25, (0.4, -0.2)
    w[product_key("P-SH2")] = 0.5
    w[product_key("P-SH3")] = -0.5
    w[product_key("P-IMG")] = 0.75
    w[product_key("P-KK1")] = -1.0
    w[TIME_KEY], v[TIME_KEY] = 0.1, (0.1, 0.2)
    return w0, w, v


def fm_dense_score(w0: float, w: np.ndarray, v: np.ndarray, x: dict[int, float]) -> float:
    """The FM formula on a dense vector: w0 + w.x + 1/2 sum_f ((V^T x)_f^2 - ((V^2)^T x^2)_f)."""
    dense = np.zeros(FEATURE_DIM)
    for key, value in x.items():
        dense[key] = value
    vw = v.astype(np.float64)
    return float(w0 + w.astype(np.float64) @ dense + 0.5 * ((vw.T @ dense) ** 2 - (vw.T**2) @ dense**2).sum())


def time_feature(days: int) -> float:
    """The time feature of TIME_TRANSFORM, written out."""
    return min(1.0, math.log1p(max(0, days)) / math.log1p(1000))


def days(date: dt.date) -> int:
    return (date - dt.date(1970, 1, 1)).days


def uri(path: Path) -> str:
    return path.resolve().as_uri()


def write_index(folder: Path) -> None:
    contract_index.write_index(
        folder,
        customer_ids=[c for c, _ in CUSTOMERS],
        first_review_days=[d for _, d in CUSTOMERS],
        product_ids=[p for p, _ in PRODUCTS],
        titles=[t for _, t in PRODUCTS],
        time_transform=TimeTransform.from_json(TIME_TRANSFORM),
        global_mean=4.2,
    )


def corpus() -> list[list[str]]:
    rng = random.Random(0)
    lines = []
    for _ in range(300):
        series = rng.choice(SERIES)
        lines.append(rng.sample(series, k=rng.randint(2, len(series))))
    return lines


@functools.cache
def trained_blazingtext() -> Path:
    """A FastText skipgram with subwords trained on the hand-made corpus, saved as BlazingText saves it:
    vectors.bin (Facebook binary) and vectors.txt (word2vec text). Trained once per test session."""
    from gensim.models.fasttext import FastText, save_facebook_model  # noqa: PLC0415 (slow import)

    folder = Path(_SESSION_DIR.name) / "blazingtext"
    folder.mkdir()
    model = FastText(
        sentences=corpus(),
        vector_size=VECTOR_DIM,
        window=5,
        min_count=1,
        sg=1,
        min_n=3,
        max_n=6,
        epochs=20,
        bucket=5000,
        sample=0,
        seed=7,
        workers=1,
    )
    save_facebook_model(model, str(folder / "vectors.bin"))
    model.wv.save_word2vec_format(str(folder / "vectors.txt"))
    return folder


@functools.cache
def blazingtext_model() -> BlazingTextModel:
    return BlazingTextModel.load(trained_blazingtext())


def word_vector(word: str) -> np.ndarray:
    return np.asarray(blazingtext_model().vectors[word], dtype=np.float64)


def customer_key(customer_id: str) -> int:
    return [c for c, _ in CUSTOMERS].index(customer_id)


def write_train_shard(path: Path) -> None:
    """prep's RecordIO rows of REVIEWS: keys (user, item, time), values (1, 1, 0), label 4."""
    keys = [k for c, p in REVIEWS for k in (customer_key(c), product_key(p), TIME_KEY)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        indptr = np.arange(0, 3 * len(REVIEWS) + 1, 3)
        values = [1.0, 1.0, 0.0] * len(REVIEWS)
        write_sparse_records(f, indptr, keys, values, np.full(len(REVIEWS), 4.0), FEATURE_DIM)


def write_serving_fm(run: Path) -> None:
    """serving/fm/ (the factors of fm/model.tar.gz, REVIEWS as the reviewed sets), serving/cold_start.json
    (SHRINKAGE) and serving/ranking.json (POPULARITY_WEIGHT), as the export step writes them."""
    shard = run / layout.TRAIN / "part-00000.rio"
    write_train_shard(shard)
    build_and_write(
        model=run / layout.FM_OUTPUT / "model.tar.gz",
        features=FeatureLayout(N, M),
        shards=[shard],
        output=run / layout.SERVING_FACTORS,
    )
    (run / layout.COLD_START).write_text(json.dumps(SHRINKAGE.to_json(chosen_on="hand")))
    (run / layout.RANKING).write_text(json.dumps(Ranking(POPULARITY_WEIGHT).to_json()))


def write_run(root: Path, run_id: str, *, w0: float = 3.0) -> Path:
    """runs/<run_id>/ with prep/index/, prep/train/, fm/model.tar.gz, blazingtext/, the exported serving/
    table and serving/fm/, cold_start.json and ranking.json."""
    run = root / "runs" / run_id
    write_index(run / "prep" / "index")
    save_model(run / "fm", FmParameters(*fm_parameters(w0)), {"predictor_type": "regressor"})
    write_serving_fm(run)
    source = trained_blazingtext()
    (run / "blazingtext").mkdir()
    for name in ("vectors.bin", "vectors.txt"):
        (run / "blazingtext" / name).write_bytes((source / name).read_bytes())
    export_title_table(
        uri(run / "blazingtext" / "vectors.txt"),
        uri(run / "prep" / "index") + "/",
        uri(run / "serving") + "/",
    )
    return run


def write_record(path: Path, run: Path, *, fm: str, blazingtext: str) -> None:
    record = run_record(
        run_id=run.name,
        deployed_at="2024-01-01T00:00:00Z",
        run_uri=uri(run) + "/",
        metrics={"fm_test_rmse": 1.0, "baseline_global_mean_rmse": 1.2, "baseline_bias_rmse": 1.1},
        endpoint_configs=None,
        endpoints={"fm": fm, "blazingtext": blazingtext},
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


def aws_test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and a region so that boto3 can sign; nothing here reaches AWS."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def load_handlers(monkeypatch: pytest.MonkeyPatch, **environ: str) -> ModuleType:
    """The handlers module as a Lambda cold start sees it: imported afresh under this environment."""
    aws_test_environment(monkeypatch)
    for name in ("RUN_RECORD_URI", "MAX_BATCH_SIZE", "NEIGHBOURS", "MAX_SIMILAR", "RECORD_TTL_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    for name in ("POWERTOOLS_LOG_LEVEL", "POWERTOOLS_METRICS_DISABLED", "POWERTOOLS_METRICS_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)  # the kit's defaults: INFO, metrics on, namespace loftrec
    monkeypatch.delenv("SAGEMAKER_RUNTIME_ENDPOINT_URL", raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    # The handlers module sets this one for the Lambda process; undone with the rest after the test.
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", os.environ.get("OPENBLAS_NUM_THREADS", "1"))
    sys.modules.pop("lambdas.serving.handlers", None)
    module = importlib.import_module("lambdas.serving.handlers")
    # The IAM check records the boto3 calls the shims make (tests/tools/iam/harness.py).
    record_handlers(
        monkeypatch,
        module,
        {
            "predict_handler": "lambdas.serving.handlers.predict_handler",
            "similar_titles_handler": "lambdas.serving.handlers.similar_titles_handler",
            "recommendations_handler": "lambdas.serving.handlers.recommendations_handler",
        },
    )
    return module


def api_event(body: Any, *, path: str = "/predictions", raw: str | None = None) -> dict[str, Any]:
    """An API Gateway REST proxy-integration event."""
    return {
        "resource": path,
        "path": path,
        "httpMethod": "POST",
        "headers": {"Content-Type": "application/json"},
        "requestContext": {"requestId": "req-1234", "stage": "prod"},
        "body": raw if raw is not None else json.dumps(body),
        "isBase64Encoded": False,
    }


def answer(response: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    assert response["headers"]["Content-Type"] == "application/json"
    return response["statusCode"], json.loads(response["body"])


def log_lines(out: str) -> list[dict[str, Any]]:
    """The log lines of captured stdout (the EMF metric records written beside them left out)."""
    return [line for line in map(json.loads, out.splitlines()) if "_aws" not in line]


def emf_records(out: str) -> list[dict[str, Any]]:
    """The EMF metric records of captured stdout."""
    return [line for line in map(json.loads, out.splitlines()) if "_aws" in line]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / math.sqrt(float(a @ a) * float(b @ b)))


@dataclass
class World:
    """One deployed run served by a local runtime server, and the handlers configured against both."""

    root: Path
    run: Path
    record: Path
    server: RuntimeServer
    handlers: ModuleType
    fm: str = "loftrec-fm-run-a"
    blazingtext: str = "loftrec-bt-run-a"

    def predict(self, items: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        return answer(self.handlers.predict_handler(api_event({"items": items}), None))

    def similar(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        event = api_event(body, path="/similar-titles")
        return answer(self.handlers.similar_titles_handler(event, None))

    def recommend(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        event = api_event(body, path="/recommendations")
        return answer(self.handlers.recommendations_handler(event, None))


@contextlib.contextmanager
def deployed_world(root: Path, monkeypatch: pytest.MonkeyPatch, **environ: str) -> Iterator[World]:
    """Run run-a deployed (record written, both endpoints served); handlers with MAX_BATCH_SIZE 5,
    NEIGHBOURS 3, MAX_SIMILAR 5, RECORD_TTL_SECONDS 60 unless environ says otherwise."""
    run = write_run(root, "run-a")
    record = root / "serving" / "current.json"
    with RuntimeServer() as server:
        world_env = {
            "RUN_RECORD_URI": uri(record),
            "MAX_BATCH_SIZE": "5",
            "NEIGHBOURS": "3",
            "MAX_SIMILAR": "5",
            "RECORD_TTL_SECONDS": "60",
            "SAGEMAKER_RUNTIME_ENDPOINT_URL": server.url,
        }
        world = World(root=root, run=run, record=record, server=server, handlers=ModuleType("unset"))
        server.add_endpoint(world.fm, run / "fm")
        server.add_endpoint(world.blazingtext, blazingtext_model())
        write_record(record, run, fm=world.fm, blazingtext=world.blazingtext)
        world.handlers = load_handlers(monkeypatch, **(world_env | environ))
        yield world
