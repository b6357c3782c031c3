"""The whole pipeline on one machine: `make run`, or

    python -m local.pipeline [--input DIR] [--output DIR] [--fm-hyperparameters JSON]

The same steps as the cloud's state machine, with the same code where the cloud runs ours: the prep job's
entrypoint in-process, a local FM trainer and gensim's FastText standing in for the built-in algorithms
(they read and write the same files), the same quality-gate decision, and the real serving shims answering
through a local server that speaks the SageMaker runtime protocol. Then it measures what the cloud cannot
cheaply: test RMSE with confidence intervals against the baselines, a cold start on products held out
entirely, and the title-embedding map; all in a report under the run folder.

Without --input it runs on the bundled MovieLens ml-latest-small, converted to the Amazon reviews schema.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import json
import logging
import os
import resource
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from contract import layout
from contract.algorithms import ENDPOINT_NAMES
from contract.documents import Manifest, RunMetrics, run_record
from contract.features import RATING_RANGE
from contract.index import load_index, title_token
from fm.recordio import SparseRecords
from jobs.prep.baselines import BiasSettings, fit_biases
from jobs.prep.failure import PrepError
from jobs.prep.job import PrepConfig, run_prep
from jobs.prep.prepare import Thresholds
from jobs.prep.read import find_input_files
from lambdas.pipeline.gate import decide
from lambdas.serving.title_table import export_title_table
from local import movielens
from local.embeddings import EmbeddingsProgress, SubwordVectors, train_embeddings
from local.fm import FmModel, FmProgress, predict, read_shards, train_fm
from local.hyperparameters import HyperparameterError
from local.runtime_server import RuntimeServer
from stacks.config import Config, ConfigError, default_context, load_config

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "data" / "movielens-latest-small"
COLD_ENDPOINTS = {"fm": "loftrec-cold-start-fm", "blazingtext": "loftrec-cold-start-blazingtext"}
BOOTSTRAP_SAMPLES = 1000


class PipelineError(RuntimeError):
    """The run cannot go on; the message is one line naming the cause."""


@dataclass
class Run:
    """One local run: its folder (the same layout as runs/<run-id>/ in S3) and what it measured."""

    root: Path  # the output root: runs/ and serving/ beside each other, as in the bucket
    run_id: str
    timings: dict[str, float] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def folder(self) -> Path:
        return self.root / "runs" / self.run_id

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        if name not in self.timings:
            print(f"== {name}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        yield
        self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - started, 2)


# ---------------------------------------------------------------------------------------------------------
# Steps


def convert_bundled(run: Run) -> Path:
    folder = run.folder / "input"
    count = movielens.convert(BUNDLED, folder / "movielens.tsv")
    print(f"converted {count:,} MovieLens ratings to the Amazon reviews schema", file=sys.stderr)
    return folder


def check_input(folder: Path) -> Path:
    if not folder.is_dir():
        raise PipelineError(f"input folder {folder} does not exist")
    if not find_input_files(folder):
        raise PipelineError(f"input folder {folder} holds no .tsv or .tsv.gz file")
    return folder


def prepare(run: Run, input_dir: Path, config: Config) -> Manifest:
    prep_config = PrepConfig(
        thresholds=Thresholds(config.min_customer_reviews, config.min_product_reviews),
        max_bad_row_fraction=config.max_bad_row_fraction,
        fm_instance_count=config.fm_instance_count,
    )
    try:
        manifest = run_prep(
            input_dir, run.folder / layout.PREP, prep_config, log=lambda m: print(m, file=sys.stderr)
        )
    except PrepError as error:
        raise PipelineError(str(error)) from None
    return manifest


def fm_progress(description: str) -> tuple[Callable[[FmProgress], None], Callable[[], None]]:
    bar: tqdm[Any] | None = None

    def report(p: FmProgress) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=p.epochs * p.batches, desc=description, unit="batch", leave=False)
        if p.train_rmse is None:
            bar.update(1)
        else:
            bar.set_postfix(epoch=p.epoch, train_rmse=f"{p.train_rmse:.3f}", test_rmse=f"{p.test_rmse:.3f}")

    def close() -> None:
        if bar is not None:
            bar.close()

    return report, close


def train_factorization_machine(
    train: SparseRecords, test: SparseRecords, hyperparameters: dict[str, object], output: Path, label: str
) -> dict[str, Any]:
    report, close = fm_progress(label)
    try:
        result = train_fm(train, test, hyperparameters, seed=0, progress=report)
    except HyperparameterError as error:
        raise PipelineError(str(error)) from None
    finally:
        close()
    output.mkdir(parents=True, exist_ok=True)
    result.model.save(output / "model.npz")
    metrics = result.metrics()
    (output / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return metrics


def train_title_embeddings(
    corpus: Path, output: Path, hyperparameters: Mapping[str, object], label: str
) -> None:
    epochs = int(str(hyperparameters.get("epochs", 5)))
    with tqdm(total=epochs, desc=label, unit="epoch", leave=False) as bar:

        def report(p: EmbeddingsProgress) -> None:
            bar.update(p.epoch - bar.n)

        try:
            train_embeddings(corpus, output, hyperparameters, progress=report)
        except HyperparameterError as error:
            raise PipelineError(str(error)) from None


def rmse(predicted: npt.NDArray[np.floating[Any]], actual: npt.NDArray[np.floating[Any]]) -> float:
    return float(np.sqrt(np.mean((predicted - actual) ** 2)))


def bootstrap(
    predictions: dict[str, npt.NDArray[np.float64]], actual: npt.NDArray[np.float64], seed: int
) -> dict[str, dict[str, float]]:
    """RMSE and its 95 % percentile bootstrap interval per model, resampling test rows (paired)."""
    rng = np.random.default_rng(seed)
    n = len(actual)
    samples = rng.integers(0, n, size=(BOOTSTRAP_SAMPLES, n)) if n else np.zeros((0, 0), int)
    out = {}
    for name, predicted in predictions.items():
        squared = (predicted - actual) ** 2
        resampled = np.sqrt(squared[samples].mean(axis=1)) if n else np.array([np.nan])
        low, high = np.percentile(resampled, [2.5, 97.5])
        out[name] = {"rmse": rmse(predicted, actual), "low": float(low), "high": float(high), "n": n}
    return out


def split_keys(
    records: SparseRecords, num_customers: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """(user key, item index 0..M-1, time value) of each row: every row holds exactly these three."""
    starts = records.indptr[:-1]
    if np.any(np.diff(records.indptr) != 3):
        raise PipelineError("a RecordIO row does not hold exactly (user, item, time): not a prep shard")
    user = records.indices[starts]
    item = records.indices[starts + 1] - num_customers
    return user, item, records.values[starts + 2]


def bias_predictions(
    train: SparseRecords, test: SparseRecords, n: int, m: int, *, with_item: bool = True
) -> npt.NDArray[np.float64]:
    """The regularized user + item bias model fitted on train (prep's settings), clipped to the range; with
    with_item=False the item term is left out, as for a product the model never saw."""
    tu, ti, _ = split_keys(train, n)
    su, si, _ = split_keys(test, n)
    mu, b_user, b_item = fit_biases(tu, ti, train.labels, num_users=n, num_items=m, settings=BiasSettings())
    predicted = mu + b_user[su] + (b_item[si] if with_item else 0.0)
    return np.clip(predicted, *RATING_RANGE)


def subset(records: SparseRecords, keep: npt.NDArray[np.bool_]) -> SparseRecords:
    rows = np.flatnonzero(keep)
    starts = records.indptr[rows]
    counts = np.diff(records.indptr)[rows]
    take = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts) + np.arange(counts.sum())
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return SparseRecords(
        indptr, records.indices[take], records.values[take], records.labels[rows], records.feature_dim
    )


# ---------------------------------------------------------------------------------------------------------
# Serving through the real shims


@contextlib.contextmanager
def local_aws_environment(record_uri: str, server_url: str, config: Config) -> Iterator[ModuleType]:
    """The shims as a Lambda cold start sees them, pointed at the local runtime server. boto3 signs every
    request, so it gets placeholder credentials; the local server ignores signatures and nothing leaves
    the machine."""
    settings = {
        "RUN_RECORD_URI": record_uri,
        "SAGEMAKER_RUNTIME_ENDPOINT_URL": server_url,
        "MAX_BATCH_SIZE": str(config.serving_max_batch_size),
        "NEIGHBOURS": str(config.serving_neighbours),
        "MAX_SIMILAR": str(config.serving_max_similar),
        "RECORD_TTL_SECONDS": "0",  # the experiment switches runs between calls
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    saved = {name: os.environ.get(name) for name in [*settings, "AWS_PROFILE", "AWS_SESSION_TOKEN"]}
    os.environ.update(settings)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    sys.modules.pop("lambdas.serving.handlers", None)
    try:
        handlers = importlib.import_module("lambdas.serving.handlers")
        # One JSON line per request is for CloudWatch, not for this terminal.
        logging.getLogger("loftrec.serving").setLevel(logging.WARNING)
        yield handlers
    finally:
        logging.getLogger("loftrec.serving").setLevel(logging.INFO)
        sys.modules.pop("lambdas.serving.handlers", None)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def write_record(
    path: Path,
    run_folder: Path,
    run_id: str,
    metrics: RunMetrics,
    *,
    endpoints: dict[str, str] | None = None,
) -> None:
    """The deployed-run record, as the state machine writes it to serving/current.json. The local twin has
    no endpoint configurations; the cold-start experiment's record names its own endpoints."""
    record = run_record(
        run_id=run_id,
        deployed_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        run_uri=run_folder.resolve().as_uri() + "/",
        metrics=metrics,
        endpoint_configs=None,
        endpoints=endpoints,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1))


