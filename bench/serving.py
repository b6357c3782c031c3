"""Serving shims: cold init (the FM factors' load included), resident memory, import time by package, warm
time per request inside the handler (/recommendations, /predictions with the cold start in FM's space,
/similar-titles), and the similar-titles scan, on a synthetic run of the notebook's size (120k customers,
58k products, 256 factors, a 58k x 100 title table), generated into a temp folder.

    .venv/bin/python bench/serving.py [--customers 120000] [--products 58000] [--factors 256] [--dim 100]
        [--repeat 2000] [--cold-runs 5]

The run is read as the Lambda reads it from S3 (the deployed-run record names s3:// URIs): every file into
memory, each factor file in 8 MB byte ranges side by side, the arrays views of the bytes. Inside this script
only, the S3 GETs are answered from the temp folder (the page cache): the network's time is left out and the
bytes it has to carry are printed instead; the stand-in reads each file whole and copies it once, so the peak
memory it shows is above that of storage.read_large, which fills one buffer. The endpoints' own time is left
out too: the shims' endpoint invoker is replaced at its boundary by one that returns a pre-computed answer.
The warm figures include the shims' log line and EMF metric records (lambdas/kit), written to /dev/null. One
BLAS thread, as the Lambda sets it.
Figures, not assertions: the machine is shared, its load average is printed beside them.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import heapq
import itertools
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

from bench.recommend import make_run  # noqa: E402 (after the path set-up)
from contract import layout  # noqa: E402
from contract.documents import run_record  # noqa: E402
from contract.features import TimeTransform  # noqa: E402
from contract.index import load_index, title_token  # noqa: E402
from fm.coldstart import Shrinkage  # noqa: E402
from fm.ranking import Ranking  # noqa: E402
from lambdas.serving.title_table import export_title_table  # noqa: E402

BUCKET = "loftrec-bench"
"""The bucket the record names; its GETs are answered from the temp folder (emulated_s3)."""
LAMBDA_MEMORY_MB = 1024
"""The shims' configured memory today (stacks/serving.py)."""
TARGETS = {"p50_ms": 10.0, "p99_ms": 30.0, "cold_init_s": 1.5}


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


def generate_run(folder: Path, customers: int, products: int, factors: int, dim: int) -> Path:
    """A run in the agreed layout: prep/index/ and serving/fm/ (bench/recommend.py's synthetic factors, ~33
    reviewed products per customer), blazingtext/vectors.txt, serving/ (the title table, exported),
    serving/cold_start.json and serving/ranking.json."""
    run = folder / "runs" / "bench"
    make_run(run, customers, products, factors, seed=0)
    titles = load_index(run / layout.INDEX).product_titles
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(products + 500, dim)).astype(np.float32)
    words = [title_token(t) for t in titles] + [f"not-a-title-{i}" for i in range(500)]
    bt = run / "blazingtext"
    bt.mkdir(parents=True)
    with (bt / "vectors.txt").open("w") as out:
        out.write(f"{len(words)} {dim}\n")
        for word, row in zip(words, vectors, strict=True):
            out.write(word + " " + " ".join(f"{v:.5f}" for v in row) + "\n")
    (run / layout.COLD_START).write_text(json.dumps(Shrinkage(alpha=1.0, min_similarity=0.2).to_json()))
    (run / layout.RANKING).write_text(json.dumps(Ranking(0.75).to_json()))
    return run


def write_record(folder: Path, run: Path, run_id: str = "bench") -> Path:
    """The deployed-run record, naming the run by s3:// URIs (answered from `folder`: emulated_s3)."""
    record = folder / "serving" / f"current-{run_id}.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    document = run_record(
        run_id=run_id,
        deployed_at="2024-01-01T00:00:00Z",
        run_uri=f"s3://{BUCKET}/runs/{run.name}/",
        metrics={"fm_test_rmse": 1.0, "baseline_global_mean_rmse": 1.2, "baseline_bias_rmse": 1.1},
        endpoint_configs=None,
        endpoints={"fm": "fm", "blazingtext": "bt"},
    )
    record.write_text(json.dumps(document))
    return record


