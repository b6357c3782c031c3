"""The real serving shims, run locally: the handlers of lambdas.serving under the environment a Lambda cold
start gives them, pointed at the local runtime server, and called with API Gateway events.

The handlers are reached through their public entry points only (predict_handler, similar_titles_handler,
recommendations_handler), as the Lambda runtime reaches them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import json
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from contract import layout
from contract.algorithms import BLAZINGTEXT, FM
from contract.documents import RunMetrics, run_record
from contract.index import ServingIndex, load_index
from fm.recordio import SparseRecords
from lambdas.kit.logs import apply_log_level
from lambdas.pipeline.export_factors import export_serving_data
from lambdas.serving.vectors import parse_title_table
from local.fm import MODEL_FILE
from local.pipeline import PipelineError
from local.pipeline.records import RowKeys, row_keys
from local.progress import Progress
from local.runtime_server import RuntimeServer
from stacks.config import Config, default_context, load_config

__all__ = [
    "MODEL_OUTPUTS",
    "call",
    "deploy_models",
    "export_serving_files",
    "predict_in_batches",
    "request_items",
    "sample_requests",
    "serving_environment",
    "write_record",
]

HANDLERS_MODULE = "lambdas.serving.handlers"
SAMPLE_PAIRS = 5


@contextlib.contextmanager
def serving_environment(record_uri: str, server_url: str, config: Config) -> Iterator[ModuleType]:
    """The handlers module as a Lambda cold start sees it, pointed at the local runtime server. boto3 signs
    every request, so it gets placeholder credentials; the local server ignores signatures and nothing
    leaves the machine."""
    settings = {
        "RUN_RECORD_URI": record_uri,
        "SAGEMAKER_RUNTIME_ENDPOINT_URL": server_url,
        "MAX_BATCH_SIZE": str(config.serving_max_batch_size),
        "NEIGHBOURS": str(config.serving_neighbours),
        "MAX_SIMILAR": str(config.serving_max_similar),
        "RECORD_TTL_SECONDS": "0",  # the cold-start experiment switches runs between calls
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        "AWS_EC2_METADATA_DISABLED": "true",
        # The shims log one JSON line per request and write EMF metrics, for CloudWatch: this terminal
        # shows their warnings only, and no metrics.
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    saved = {name: os.environ.get(name) for name in [*settings, "AWS_PROFILE", "AWS_SESSION_TOKEN"]}
    os.environ.update(settings)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    sys.modules.pop(HANDLERS_MODULE, None)
    try:
        yield importlib.import_module(HANDLERS_MODULE)
    finally:
        sys.modules.pop(HANDLERS_MODULE, None)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        apply_log_level()


def write_record(
    path: Path,
    run_folder: Path,
    run_id: str,
    metrics: RunMetrics,
    *,
    endpoints: dict[str, str] | None = None,
    recommendations: bool = False,
) -> None:
    """A deployed-run record, as the state machine writes it to serving/current.json. The local twin has
    no endpoint configurations; the cold-start experiment's record names its own endpoints; with
    `recommendations` it points at the run's batch top-N (recommendations/)."""
    record = run_record(
        run_id=run_id,
        deployed_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        run_uri=run_folder.resolve().as_uri() + "/",
        metrics=metrics,
        endpoint_configs=None,
        endpoints=endpoints,
        recommendations=recommendations,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1))


MODEL_OUTPUTS = {FM: layout.FM_OUTPUT, BLAZINGTEXT: layout.BLAZINGTEXT_OUTPUT}
"""Where each model's training job leaves what its endpoint serves, in a run folder."""