def call(handlers: ModuleType, route: str, body: dict[str, Any]) -> dict[str, Any]:
    handler = handlers.predict_handler if route == "predictions" else handlers.similar_titles_handler
    event = {"httpMethod": "POST", "path": f"/{route}", "body": json.dumps(body), "requestContext": {}}
    response = handler(event, None)
    answer: dict[str, Any] = json.loads(response["body"])
    if response["statusCode"] != 200:
        raise PipelineError(f"POST /{route} answered {response['statusCode']}: {answer['error']['message']}")
    return answer


def predict_in_batches(
    handlers: ModuleType, items: list[dict[str, str]], batch: int, label: str
) -> list[Any]:
    answers: list[Any] = []
    for start in tqdm(range(0, len(items), batch), desc=label, unit="request", leave=False):
        answers.extend(call(handlers, "predictions", {"items": items[start : start + batch]})["predictions"])
    return answers


# ---------------------------------------------------------------------------------------------------------
# The run


def day_string(day: int) -> str:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=int(day))).isoformat()


def run_pipeline(  # noqa: PLR0915 -- the steps, in the order the state machine runs them
    *,
    input_dir: Path | None,
    output_root: Path,
    fm_overrides: dict[str, object],
    cold_start_fraction: float,
    seed: int = 42,
) -> Run:
    try:
        config = load_config(default_context())
    except ConfigError as error:
        raise PipelineError(f"cdk.json: {error}") from None
    if input_dir is not None:
        check_input(input_dir)
    stamp = f"local-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}"
    run = Run(output_root, stamp)
    for attempt in range(2, 100):  # two runs in one second get their own folders
        if not run.folder.exists():
            break
        run = Run(output_root, f"{stamp}-{attempt}")
    run.folder.mkdir(parents=True)
    results = run.results
    results["run_id"] = run.run_id

    with run.step("prepare data"):
        source = input_dir if input_dir is not None else convert_bundled(run)
        results["input"] = str(input_dir or BUNDLED)
        manifest = prepare(run, source, config)
    n, m = manifest["num_customers"], manifest["num_products"]
    results["manifest"] = manifest

    with run.step("train FM"):
        train = read_shards(run.folder / "prep" / "train")
        test = read_shards(run.folder / "prep" / "test")
        hyperparameters: dict[str, object] = {
            **config.fm_hyperparameters,
            **fm_overrides,
            "feature_dim": manifest["feature_dim"],
            "predictor_type": "regressor",
        }
        results["fm_hyperparameters"] = hyperparameters
        fm_metrics = train_factorization_machine(train, test, hyperparameters, run.folder / "fm", "FM")
        results["fm_metrics"] = fm_metrics

    with run.step("train title embeddings"):
        corpus = run.folder / "prep" / "corpus" / "corpus.txt"
        bt_hyperparameters = dict(config.blazingtext_hyperparameters)
        train_title_embeddings(
            corpus, run.folder / "blazingtext", bt_hyperparameters, "BlazingText (FastText)"
        )
        results["title_table"] = export_title_table(
            (run.folder / "blazingtext").resolve().as_uri() + "/",
            (run.folder / "prep" / "index").resolve().as_uri() + "/",
            (run.folder / "serving").resolve().as_uri() + "/",
        )

    with run.step("quality gate"):
        baselines = manifest["baselines"]
        decision = decide(
            fm_test_rmse=float(fm_metrics["test_rmse"]),
            baseline_global_mean_rmse=float(baselines["global_mean"]["rmse"]),
            baseline_bias_rmse=float(baselines["bias"]["rmse"]),
            deployed_test_rmse=None,
            min_improvement=config.gate_min_improvement,
            max_regression=config.gate_max_regression,
        )
        (run.folder / layout.GATE).write_text(json.dumps(decision, indent=1))
        results["gate"] = decision
        for reason in decision["reasons"]:
            print(f"  gate: {reason}", file=sys.stderr)

    with run.step("evaluate"):
        model = FmModel.load(run.folder / "fm" / "model.npz")
        raw = predict(model, test.indptr, test.indices, test.values)
        actual = test.labels.astype(np.float64)
        results["range_violations"] = {
            "below": int((raw < RATING_RANGE[0]).sum()),
            "above": int((raw > RATING_RANGE[1]).sum()),
            "min": float(raw.min()),
            "max": float(raw.max()),
            "rows": len(raw),
        }
        results["rmse"] = bootstrap(
            {
                "global mean": np.full(len(actual), float(baselines["global_mean"]["value"])),
                "user + item bias": bias_predictions(train, test, n, m),
                "FM": raw,
                "FM, clipped to 1..5 (as served)": np.clip(raw, *RATING_RANGE),
            },
            actual,
            seed,
        )

    record_path = run.root / layout.RUN_RECORD_KEY
    metrics: RunMetrics = {
        "fm_test_rmse": float(fm_metrics["test_rmse"]),
        "baseline_global_mean_rmse": baselines["global_mean"]["rmse"],
        "baseline_bias_rmse": baselines["bias"]["rmse"],
    }
    with RuntimeServer() as server:
        with run.step("serve"):
            server.add_endpoint(ENDPOINT_NAMES["fm"], run.folder / "fm")
            server.add_endpoint(ENDPOINT_NAMES["blazingtext"], run.folder / "blazingtext")
            write_record(record_path, run.folder, run.run_id, metrics)
        with local_aws_environment(record_path.resolve().as_uri(), server.url, config) as handlers:
            with run.step("serve"):
                results["samples"] = sample_requests(run, handlers, test, n)
            if cold_start_fraction > 0:
                with run.step("cold start experiment"):
                    results["cold_start"] = cold_start_experiment(
                        run,
                        handlers=handlers,
                        server=server,
                        config=config,
                        train=train,
                        test=test,
                        hyperparameters=hyperparameters,
                        metrics=metrics,
                        fraction=cold_start_fraction,
                        seed=seed,
                    )
                # Leave the record on the run that serves (the experiment switched it).
                write_record(record_path, run.folder, run.run_id, metrics)

    with run.step("title map"):
        results["title_map"] = title_map(run, train, n)

    results["timings_s"] = run.timings
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    (run.folder / "results.json").write_text(json.dumps(results, indent=1, default=str))
    from local.report import write_report  # noqa: PLC0415 -- matplotlib only when a report is written

    results["report"] = str(write_report(run.folder / "report", results))
    return run