def emulated_s3(folder: Path) -> None:
    """lambdas.kit.storage's reads of s3://loftrec-bench/<key> (read_bytes, and read_large's byte ranges)
    answered from folder/<key>, whole: the shims' S3 code path (deployment.py) without the network."""
    from lambdas.kit import storage  # noqa: PLC0415

    read, read_large = storage.read_bytes, storage.read_large
    prefix = f"s3://{BUCKET}/"

    def read_bytes(uri: str) -> bytes:
        return (folder / uri.removeprefix(prefix)).read_bytes() if uri.startswith(prefix) else read(uri)

    def read_in_ranges(uri: str, *, connections: int = 8) -> bytearray:
        if uri.startswith(prefix):
            return bytearray((folder / uri.removeprefix(prefix)).read_bytes())
        return read_large(uri, connections=connections)

    storage.read_bytes = read_bytes
    storage.read_large = read_in_ranges


def served_bytes(run: Path) -> dict[str, float]:
    """MB the shims read from S3 for a run: the index and title table, and the factors' files."""
    files = {
        "index": [run / layout.INDEX / n for n in ("index.json", "customers.tsv", "products.tsv")],
        "title table": [run / layout.SERVING / n for n in layout.TITLE_TABLE_FILES],
        "factors": [p for p in (run / layout.SERVING_FACTORS).iterdir() if p.is_file()],
    }
    return {name: sum(p.stat().st_size for p in paths) / 1e6 for name, paths in files.items()}


COLD_INIT = """
import sys, time
from pathlib import Path
t0 = time.perf_counter()
import boto3, numpy
t1 = time.perf_counter()
import aws_lambda_powertools.logging, aws_lambda_powertools.metrics
t2 = time.perf_counter()
from lambdas.serving import handlers
t3 = time.perf_counter()
from bench.serving import emulated_s3, rss_mb
emulated_s3(Path(sys.argv[1]))
t3 = time.perf_counter() - (t3 - t2)
handlers.CURRENT_RUN.get()
t4 = time.perf_counter()
handlers.ENDPOINTS.client
t5 = time.perf_counter()
event = {"httpMethod": "POST", "requestContext": {}, "body": '{"customer_id": "C00000042", "k": 10}'}
assert handlers.recommendations_handler(event, None)["statusCode"] == 200
t6 = time.perf_counter()
loaded = rss_mb()
# A run switch: the next run is loaded while the current one still serves.
from lambdas.serving.deployment import load_run
from lambdas.kit.storage import read_run_record
current = handlers.CURRENT_RUN.get()
switch = time.perf_counter()
following = load_run(read_run_record(sys.argv[2]))
switched = time.perf_counter() - switch
print(t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, loaded, rss_mb("VmHWM"), switched)
"""


def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory (VmRSS) or its peak (VmHWM), in MB, from /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _lambda_like_environment(record: Path) -> dict[str, str]:
    return dict(
        os.environ, RUN_RECORD_URI=record.as_uri(), AWS_DEFAULT_REGION="us-east-1", PYTHONPATH=str(ROOT)
    )


