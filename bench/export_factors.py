"""The "Export FM factors" step at the notebook's scale: time and peak memory of the Lambda's work.

    .venv/bin/python bench/export_factors.py [--customers 120000] [--products 58000] [--factors 256]
        [--train-rows 4000000] [--title-dim 100] [--ranking-customers 10000] [--blas-threads 1]

Writes a synthetic run into a temp folder: FM's model.tar.gz of random parameters (fm.artifact), 4 train
shards of --train-rows rows (products drawn by a Zipf-like popularity, as reviews are), one validation and
one test row per customer, an index of the same size and a title table of one --title-dim vector per
product. Then runs lambdas.pipeline.export_factors.export_run on the run's file:// URI in a fresh process
(OPENBLAS_NUM_THREADS=--blas-threads: 1 is what a Lambda of up to 1,769 MB has, one vCPU), the code path of
the Lambda's handler: list the shards, read them as streams, write serving/ file by file from memory (no
/tmp). Prints each phase's seconds, the peak resident memory (ru_maxrss) and their ratios to the function's
timeout and memory as the stack declares them (stacks/pipeline/train.py ExportFmFactorsStep; --memory-mb
compares with another size).

The inputs come from the page cache (just written); a Lambda reads them from S3 (about 100 MB/s for one
stream: the model and the shards are about 0.6 GB together, a few seconds more). Figures, not assertions:
the machine is shared, its load average is printed beside them.
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


def declared() -> tuple[float, int]:
    """The step's timeout (s) and memory (MB) as the stack declares them."""
    sys.path.insert(0, str(ROOT))
    from stacks.pipeline.train import ExportFmFactorsStep  # noqa: PLC0415 (aws_cdk imports slowly)

    return ExportFmFactorsStep.TIMEOUT.to_seconds(), ExportFmFactorsStep.MEMORY_MB


