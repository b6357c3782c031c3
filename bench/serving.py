"""Serving shims: cold init, import time by package, warm overhead per request, and the similar-titles scan,
on a synthetic run of the notebook's size (150k customers, 40k products, a 40k x 100 title table), generated
into a temp folder.

    .venv/bin/python bench/serving.py [--customers 150000] [--products 40000] [--dim 100] [--repeat 2000]

Figures, not assertions. The endpoints' own time is left out: inside this script only, the shims' endpoint
invoker is replaced at its boundary by one that returns a pre-computed answer. The warm figures include the
shims' log line and EMF metric records (lambdas/kit), written to /dev/null.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import heapq
import json
import operator
import os
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

# As in the Lambda, where lambdas/serving/handlers.py sets it before numpy loads. Run with
# OPENBLAS_NUM_THREADS=2 to see what OpenBLAS's worker threads do to the similar-titles scan.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from contract import layout  # noqa: E402 (after the path set-up)
from contract.documents import run_record  # noqa: E402
from contract.features import TimeTransform  # noqa: E402
from contract.index import write_index  # noqa: E402
from lambdas.serving.title_table import export_title_table  # noqa: E402


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    p99 = ordered[int(0.99 * (len(ordered) - 1))]
    return (
        f"p50 {p50 * 1000:8.3f} ms   p90 {p90 * 1000:8.3f} ms   p99 {p99 * 1000:8.3f} ms   (n={len(ordered)})"
    )


def _time(call: Callable[[], object], repeat: int) -> list[float]:
    call()  # warm
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def generate_run(folder: Path, customers: int, products: int, dim: int) -> Path:
    """A run in the agreed layout: prep/index/, blazingtext/vectors.txt, serving/ (exported), the record."""
    rng = np.random.default_rng(0)
    days = rng.integers(13000, 16500, size=customers)
    titles = [f"Title Number {i} Season {i % 7 + 1}" for i in range(products)]
    write_index(
        folder / "runs" / "bench" / layout.INDEX,
        customer_ids=[str(10_000_000 + u) for u in range(customers)],
        first_review_days=days.tolist(),
        product_ids=[f"B{i:09d}" for i in range(products)],
        titles=titles,
        time_transform=TimeTransform(2704),
        global_mean=4.2,
    )
    vectors = rng.normal(size=(products + 500, dim)).astype(np.float32)
    words = [t.lower().replace(" ", "-") for t in titles] + [f"not-a-title-{i}" for i in range(500)]
    bt = folder / "runs" / "bench" / "blazingtext"
    bt.mkdir(parents=True)
    with (bt / "vectors.txt").open("w") as out:
        out.write(f"{len(words)} {dim}\n")
        for word, row in zip(words, vectors, strict=True):
            out.write(word + " " + " ".join(f"{v:.5f}" for v in row) + "\n")
    return folder / "runs" / "bench"


def write_record(folder: Path, run: Path) -> Path:
    record = folder / "serving" / "current.json"
    record.parent.mkdir(parents=True)
    document = run_record(
        run_id="bench",
        deployed_at="2024-01-01T00:00:00Z",
        run_uri=run.as_uri() + "/",
        metrics={"fm_test_rmse": 1.0, "baseline_global_mean_rmse": 1.2, "baseline_bias_rmse": 1.1},
        endpoint_configs=None,
        endpoints={"fm": "fm", "blazingtext": "bt"},
    )
    record.write_text(json.dumps(document))
    return record


COLD_INIT = """
import time
t0 = time.perf_counter()
import boto3, numpy
t1 = time.perf_counter()
import aws_lambda_powertools.logging, aws_lambda_powertools.metrics
t2 = time.perf_counter()
from lambdas.serving import handlers
t3 = time.perf_counter()
handlers.CURRENT_RUN.get()
t4 = time.perf_counter()
handlers.ENDPOINTS.client
t5 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)
"""


def _lambda_like_environment(record: Path) -> dict[str, str]:
    return dict(
        os.environ, RUN_RECORD_URI=record.as_uri(), AWS_DEFAULT_REGION="us-east-1", PYTHONPATH=str(ROOT)
    )


def cold_init(record: Path, runs: int) -> None:
    env = _lambda_like_environment(record)
    samples = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", COLD_INIT], env=env, capture_output=True, text=True, check=True, cwd=ROOT
        )
        samples.append([float(x) for x in out.stdout.splitlines()[-1].split()])  # after the shims' log lines
    deps, powertools, handlers, load, client = (
        statistics.median(column) for column in zip(*samples, strict=True)
    )
    total = deps + powertools + handlers + load + client
    print(f"cold init (median of {runs} fresh interpreters, interpreter start-up excluded):")
    print(f"  import boto3 + numpy                       {deps * 1000:8.1f} ms")
    print(f"  import Powertools (Logger, EMF metrics)    {powertools * 1000:8.1f} ms")
    print(f"  import handlers + kit + configuration      {handlers * 1000:8.1f} ms")
    print(f"  load record + index + title table          {load * 1000:8.1f} ms")
    print(f"  sagemaker-runtime client (first request)   {client * 1000:8.1f} ms")
    print(f"  total                                      {total * 1000:8.1f} ms   (target < 1000 ms)")


def import_times(record: Path, runs: int) -> None:
    """`python -X importtime` of the handlers module: each module's own time, summed by top-level package
    (the self times add up to the whole import), median of `runs` fresh interpreters."""
    env = _lambda_like_environment(record)
    by_package: dict[str, list[float]] = collections.defaultdict(list)
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import lambdas.serving.handlers"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        totals: dict[str, float] = collections.defaultdict(float)
        for line in out.stderr.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            own, _cumulative, module = line.removeprefix("import time:").split("|")
            totals[module.strip().split(".")[0]] += int(own) / 1e6
        for package, seconds in totals.items():
            by_package[package].append(seconds)
    medians = {
        package: statistics.median(values + [0.0] * (runs - len(values)))
        for package, values in by_package.items()
    }
    shown = (
        "numpy",
        "boto3",
        "botocore",
        "aws_lambda_powertools",
        "jmespath",
        "typing_extensions",
        "lambdas",
        "contract",
    )
    print(f"import time of lambdas.serving.handlers by package (python -X importtime, median of {runs}):")
    for package in shown:
        print(f"  {package:24s} {medians.get(package, 0.0) * 1000:8.1f} ms")
    rest = sum(seconds for package, seconds in medians.items() if package not in shown)
    print(f"  {'everything else':24s} {rest * 1000:8.1f} ms")
    print(f"  {'total':24s} {sum(medians.values()) * 1000:8.1f} ms")


class PrecomputedEndpoints:
    """The endpoint boundary answered from memory: FM one score per instance, BlazingText a fixed vector."""

    def __init__(self, dim: int) -> None:
        self.vector = np.random.default_rng(1).normal(size=dim).tolist()

    def invoke(self, model: str, endpoint: str, payload: Any) -> Any:
        body = json.dumps(payload)  # the shims serialize the request; count that too
        request = json.loads(body)
        if model == "fm":
            return {"predictions": [{"score": 4.0} for _ in request["instances"]]}
        return [{"word": w, "vector": self.vector} for w in request["instances"]]


def stdlib_nearest(
    rows: list[array[float]] | list[list[float]], query: list[float], k: int
) -> list[tuple[float, int]]:
    """The best pure-stdlib scan found: one sum(map(mul)) per row, then heapq.nlargest."""
    mul = operator.mul
    scores = [sum(map(mul, row, query)) for row in rows]
    return heapq.nlargest(k, zip(scores, range(len(scores)), strict=True))


def notebook_fm_serializer_bench(
    batch: int, repeat: int, feature_dim: int
) -> tuple[list[float], list[float]]:
    """The notebook's fm_serializer (pandas iterrows) against the shims' request building, same batch."""
    import pandas as pd  # type: ignore[import-untyped]  # noqa: PLC0415 (only for the comparison; no stubs)

    from lambdas.serving.endpoints import fm_instance  # noqa: PLC0415

    rng = np.random.default_rng(2)
    df = pd.DataFrame(
        {
            "user": rng.integers(0, 150_000, size=batch),
            "item": rng.integers(150_000, feature_dim - 1, size=batch),
            "days_since_first": rng.integers(0, 2000, size=batch),
        }
    )

    # The notebook's code, verbatim (its globals: customer_index, product_index).
    customer_index = np.zeros(150_000)
    product_index = np.zeros(feature_dim - 1 - 150_000)

    def fm_serializer(df: Any) -> str:
        feature_dim = customer_index.shape[0] + product_index.shape[0] + 1
        js: dict[str, Any] = {"instances": []}
        for _index, data in df.iterrows():
            js["instances"].append(
                {
                    "data": {
                        "features": {
                            "values": [1, 1, data["days_since_first"]],
                            "keys": [data["user"], data["item"], feature_dim - 1],
                            "shape": [feature_dim],
                        }
                    }
                }
            )
        return json.dumps(js, default=int)

    class _Index:  # what fm_instance reads of the index
        num_customers = 150_000

        def __init__(self) -> None:
            self.feature_dim = feature_dim
            self.time_key = feature_dim - 1

        def product_key(self, row: int) -> int:
            return self.num_customers + row

    index = _Index()
    transform = TimeTransform(2704)
    users = df["user"].tolist()
    items = [i - 150_000 for i in df["item"].tolist()]
    days = df["days_since_first"].tolist()

    def shims() -> str:
        instances = [
            fm_instance(index, u, i, transform(d))  # type: ignore[arg-type]
            for u, i, d in zip(users, items, days, strict=True)
        ]
        return json.dumps({"instances": instances}, separators=(",", ":"))

    return _time(lambda: fm_serializer(df), repeat), _time(shims, repeat)


def similarity_scan(table: Any, repeat: int) -> None:
    """The cold-start / similar-titles scan: numpy as shipped, and the best pure-stdlib versions."""
    query = table.matrix[123].copy()
    query += np.random.default_rng(3).normal(scale=0.1, size=query.shape).astype(np.float32)
    query /= np.linalg.norm(query)
    rows = [array("f", table.matrix[r].tobytes()) for r in range(len(table.tokens))]
    lists = [row.tolist() for row in rows]  # about 130 MB of Python floats for 40k x 100
    query_list = query.tolist()
    expected = [table.rows[t] for t, _ in table.nearest([query], 10)[0]]
    assert [r for _, r in stdlib_nearest(rows, query_list, 10)] == expected

    numpy_samples = _time(lambda: table.nearest([query], 10), repeat // 4)
    array_samples = _time(lambda: stdlib_nearest(rows, query_list, 10), 20)
    list_samples = _time(lambda: stdlib_nearest(lists, query_list, 10), 20)
    ratio = statistics.median(array_samples) / statistics.median(numpy_samples)
    print()
    print(f"nearest 10 of {len(table.tokens)} x {table.dim} known titles for one title:")
    print(f"  numpy matmul (lambdas/serving/vectors) {_percentiles(numpy_samples)}   (target p50 < 50 ms)")
    print("  pure stdlib, sum(map(operator.mul, row, query)) per row + heapq.nlargest:")
    print(f"    rows as array('f')                   {_percentiles(array_samples)}   ({ratio:.0f}x numpy)")
    print(f"    rows as lists of floats              {_percentiles(list_samples)}")


def _event(body: Any, path: str) -> dict[str, Any]:
    return {
        "httpMethod": "POST",
        "path": path,
        "requestContext": {"requestId": "b"},
        "body": json.dumps(body),
    }


def warm_overheads(handlers: Any, repeat: int) -> None:
    known = {"customer_id": "10000042", "product_id": "B000000042"}
    hundred = [{"customer_id": str(10_000_000 + i), "product_id": f"B{i:09d}"} for i in range(100)]
    new = {"customer_id": "10000042", "product_id": "NEW", "product_title": "Title Number 7 Season 9"}
    similar = {"titles": ["Title Number 7 Season 9"], "k": 10}
    cases = [
        ("predict, 1 known pair", "/predictions", {"items": [known]}, repeat),
        ("predict, 100 known pairs", "/predictions", {"items": hundred}, repeat // 10),
        ("predict, 1 cold start (k=10)", "/predictions", {"items": [new]}, repeat // 4),
        ("similar titles, 1 made-up title", "/similar-titles", similar, repeat // 4),
    ]
    print("warm handler overhead, endpoints answered from memory (JSON in/out, validation, lookups, logs):")
    for label, path, body, times in cases:
        handler = handlers.predict_handler if path == "/predictions" else handlers.similar_titles_handler
        event = _event(body, path)
        # The handlers' log line and metric records per request are written (and counted), to /dev/null.
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
            response = handler(event, None)
            assert response["statusCode"] == 200, response
            assert "error" not in response["body"], response
            samples = _time(lambda: handler(event, None), times)  # noqa: B023 (called at once)
        figures = _percentiles(samples)
        target = "   (target p50 < 2 ms)" if label == "predict, 1 known pair" else ""
        print(f"  {label:32s} {figures}{target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=150_000)
    parser.add_argument("--products", type=int, default=40_000)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--cold-runs", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="loftrec-bench-serving-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        run = generate_run(folder, args.customers, args.products, args.dim)
        print(f"synthetic run: {args.customers} customers, {args.products} products, {args.dim}-d vectors "
              f"({time.perf_counter() - started:.1f} s to generate)")  # fmt: skip
        started = time.perf_counter()
        summary = export_title_table(
            (run / "blazingtext" / "vectors.txt").as_uri(),
            (run / "prep" / "index").as_uri() + "/",
            (run / "serving").as_uri() + "/",
        )
        vectors_mb = (run / "blazingtext" / "vectors.txt").stat().st_size / 1e6
        print(f"title-table export (stdlib, streaming): {summary['count']} titles from {vectors_mb:.0f} MB "
              f"vectors.txt in {time.perf_counter() - started:.2f} s")  # fmt: skip
        record = write_record(folder, run)
        print()
        cold_init(record, args.cold_runs)
        print()
        import_times(record, args.cold_runs)
        print()

        os.environ.update(RUN_RECORD_URI=record.as_uri(), AWS_DEFAULT_REGION="us-east-1")
        from lambdas.serving import handlers  # noqa: PLC0415 (configured by the environment just set)

        handlers.ENDPOINTS = PrecomputedEndpoints(args.dim)  # type: ignore[assignment]
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
            run_state = handlers.CURRENT_RUN.get()

        warm_overheads(handlers, args.repeat)

        similarity_scan(run_state.titles, args.repeat)

        feature_dim = args.customers + args.products + 1
        print()
        print("FM request building, the notebook's fm_serializer (pandas iterrows) vs the shims (same rows):")
        for size, repeat in ((1, args.repeat // 2), (100, args.repeat // 20)):
            notebook, shims = notebook_fm_serializer_bench(size, repeat, feature_dim)
            ratio = statistics.median(notebook) / statistics.median(shims)
            print(f"  batch {size:3d}: notebook {_percentiles(notebook)}")
            print(f"             shims    {_percentiles(shims)}   ({ratio:.0f}x faster)")


if __name__ == "__main__":
    main()