def cold_init(folder: Path, record: Path, next_record: Path, runs: int) -> None:
    env = _lambda_like_environment(record)
    samples = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", COLD_INIT, str(folder), next_record.as_uri()],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        samples.append([float(x) for x in out.stdout.splitlines()[-1].split()])  # after the shims' log lines
    deps, powertools, handlers, load, client, first, loaded, peak, switch = (
        statistics.median(column) for column in zip(*samples, strict=True)
    )
    total = deps + powertools + handlers + load + client
    target = TARGETS["cold_init_s"] * 1000
    print(f"cold init (median of {runs} fresh interpreters, start-up excluded, S3 from the page cache):")
    print(f"  import boto3 + numpy                       {deps * 1000:8.1f} ms")
    print(f"  import Powertools (Logger, EMF metrics)    {powertools * 1000:8.1f} ms")
    print(f"  import handlers + kit + fm + configuration {handlers * 1000:8.1f} ms")
    print(f"  load record, index, title table, factors   {load * 1000:8.1f} ms")
    print(f"  sagemaker-runtime client (first request)   {client * 1000:8.1f} ms")
    print(f"  total                                      {total * 1000:8.1f} ms   "
          f"(target < {target:.0f} ms: {total * 1000 / target:.2f} of it)")  # fmt: skip
    print(f"  first /recommendations after the init      {first * 1000:8.1f} ms")
    of = LAMBDA_MEMORY_MB
    print(f"resident memory: {loaded:.0f} MB after the init and a request ({loaded / of:.2f} of the "
          f"function's {of} MB); peak {peak:.0f} MB ({peak / of:.2f}) while the next run loads beside the "
          f"current one ({switch * 1000:.0f} ms)")  # fmt: skip


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
        "fm",
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
    batch: int, repeat: int, customers: int, products: int
) -> tuple[list[float], list[float]]:
    """The notebook's fm_serializer (pandas iterrows) against the shims' request building, same batch."""
    import pandas as pd  # type: ignore[import-untyped]  # noqa: PLC0415 (only for the comparison; no stubs)

    from lambdas.serving.endpoints import fm_instance  # noqa: PLC0415

    feature_dim = customers + products + 1
    rng = np.random.default_rng(2)
    df = pd.DataFrame(
        {
            "user": rng.integers(0, customers, size=batch),
            "item": rng.integers(customers, feature_dim - 1, size=batch),
            "days_since_first": rng.integers(0, 2000, size=batch),
        }
    )

    # The notebook's code, verbatim (its globals: customer_index, product_index).
    customer_index = np.zeros(customers)
    product_index = np.zeros(feature_dim - 1 - customers)

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
        num_customers = customers

        def __init__(self) -> None:
            self.feature_dim = feature_dim
            self.time_key = feature_dim - 1

        def product_key(self, row: int) -> int:
            return self.num_customers + row

    index = _Index()
    transform = TimeTransform(2704)
    users = df["user"].tolist()
    items = [i - customers for i in df["item"].tolist()]
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


def _measure(handler: Callable[[Any, Any], Any], events: list[dict[str, Any]], times: int) -> list[float]:
    """Per-request seconds inside the handler, cycling through the events (their log lines and metric
    records written and counted, to /dev/null)."""
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        for event in events[:3]:
            response = handler(event, None)
            assert response["statusCode"] == 200, response
            assert '"error"' not in response["body"], response
        cycle = itertools.cycle(events)
        return _time(lambda: handler(next(cycle), None), times)