def sample_requests(run: Run, handlers: ModuleType, test: SparseRecords, n: int) -> dict[str, Any]:
    """What an application sees: held-out pairs, a made-up title, similar titles."""
    index = load_index(run.folder / layout.INDEX)
    user, item, time_value = split_keys(test, n)
    pairs = []
    for row in range(min(5, len(user))):
        u = int(user[row])
        day = index.first_review_day[u] + index.time_transform.days(float(time_value[row]))
        pairs.append(
            {
                "customer_id": index.customer_ids[u],
                "product_id": index.product_ids[int(item[row])],
                "date": day_string(day),
            }
        )
    predictions = call(handlers, "predictions", {"items": pairs})["predictions"]
    for answer, row in zip(predictions, range(len(pairs)), strict=True):
        answer["actual"] = float(test.labels[row])
    probe = index.product_titles[0]
    made_up = f"{probe} Part 5"
    cold = call(
        handlers,
        "predictions",
        {
            "items": [
                {"customer_id": pairs[0]["customer_id"], "product_id": "NEW-1", "product_title": made_up}
            ]
        },
    )["predictions"]
    similar = call(handlers, "similar-titles", {"titles": [probe, made_up], "k": 5})["results"]
    return {"known_pairs": predictions, "cold_start": cold, "similar_titles": similar}