def _shards(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def export_serving_files(run_folder: Path, *, neighbours: int) -> None:
    """The "Export FM factors" step on a local run, as the state machine runs it in the cloud
    (lambdas.pipeline.export_factors): serving/fm/, serving/ranking.json and serving/cold_start.json, both
    choices made on the run's validation shard. A run that has them already is left as it is."""
    if (run_folder / layout.SERVING_FACTORS_MANIFEST).is_file():
        return
    titles, held_out_titles = (
        parse_title_table(*((run_folder / layout.SERVING / name).read_bytes() for name in files))
        for files in (layout.TITLE_TABLE_FILES, layout.HELD_OUT_TITLE_FILES)
    )
    validation = run_folder / layout.VALIDATION
    export_serving_data(
        model=run_folder / layout.FM_OUTPUT / MODEL_FILE,
        index=load_index(run_folder / layout.INDEX),
        train=_shards(run_folder / layout.TRAIN),
        validation=_shards(validation) if validation.is_dir() else [],
        test=_shards(run_folder / layout.TEST),
        titles=titles,
        held_out_titles=held_out_titles,
        output=run_folder,
        neighbours=neighbours,
    )


def deploy_models(server: RuntimeServer, run_folder: Path, endpoints: Mapping[str, str]) -> None:
    """Serve the run's two models on the local runtime under the given endpoint names (by model key), and
    the serving files the shims read beside the title table (export_serving_files) when the run has none."""
    export_serving_files(run_folder, neighbours=load_config(default_context()).serving_neighbours)
    for model, output in MODEL_OUTPUTS.items():
        server.add_endpoint(endpoints[model], run_folder / output)


ROUTES = {
    "predictions": "predict_handler",
    "similar-titles": "similar_titles_handler",
    "recommendations": "recommendations_handler",
}


def call(handlers: ModuleType, route: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST /<route> through its handler, as API Gateway's proxy integration calls it; PipelineError names
    the status and the message of an answer other than 200."""
    handler = getattr(handlers, ROUTES[route])
    event = {"httpMethod": "POST", "path": f"/{route}", "body": json.dumps(body), "requestContext": {}}
    response = handler(event, None)
    answer: dict[str, Any] = json.loads(response["body"])
    if response["statusCode"] != 200:
        raise PipelineError(f"POST /{route} answered {response['statusCode']}: {answer['error']['message']}")
    return answer


def predict_in_batches(
    handlers: ModuleType, items: list[dict[str, str]], batch: int, label: str
) -> list[Any]:
    """POST /predictions in batches of at most `batch` items; the answers in the items' order."""
    answers: list[Any] = []
    with Progress(label, unit="request", total=-(-len(items) // batch)) as progress:
        for start in range(0, len(items), batch):
            body = {"items": items[start : start + batch]}
            answers.extend(call(handlers, "predictions", body)["predictions"])
            progress.advance()
    return answers


def day_string(day: int) -> str:
    """A day counted from 1970-01-01 (the index's first_review_day) as the API's YYYY-MM-DD."""
    return (dt.date(1970, 1, 1) + dt.timedelta(days=int(day))).isoformat()


def request_items(index: ServingIndex, keys: RowKeys, *, titles: bool = False) -> list[dict[str, str]]:
    """Prediction items for rows, as an application sends them: the customer and product ids, the date the
    row's time value stands for (contract.features.TimeTransform.days), and the title if asked."""
    items = []
    for u, i, t in zip(keys.customer.tolist(), keys.product.tolist(), keys.time_value.tolist(), strict=True):
        day = index.first_review_day[u] + index.time_transform.days(t)
        item = {
            "customer_id": index.customer_ids[u],
            "product_id": index.product_ids[i],
            "date": day_string(day),
        }
        if titles:
            item["product_title"] = index.product_titles[i]
        items.append(item)
    return items


def sample_requests(run_folder: Path, handlers: ModuleType, test: SparseRecords) -> dict[str, Any]:
    """What an application sees: held-out pairs, a made-up title, similar titles."""
    index = load_index(run_folder / layout.INDEX)
    keys = row_keys(test, index.features)
    pairs = request_items(index, keys.first(SAMPLE_PAIRS))
    predictions = call(handlers, "predictions", {"items": pairs})["predictions"]
    for row, answer in enumerate(predictions):
        answer["actual"] = float(test.labels[row])
    probe = index.product_titles[0]
    made_up = f"{probe} Part 5"
    item = {
        "customer_id": pairs[0]["customer_id"],
        "product_id": "NEW-1",
        "product_title": made_up,
        "date": pairs[0]["date"],  # a date of the data: the answer must not depend on the day of the run
    }
    cold = call(handlers, "predictions", {"items": [item]})["predictions"]
    similar = call(handlers, "similar-titles", {"titles": [probe, made_up], "k": 5})["results"]
    return {"known_pairs": predictions, "cold_start": cold, "similar_titles": similar}