def _target(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50, p99 = statistics.median(ordered) * 1000, ordered[int(0.99 * (len(ordered) - 1))] * 1000
    return f"   (p50 {p50 / TARGETS['p50_ms']:.2f} of 10 ms, p99 {p99 / TARGETS['p99_ms']:.2f} of 30 ms)"


def warm_overheads(handlers: Any, customers: int, repeat: int) -> None:
    rng = np.random.default_rng(4)
    ids = [f"C{u:08d}" for u in rng.integers(0, customers, 500)]
    known = {"customer_id": "C00000042", "product_id": "B000000042"}
    hundred = [{"customer_id": f"C{i:08d}", "product_id": f"B{i:09d}"} for i in range(100)]
    new = {"customer_id": "C00000042", "product_id": "NEW", "product_title": "Product title number 7 Part 2"}
    ten_new = [new | {"customer_id": c, "product_title": f"Product title number {n} Part 2"} for n, c in
               enumerate(ids[:10])]  # fmt: skip
    known_title = new | {"product_title": "Product Title Number 7"}
    similar = {"titles": ["Product title number 7 Part 2"], "k": 10}
    cases: list[tuple[str, str, list[dict[str, Any]], int, bool]] = [
        ("recommendations, k=10", "/recommendations", [{"customer_id": c} for c in ids], repeat, True),
        ("recommendations, k=100", "/recommendations", [{"customer_id": c, "k": 100} for c in ids],
         repeat // 4, True),
        ("recommendations, k=10, all products", "/recommendations",
         [{"customer_id": c, "exclude_reviewed": False} for c in ids], repeat // 4, True),
        ("recommendations, unknown customer", "/recommendations", [{"customer_id": "NEW"}], repeat // 4,
         True),
        ("predict, 1 known pair", "/predictions", [{"items": [known]}], repeat, False),
        ("predict, 100 known pairs", "/predictions", [{"items": hundred}], repeat // 10, False),
        ("predict, 1 cold start (k=10)", "/predictions", [{"items": [new]}], repeat // 4, False),
        ("predict, 1 cold start, known title", "/predictions", [{"items": [known_title]}], repeat // 4,
         False),
        ("predict, 10 cold starts (k=10)", "/predictions", [{"items": ten_new}], repeat // 10, False),
        ("similar titles, 1 made-up title", "/similar-titles", [similar], repeat // 4, False),
    ]  # fmt: skip
    routes = {
        "/predictions": handlers.predict_handler,
        "/similar-titles": handlers.similar_titles_handler,
        "/recommendations": handlers.recommendations_handler,
    }
    print(
        "warm time inside the handler, endpoints answered from memory (JSON in/out, validation, lookups, "
        f"top-N, logs); load average {load_average()}:"
    )
    for label, path, bodies, times, targeted in cases:
        samples = _measure(routes[path], [_event(body, path) for body in bodies], times)
        target = _target(samples) if targeted else ""
        if label == "predict, 1 known pair":
            target = "   (target p50 < 2 ms)"
        print(f"  {label:38s} {_percentiles(samples)}{target}")


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=120_000)
    parser.add_argument("--products", type=int, default=58_000)
    parser.add_argument("--factors", type=int, default=256)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--cold-runs", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="loftrec-bench-serving-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        run = generate_run(folder, args.customers, args.products, args.factors, args.dim)
        print(f"synthetic run: {args.customers:,} customers, {args.products:,} products, {args.factors} "
              f"factors, {args.dim}-d title vectors ({time.perf_counter() - started:.1f} s to generate); "
              f"{len(os.sched_getaffinity(0))} cores, load average {load_average()}")  # fmt: skip
        started = time.perf_counter()
        summary = export_title_table(
            (run / "blazingtext" / "vectors.txt").as_uri(),
            (run / "prep" / "index").as_uri() + "/",
            (run / "serving").as_uri() + "/",
        )
        vectors_mb = (run / "blazingtext" / "vectors.txt").stat().st_size / 1e6
        print(f"title-table export (stdlib, streaming): {summary['count']} titles from {vectors_mb:.0f} MB "
              f"vectors.txt in {time.perf_counter() - started:.2f} s")  # fmt: skip
        sizes = served_bytes(run)
        listed = ", ".join(f"{name} {mb:.0f} MB" for name, mb in sizes.items())
        print(f"read from S3 at a run's first request: {listed} ({sum(sizes.values()):.0f} MB)")
        record = write_record(folder, run)
        next_record = write_record(folder, run, "bench-next")
        print()
        cold_init(folder, record, next_record, args.cold_runs)
        print()
        import_times(record, args.cold_runs)
        print()

        os.environ.update(RUN_RECORD_URI=record.as_uri(), AWS_DEFAULT_REGION="us-east-1")
        from lambdas.serving import handlers  # noqa: PLC0415 (configured by the environment just set)

        emulated_s3(folder)
        handlers.ENDPOINTS = PrecomputedEndpoints(args.dim)  # type: ignore[assignment]
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
            run_state = handlers.CURRENT_RUN.get()

        warm_overheads(handlers, args.customers, args.repeat)

        similarity_scan(run_state.titles, args.repeat)

        print()
        print("FM request building, the notebook's fm_serializer (pandas iterrows) vs the shims (same rows):")
        for size, repeat in ((1, args.repeat // 2), (100, args.repeat // 20)):
            notebook, shims = notebook_fm_serializer_bench(size, repeat, args.customers, args.products)
            ratio = statistics.median(notebook) / statistics.median(shims)
            print(f"  batch {size:3d}: notebook {_percentiles(notebook)}")
            print(f"             shims    {_percentiles(shims)}   ({ratio:.0f}x faster)")


if __name__ == "__main__":
    main()