def cold_start_experiment(
    run: Run,
    *,
    handlers: ModuleType,
    server: RuntimeServer,
    config: Config,
    train: SparseRecords,
    test: SparseRecords,
    hyperparameters: dict[str, object],
    metrics: RunMetrics,
    fraction: float,
    seed: int,
) -> dict[str, Any]:
    """Hold out a sample of products entirely (from FM's training rows and from the title corpus), train
    both models again, then predict the held-out products' test ratings from their titles alone, through
    the shims' cold-start blend, and compare with the global mean and the bias model without the item."""
    folder = run.folder / "cold_start"
    index = load_index(run.folder / layout.INDEX)
    n = index.num_customers
    _, test_item, _ = split_keys(test, n)
    _, train_item, _ = split_keys(train, n)
    candidates = np.unique(test_item)
    rng = np.random.default_rng(seed)
    held = np.sort(rng.choice(candidates, size=max(1, round(fraction * len(candidates))), replace=False))
    held_tokens = {title_token(index.product_titles[i]) for i in held}

    # The models of the experiment: trained as if the held-out products did not exist yet.
    kept_train = subset(train, ~np.isin(train_item, held))
    warm_test = subset(test, ~np.isin(test_item, held))
    warm = train_factorization_machine(
        kept_train, warm_test, hyperparameters, folder / "fm", "FM without held-out"
    )
    (folder / "prep" / "corpus").mkdir(parents=True)
    corpus_lines = (run.folder / "prep" / "corpus" / "corpus.txt").read_text().splitlines()
    with (folder / "prep" / "corpus" / "corpus.txt").open("w") as f:
        for line in corpus_lines:
            f.write(" ".join(t for t in line.split() if t not in held_tokens) + "\n")
    bt_hyperparameters = dict(config.blazingtext_hyperparameters)
    train_title_embeddings(
        folder / "prep" / "corpus" / "corpus.txt",
        folder / "blazingtext",
        bt_hyperparameters,
        "FastText without held-out",
    )

    # Its index: the held-out products have no feature key to the shims (their rows keep their place so
    # that every other key stays the same).
    index_dir = folder / "prep" / "index"
    index_dir.mkdir(parents=True)
    for name in ("index.json", "customers.tsv"):
        shutil.copy(run.folder / "prep" / "index" / name, index_dir / name)
    held_set = set(int(i) for i in held)
    with (index_dir / "products.tsv").open("w") as f:
        for i, line in enumerate((run.folder / "prep" / "index" / "products.tsv").read_text().splitlines()):
            f.write(f"held-out-{i}\theld-out-{i}\n" if i in held_set else line + "\n")
    export_title_table(
        (folder / "blazingtext").resolve().as_uri() + "/",
        index_dir.resolve().as_uri() + "/",
        (folder / "serving").resolve().as_uri() + "/",
    )
    server.add_endpoint(COLD_ENDPOINTS["fm"], folder / "fm")
    server.add_endpoint(COLD_ENDPOINTS["blazingtext"], folder / "blazingtext")
    record = run.root / layout.RUN_RECORD_KEY
    experiment_metrics: RunMetrics = {**metrics, "fm_test_rmse": float(str(warm["test_rmse"]))}
    write_record(record, folder, f"{run.run_id}-cold-start", experiment_metrics, endpoints=COLD_ENDPOINTS)

    # The held-out products' test rows, asked for by product id and title as an application would.
    held_rows = np.flatnonzero(np.isin(test_item, held))
    held_test = subset(test, np.isin(test_item, held))
    user, item, time_value = split_keys(held_test, n)
    items = [
        {
            "customer_id": index.customer_ids[int(u)],
            "product_id": index.product_ids[int(i)],
            "date": day_string(index.first_review_day[int(u)] + index.time_transform.days(float(t))),
            "product_title": index.product_titles[int(i)],
        }
        for u, i, t in zip(user, item, time_value, strict=True)
    ]
    answers = predict_in_batches(handlers, items, config.serving_max_batch_size, "cold-start requests")
    answered = np.array([a.get("status") == "cold_start" for a in answers])
    blend = np.array([a.get("rating", np.nan) for a in answers], dtype=np.float64)
    actual = held_test.labels.astype(np.float64)
    mu = float(kept_train.labels.mean())
    m = index.num_products
    no_item = bias_predictions(kept_train, held_test, n, m, with_item=False)
    scores = bootstrap(
        {
            "global mean (train without held-out)": np.full(int(answered.sum()), mu),
            "user bias, no item term": no_item[answered],
            "title-neighbour blend (cold start)": blend[answered],
        },
        actual[answered],
        seed,
    )
    statuses: dict[str, int] = {}
    for a in answers:
        key = a["status"] if a["status"] != "error" else f"error: {a['error']['code']}"
        statuses[key] = statuses.get(key, 0) + 1
    return {
        "held_out_products": len(held),
        "held_out_test_rows": len(held_rows),
        "answered": int(answered.sum()),
        "statuses": statuses,
        "rmse": scores,
        "example": next((a for a in answers if a.get("status") == "cold_start"), None),
    }


