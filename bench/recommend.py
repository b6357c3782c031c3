"""Top-N at the notebook's scale: the shim's single-customer call and the batch job, on synthetic factors.

    .venv/bin/python bench/recommend.py [--customers 120000] [--products 58000] [--factors 256]
        [--requests 2000] [--threading workers|blas|both|none] [--step-rows 4000000]

Writes a synthetic run into a temp folder (random float32 factors, ~33 reviewed products per customer as in
the notebook's 4M reviews over 120k customers, an index of the same size), then measures in fresh processes,
so that the BLAS thread count is set before numpy loads:
- the shim (OPENBLAS_NUM_THREADS=1, as the Lambda sets it): the factors' load (mapped, and read whole), the
  resident memory they add, and p50 / p99 of fm.topn.recommend (top 10, reviewed excluded) for random
  customers, against the bare matrix-vector product over the item matrix, which bounds it from below;
- the batch (python -m jobs.recommend's run_recommend, JSON Lines written): seconds, customers per second
  and peak RSS, with --threading workers (2 worker threads x 1 BLAS thread, the job's default), blas
  (1 worker x 2 BLAS threads) or both;
- the serving-factors step (fm.factors.build_and_write, what a Lambda step runs): model.tar.gz of
  random parameters (fm.artifact) and --step-rows train rows in 4 RecordIO shards in, serving/fm/ out;
  seconds and peak RSS (0 rows: skipped).

The files are read from the page cache (just written); a Lambda reads them from S3 first. Figures, not
assertions: the machine is shared, its load average is printed beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"p50_ms": 10.0, "p99_ms": 30.0, "cold_load_s": 1.5, "batch_s": 180.0, "batch_rss_mb": 4096.0}


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_run(folder: Path, customers: int, products: int, factors: int, seed: int) -> None:
    import numpy as np  # noqa: PLC0415 (the parent process sets no BLAS threads: numpy loads here)

    from contract.features import TimeTransform  # noqa: PLC0415
    from contract.index import write_index  # noqa: PLC0415
    from fm.factors import ServingFactors, write_factors  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    per_customer = rng.poisson(33, customers).clip(1, products)
    owner = np.repeat(np.arange(customers, dtype=np.int64), per_customer)
    # Reviews follow popularity (a Zipf-like law over the product rows, which go by review count).
    weights = 1.0 / np.arange(1, products + 1) ** 0.8
    drawn = rng.choice(products, size=owner.shape[0], p=weights / weights.sum())
    pairs = np.unique(owner * products + drawn)
    indptr = np.zeros(customers + 1, np.int64)
    np.cumsum(np.bincount(pairs // products, minlength=customers), out=indptr[1:])
    indices = (pairs % products).astype(np.int32)
    scale = 0.05
    synthetic = ServingFactors(
        w0=4.2,
        time_weight=0.1,
        time_factor=(rng.standard_normal(factors, dtype=np.float32) * scale),
        items=rng.standard_normal((products, factors + 2), dtype=np.float32) * scale,
        customers=rng.standard_normal((customers, factors + 2), dtype=np.float32) * scale,
        reviewed_indptr=indptr,
        reviewed_indices=indices,
        popularity=np.bincount(indices, minlength=products).astype(np.int64),
        reviewed_rows=int(indptr[-1]),
    )
    write_factors(folder / "serving" / "fm", synthetic)
    write_index(
        folder / "prep" / "index",
        customer_ids=[f"C{u:08d}" for u in range(customers)],
        first_review_days=rng.integers(13000, 16500, customers).tolist(),
        product_ids=[f"B{i:09d}" for i in range(products)],
        titles=[f"Product title number {i}" for i in range(products)],
        time_transform=TimeTransform(3000),
        global_mean=4.2,
    )


# ------------------------------------------------------------------------------------------- in the child


def shim(folder: Path, requests: int, seed: int) -> dict[str, Any]:
    started = time.perf_counter()
    import datetime as dt  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415

    from contract.index import load_index  # noqa: PLC0415
    from fm.factors import load_factors  # noqa: PLC0415
    from fm.topn import recommend  # noqa: PLC0415

    imported = time.perf_counter()
    index = load_index(folder / "prep" / "index")
    indexed = time.perf_counter()
    baseline = rss_mb()
    factors = load_factors(folder / "serving" / "fm", features=index.features, mmap=True)
    mapped = time.perf_counter()
    date = dt.date(2015, 8, 31)
    recommend(factors, index, index.customer_ids[0], date, k=10)
    first = time.perf_counter()
    mapped_rss = rss_mb() - baseline
    whole = time.perf_counter()
    read = load_factors(folder / "serving" / "fm", features=index.features, mmap=False)
    whole_s = time.perf_counter() - whole
    read_rss = rss_mb() - baseline - mapped_rss
    del read

    rng = np.random.default_rng(seed)
    ids = [index.customer_ids[u] for u in rng.integers(0, index.num_customers, requests)]
    for customer_id in ids[:50]:  # warm
        recommend(factors, index, customer_id, date, k=10)
    # Each call beside the bare product over the item matrix, which bounds it from below: pairs of timings
    # taken a moment apart, so that the ratio holds while other processes come and go.
    query = np.ones(factors.items.shape[1], np.float32)
    times, bare = [], []
    for customer_id in ids:
        t0 = time.perf_counter()
        recommend(factors, index, customer_id, date, k=10)
        t1 = time.perf_counter()
        factors.items @ query
        bare.append(time.perf_counter() - t1)
        times.append(t1 - t0)
    ms = np.array(times) * 1e3
    return {
        "import_s": imported - started,
        "index_s": indexed - imported,
        "map_s": mapped - indexed,
        "first_request_s": first - mapped,
        "mapped_rss_mb": mapped_rss,
        "read_whole_s": whole_s,
        "read_whole_rss_mb": read_rss,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "bare_matvec_p50_ms": float(np.percentile(np.array(bare) * 1e3, 50)),
        "item_matrix_mb": factors.items.nbytes / 2**20,
    }


def batch(folder: Path, workers: int, customers: int) -> dict[str, Any]:
    import datetime as dt  # noqa: PLC0415
    import resource  # noqa: PLC0415

    from jobs.recommend.job import RecommendConfig, run_recommend  # noqa: PLC0415

    output = folder / f"recommendations-{workers}-{os.environ.get('OPENBLAS_NUM_THREADS')}"
    started = time.perf_counter()
    cpu = time.process_time()
    manifest = run_recommend(
        folder / "serving" / "fm",
        folder / "prep" / "index",
        output,
        RecommendConfig(k=10, date=dt.date(2015, 8, 31), workers=workers),
        log=lambda _: None,
    )
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "cpu_s": time.process_time() - cpu,
        "customers": manifest["counts"]["customers"],
        "customers_per_s": manifest["counts"]["customers"] / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "output_mb": sum(s["bytes"] for s in manifest["shards"]) / 2**20,
        "timings_s": manifest["timings_s"],
        "requested": customers,
    }


def factors_step(folder: Path, customers: int, products: int) -> dict[str, Any]:
    import resource  # noqa: PLC0415

    from contract.features import FeatureLayout  # noqa: PLC0415
    from fm.factors import build_and_write  # noqa: PLC0415

    started = time.perf_counter()
    manifest = build_and_write(
        model=folder / "step" / "model.tar.gz",
        features=FeatureLayout(customers, products),
        shards=sorted((folder / "step" / "train").iterdir()),
        output=folder / "step" / "serving-fm",
    )
    return {
        "seconds": time.perf_counter() - started,
        "timings_s": manifest["timings_s"],
        "rows": manifest["reviewed_rows"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def make_step_inputs(
    folder: Path, *, customers: int, products: int, factors: int, rows: int, seed: int
) -> float:
    """model.tar.gz and 4 train shards of the step's size; returns the model file's size in MB."""
    import numpy as np  # noqa: PLC0415

    from contract.features import FeatureLayout  # noqa: PLC0415
    from fm.artifact import FmParameters, write_fm_artifact  # noqa: PLC0415
    from fm.recordio import write_sparse_records  # noqa: PLC0415

    features = FeatureLayout(customers, products)
    rng = np.random.default_rng(seed)
    d = features.feature_dim
    params = FmParameters(
        w0=4.2,
        w=rng.standard_normal(d, dtype=np.float32) * 0.05,
        v=rng.standard_normal((d, factors), dtype=np.float32) * 0.05,
    )
    model = folder / "step" / "model.tar.gz"
    write_fm_artifact(model, params, {"predictor_type": "regressor"})
    (folder / "step" / "train").mkdir(parents=True)
    for number, part in enumerate(np.array_split(np.arange(rows), 4)):
        n = part.shape[0]
        keys = np.empty((n, 3), np.int64)
        keys[:, 0] = rng.integers(0, customers, n)
        keys[:, 1] = customers + rng.integers(0, products, n)
        keys[:, 2] = features.time_key
        values = np.ones((n, 3), np.float32)
        values[:, 2] = rng.random(n, dtype=np.float32)
        with (folder / "step" / "train" / f"part-{number:05d}.rio").open("wb") as f:
            indptr = np.arange(0, 3 * n + 1, 3)
            write_sparse_records(f, indptr, keys.ravel(), values.ravel(), np.full(n, 4.0, np.float32), d)
    return model.stat().st_size / 2**20


def child(argv: list[str]) -> int:
    kind, folder = argv[0], Path(argv[1])
    sys.path.insert(0, str(ROOT))
    if kind == "shim":
        result = shim(folder, int(argv[2]), int(argv[3]))
    elif kind == "batch":
        result = batch(folder, int(argv[2]), 0)
    else:
        result = factors_step(folder, int(argv[2]), int(argv[3]))
    print(json.dumps(result))
    return 0


# ------------------------------------------------------------------------------------------- the parent


def run_child(blas_threads: int, *args: object) -> dict[str, Any]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(blas_threads), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, __file__, "--child", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"bench child failed:\n{result.stderr}")
    answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        return child(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--customers", type=int, default=120_000)
    parser.add_argument("--products", type=int, default=58_000)
    parser.add_argument("--factors", type=int, default=256)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--threading", choices=("workers", "blas", "both", "none"), default="workers")
    parser.add_argument("--step-rows", type=int, default=4_000_000, help="train rows of the factors step")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="recommend-bench-") as temp:
        folder = Path(temp)
        t0 = time.perf_counter()
        make_run(folder, args.customers, args.products, args.factors, args.seed)
        print(
            f"synthetic run: {args.customers:,} customers x {args.products:,} products x {args.factors} "
            f"factors in {time.perf_counter() - t0:.0f} s; {cores} cores; load average {load_average()}",
            flush=True,
        )
        s = run_child(1, "shim", folder, args.requests, args.seed)
        print("\nshim (OPENBLAS_NUM_THREADS=1): fm.topn.recommend, top 10, reviewed products excluded")
        print(f"  imports (numpy, contract, fm)      {s['import_s'] * 1e3:8.0f} ms")
        print(f"  index ({args.customers:,} customers)      {s['index_s'] * 1e3:8.0f} ms")
        print(f"  factors mapped (np.memmap)         {s['map_s'] * 1e3:8.1f} ms")
        print(f"  first request (pages fault in)     {s['first_request_s'] * 1e3:8.0f} ms")
        cold = s["map_s"] + s["first_request_s"]
        print(
            f"  cold load, mapped + first request  {cold:8.2f} s   (target < {TARGETS['cold_load_s']} s: "
            f"{cold / TARGETS['cold_load_s']:.2f} of it)"
        )
        print(
            f"  factors read whole (np.fromfile)   {s['read_whole_s']:8.2f} s   "
            f"({s['read_whole_s'] / TARGETS['cold_load_s']:.2f} of the target)"
        )
        items = f"(item matrix {s['item_matrix_mb']:.0f} MB)"
        print(f"  resident: mapped, after a request  {s['mapped_rss_mb']:8.0f} MB {items}")
        print(f"  resident: read whole               {s['read_whole_rss_mb']:8.0f} MB")
        print(
            f"  top-N call: p50 {s['p50_ms']:.2f} ms ({s['p50_ms'] / TARGETS['p50_ms']:.2f} of the 10 ms "
            f"target), p99 {s['p99_ms']:.2f} ms ({s['p99_ms'] / TARGETS['p99_ms']:.2f} of 30 ms), "
            f"mean {s['mean_ms']:.2f} ms"
        )
        print(
            f"  bare item-matrix x vector p50 {s['bare_matvec_p50_ms']:.2f} ms: the call is "
            f"{s['p50_ms'] / s['bare_matvec_p50_ms']:.2f} x the product it cannot avoid "
            f"({s['item_matrix_mb'] / 1024 / (s['bare_matvec_p50_ms'] / 1000):.1f} GiB/s through the items)"
        )
        print(f"  load average {load_average()}", flush=True)
        settings = {
            "workers": [(1, cores)],
            "blas": [(cores, 1)],
            "both": [(1, cores), (cores, 1)],
            "none": [],
        }
        for blas, workers in settings[args.threading]:
            b = run_child(blas, "batch", folder, workers)
            print(
                f"\nbatch (run_recommend, top 10, JSON Lines written): {workers} worker thread(s) x "
                f"OPENBLAS_NUM_THREADS={blas}"
            )
            print(
                f"  {b['customers']:,} customers in {b['seconds']:.1f} s "
                f"({b['seconds'] / TARGETS['batch_s']:.2f} of the 3 min target), {b['customers_per_s']:,.0f} "
                "customers/s, "
                f"{b['customers_per_s'] * args.products / 1e6:,.0f} M scores/s"
            )
            print(
                f"  peak RSS {b['peak_rss_mb']:,.0f} MB ({b['peak_rss_mb'] / TARGETS['batch_rss_mb']:.2f} of "
                f"4 GB), CPU {b['cpu_s']:.0f} s ({b['cpu_s'] / b['seconds']:.2f} cores busy), output "
                f"{b['output_mb']:.0f} MB gzipped; load average {load_average()}",
                flush=True,
            )
        if args.step_rows:
            size = make_step_inputs(
                folder,
                customers=args.customers,
                products=args.products,
                factors=args.factors,
                rows=args.step_rows,
                seed=args.seed,
            )
            f = run_child(1, "step", folder, args.customers, args.products)
            t = f["timings_s"]
            print(
                f"\nserving-factors step (fm.factors.build_and_write): model.tar.gz {size:,.0f} MB, "
                f"{f['rows']:,} train rows in 4 shards"
            )
            print(
                f"  {f['seconds']:.1f} s (read model {t['read_model']:.1f} s, read shards "
                f"{t['read_shards']:.1f} s, build and write {t['build_and_write']:.1f} s), "
                f"peak RSS {f['peak_rss_mb']:,.0f} MB; "
                f"load average {load_average()}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