def make_run(folder: Path, args: argparse.Namespace) -> dict[str, float]:
    """The synthetic run's files; returns the sizes in MB of what the step reads."""
    import numpy as np  # noqa: PLC0415 (the parent sets no BLAS threads: numpy loads here)

    from contract import layout  # noqa: PLC0415
    from contract.features import FeatureLayout, TimeTransform  # noqa: PLC0415
    from contract.index import held_out_title, title_token, write_index  # noqa: PLC0415
    from fm.artifact import FmParameters, write_fm_artifact  # noqa: PLC0415
    from fm.recordio import write_sparse_records  # noqa: PLC0415

    n, m, k = args.customers, args.products, args.factors
    features = FeatureLayout(n, m)
    rng = np.random.default_rng(args.seed)
    d = features.feature_dim
    params = FmParameters(
        w0=4.2,
        w=rng.standard_normal(d, dtype=np.float32) * 0.05,
        v=rng.standard_normal((d, k), dtype=np.float32) * 0.05,
    )
    write_fm_artifact(folder / "fm" / "model.tar.gz", params, {"predictor_type": "regressor"})
    del params
    popularity = 1.0 / np.arange(1, m + 1) ** 0.8
    popularity /= popularity.sum()

    def write_shard(path: Path, customers: Any) -> None:
        rows = customers.shape[0]
        keys = np.empty((rows, 3), np.int64)
        keys[:, 0] = customers
        keys[:, 1] = n + rng.choice(m, size=rows, p=popularity)
        keys[:, 2] = features.time_key
        values = np.ones((rows, 3), np.float32)
        values[:, 2] = rng.random(rows, dtype=np.float32)
        labels = rng.integers(1, 6, rows).astype(np.float32)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            write_sparse_records(f, np.arange(0, 3 * rows + 1, 3), keys.ravel(), values.ravel(), labels, d)

    for number, part in enumerate(np.array_split(rng.integers(0, n, args.train_rows), 4)):
        write_shard(folder / layout.TRAIN / f"part-{number:05d}.rio", part)
    every = np.arange(n, dtype=np.int64)
    write_shard(folder / layout.VALIDATION / "part-00000.rio", every)
    write_shard(folder / layout.TEST / "part-00000.rio", every)
    titles = [f"Product title number {i}" for i in range(m)]
    write_index(
        folder / layout.INDEX,
        customer_ids=[f"C{u:08d}" for u in range(n)],
        first_review_days=rng.integers(13000, 16500, n).tolist(),
        product_ids=[f"B{i:09d}" for i in range(m)],
        titles=titles,
        time_transform=TimeTransform(3000),
        global_mean=4.2,
    )
    vectors = rng.standard_normal((m, args.title_dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    serving = folder / layout.SERVING
    serving.mkdir(parents=True, exist_ok=True)
    tokens = [title_token(t) for t in titles]
    held = np.array([held_out_title(t) for t in tokens])
    for files, rows in ((layout.TITLE_TABLE_FILES, ~held), (layout.HELD_OUT_TITLE_FILES, held)):
        txt, f32, meta = files
        kept = "".join(f"{t}\n" for t, r in zip(tokens, rows, strict=True) if r)
        (serving / txt).write_text(kept, encoding="utf-8")
        (serving / f32).write_bytes(vectors[rows].astype("<f4").tobytes())
        (serving / meta).write_text(json.dumps({"dim": args.title_dim, "count": int(rows.sum())}))

    def mb(path: Path) -> float:
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        return sum(p.stat().st_size for p in files) / 2**20

    return {
        "model": mb(folder / "fm" / "model.tar.gz"),
        "train": mb(folder / layout.TRAIN),
        "validation": mb(folder / layout.VALIDATION),
        "test": mb(folder / layout.TEST),
    }


# ------------------------------------------------------------------------------------------- in the child


def child(folder: Path, ranking_customers: int, neighbours: int) -> dict[str, Any]:
    import resource  # noqa: PLC0415

    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    started = time.perf_counter()
    cpu = time.process_time()
    from lambdas.pipeline.export_factors import ExportSettings, export_run  # noqa: PLC0415

    imported = time.perf_counter()
    summary = export_run(
        (folder / "fm" / "model.tar.gz").as_uri(),
        folder.as_uri() + "/",
        ExportSettings(neighbours=neighbours, ranking_customers=ranking_customers),
    )
    return {
        "import_s": imported - started,
        "seconds": time.perf_counter() - started,
        "cpu_s": time.process_time() - cpu,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "summary": summary,
    }


# ------------------------------------------------------------------------------------------- the parent


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        sys.path.insert(0, str(ROOT))
        print(json.dumps(child(Path(argv[1]), int(argv[2]), int(argv[3]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--customers", type=int, default=120_000)
    parser.add_argument("--products", type=int, default=58_000)
    parser.add_argument("--factors", type=int, default=256)
    parser.add_argument("--train-rows", type=int, default=4_000_000)
    parser.add_argument("--title-dim", type=int, default=100, help="BlazingText's vector_dim (cdk.json)")
    parser.add_argument("--ranking-customers", type=int, default=10_000)
    parser.add_argument("--neighbours", type=int, default=10)
    parser.add_argument("--blas-threads", type=int, default=1)
    parser.add_argument("--memory-mb", type=int, default=0, help="memory to compare with (the stack's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    timeout_s, memory_mb = declared()
    memory_mb = args.memory_mb or memory_mb
    with tempfile.TemporaryDirectory(prefix="export-factors-bench-") as temp:
        folder = Path(temp) / "runs" / "bench"
        t0 = time.perf_counter()
        sizes = make_run(folder, args)
        print(
            f"synthetic run: {args.customers:,} customers x {args.products:,} products x {args.factors} "
            f"factors, {args.train_rows:,} train rows, title vectors of {args.title_dim}, in "
            f"{time.perf_counter() - t0:.0f} s"
        )
        print(
            "  inputs: "
            + ", ".join(f"{name} {size:,.0f} MB" for name, size in sizes.items())
            + f"; {len(os.sched_getaffinity(0))} cores; load average {load_average()}",
            flush=True,
        )
        env = {**os.environ, "OPENBLAS_NUM_THREADS": str(args.blas_threads), "PYTHONPATH": str(ROOT)}
        command = [
            sys.executable,
            __file__,
            "--child",
            str(folder),
            str(args.ranking_customers),
            str(args.neighbours),
        ]
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise SystemExit(f"bench child failed:\n{result.stderr}")
        r = json.loads(result.stdout.strip().splitlines()[-1])
        s = r["summary"]
        output = sum(p.stat().st_size for p in (folder / "serving").rglob("*") if p.is_file()) / 2**20
    print(f"\nexport_run on file:// (OPENBLAS_NUM_THREADS={args.blas_threads}), the handler's code path")
    print(f"  imports (numpy, fm, kit, Powertools)  {r['import_s']:7.1f} s")
    for phase, seconds in s["timings_s"].items():
        print(f"  {phase:<37} {seconds:7.1f} s")
    print(
        f"  total                                 {r['seconds']:7.1f} s   "
        f"({r['seconds'] / timeout_s:.2f} of the step's {timeout_s:.0f} s timeout), CPU {r['cpu_s']:.0f} s "
        f"({r['cpu_s'] / r['seconds']:.2f} cores busy)"
    )
    print(
        f"  peak RSS {r['peak_rss_mb']:,.0f} MB ({r['peak_rss_mb'] / memory_mb:.2f} of a "
        f"{memory_mb:,} MB function); serving/ written {output:,.0f} MB"
    )
    ranking, cold = s["ranking"], s["cold_start"]
    print(
        f"  chosen: popularity weight {ranking['popularity_weight']:g} on {ranking['rows']:,} customers; "
        f"shrinkage alpha {cold['alpha']:g}, min_similarity {cold['min_similarity']:g} on "
        f"{cold['rows']:,} rows (random factors and vectors: the choices mean nothing, the costs do)"
    )
    print(f"  load average {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