def title_map(run: Run, train: SparseRecords, n: int) -> dict[str, Any]:
    """The 100 most frequent titles, for the t-SNE map; and a similarity probe in the notebook's spirit:
    a title, its real sequel, a made-up sequel, a related title, an unrelated one, a random string."""
    index = load_index(run.folder / layout.INDEX)
    vectors = SubwordVectors.load(run.folder / "blazingtext" / "vectors.bin")
    _, item, _ = split_keys(train, n)
    counts = np.bincount(item, minlength=index.num_products)
    order = np.argsort(-counts, kind="stable")
    tokens: list[str] = []
    for i in order:
        token = title_token(index.product_titles[int(i)])
        if token in vectors and token not in tokens:
            tokens.append(token)
        if len(tokens) == 100:
            break
    probe = find_sequel(index.product_titles, order, vectors)
    return {"tokens": tokens, "vectors": vectors.vectors(tokens).tolist(), "probe": probe}


def find_sequel(
    titles: list[str], order: npt.NDArray[np.int64], vectors: SubwordVectors
) -> dict[str, Any] | None:
    """The most reviewed title whose sequel ("<title> 2 (year)") is also known, with its probe rows."""
    known = {title_token(t): t for t in titles}
    for i in order[:2000]:
        title = titles[int(i)]
        base, _, year = title.rpartition(" (")
        if not base or not year.endswith(")"):
            continue
        sequels = [t for t in known.values() if t.startswith(f"{base} 2 (") or t.startswith(f"{base} II (")]
        if not sequels:
            continue
        tokens = {
            "title": title_token(title),
            "real sequel": title_token(sequels[0]),
            "made-up sequel": title_token(f"{base} 5 (2031)"),
            "random string": "abcdefghijklmn",
        }
        if not all(t in vectors for t in (tokens["title"], tokens["real sequel"])):
            continue
        all_tokens = [t for t in known if t in vectors]
        matrix = vectors.vectors(all_tokens)
        matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        query = vectors.vectors([tokens["title"]])[0]
        similarity = matrix @ (query / np.linalg.norm(query))
        ranked = [all_tokens[j] for j in np.argsort(-similarity)]
        related = next(t for t in ranked if t not in (tokens["title"], tokens["real sequel"]))
        tokens = {
            **tokens,
            "related title (its nearest other known title)": related,
            "unrelated title": ranked[-1],
        }
        probe = vectors.vectors([tokens["title"]])[0]
        rows = []
        for role, token in tokens.items():
            vector = vectors.vectors([token])[0]
            denominator = float(np.linalg.norm(probe) * np.linalg.norm(vector)) or 1.0
            rows.append({"role": role, "token": token, "cosine": float(probe @ vector) / denominator})
        return {"title": title, "rows": rows}
    return None


# ---------------------------------------------------------------------------------------------------------
# Command line


def summary(run: Run) -> str:
    r = run.results
    m = r["manifest"]
    counts = m["counts"]
    lines = [
        f"loftrec local run {r['run_id']}",
        f"  rows read {counts['rows_read']:,}, bad {sum(counts['bad_rows'].values()):,} "
        f"{counts['bad_rows']}, "
        f"kept {counts['rows_kept']:,}",
        f"  customers {m['num_customers']:,}, products {m['num_products']:,}, "
        f"train {counts['train_rows']:,}, test {counts['test_rows']:,}",
        "  test RMSE (95 % bootstrap interval):",
    ]
    for name, score in r["rmse"].items():
        lines.append(f"    {name:<34} {score['rmse']:.4f}  [{score['low']:.4f}, {score['high']:.4f}]")
    v = r["range_violations"]
    lines.append(
        f"  FM predictions outside 1..5: {v['below'] + v['above']} of {v['rows']} (min {v['min']:.2f})"
    )
    lines.append(f"  quality gate: {'deploy' if r['gate']['deploy'] else 'reject'}")
    if "cold_start" in r:
        c = r["cold_start"]
        lines.append(
            f"  cold start: {c['held_out_products']} products held out, {c['answered']} of "
            f"{c['held_out_test_rows']} test rows answered from titles:"
        )
        for name, score in c["rmse"].items():
            lines.append(f"    {name:<34} {score['rmse']:.4f}  [{score['low']:.4f}, {score['high']:.4f}]")
    lines.append("  timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in r["timings_s"].items()))
    lines.append(f"  peak RSS {r['peak_rss_mb']:,.0f} MB")
    lines.append(f"report: {r['report']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--input", type=Path, help="folder of Amazon-schema TSV files (default: bundled MovieLens)"
    )
    parser.add_argument(
        "--output", type=Path, default=ROOT / "local-bucket", help="where runs/ and serving/ go (%(default)s)"
    )
    parser.add_argument(
        "--fm-hyperparameters",
        default="{}",
        help="JSON object of FM hyperparameters over cdk.json's, e.g. '{\"epochs\": 10}'",
    )
    parser.add_argument(
        "--cold-start-fraction",
        type=float,
        default=0.1,
        help="share of the test set's products held out for the cold start; 0 skips it (%(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        overrides = json.loads(args.fm_hyperparameters)
        if not isinstance(overrides, dict):
            raise PipelineError("--fm-hyperparameters must be a JSON object")
        if not 0 <= args.cold_start_fraction < 1:
            raise PipelineError("--cold-start-fraction must be at least 0 and below 1")
        run = run_pipeline(
            input_dir=args.input,
            output_root=args.output,
            fm_overrides=overrides,
            cold_start_fraction=args.cold_start_fraction,
        )
    except (PipelineError, json.JSONDecodeError) as error:
        print(f"loftrec: {error}", file=sys.stderr)
        return 2
    print(summary(run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
