"""Speed and memory of the prep job against `gzip -dc` and the notebook's own code, on one synthetic file.

    .venv/bin/python -m bench.prep_benchmark                # full scale: 4,057,147 rows (~470 MB gzip)
    .venv/bin/python -m bench.prep_benchmark --rows 400000  # a tenth, for iterating

The file is generated once (bench.synth_reviews) and cached under bench/out/ (git-ignored). Each command
runs as its own process; its wall time is measured around it and its peak RSS comes from os.wait4, the
kernel's accounting for that one child. Targets on the 2-core development machine: the job's wall time
at most 2x `gzip -dc` on the same file, its peak RSS at most 1/4 of the notebook code's. The index load
time is the stdlib loader (contract.index.load_index) on the job's own index and on one of exactly
150,000 customers and 40,000 products. At small --rows the interpreter's and pyarrow's start-up (~0.4 s,
~110 MB) dominate the job's figures: the targets are for the full-size file. Each command's CPU time
(user + system) is printed beside its wall time: on a host shared with other work it moves less.
--baseline-tree times another checkout's job by turns with this one, for a before/after of a change.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.synth_reviews import FULL_ROWS

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"
REFERENCE = REPO.parent / "shared" / "bench" / "seed_reference_prep.py"
PYTHON = REPO / ".venv" / "bin" / "python"
GENERATOR_VERSION = 1  # bump when bench.synth_reviews changes what it writes: the cache key


@dataclass
class Measured:
    name: str
    wall_s: float
    peak_rss_mb: float
    cpu_s: float  # user + system time of the command and its children: steadier than wall on a busy host


def measure(name: str, argv: list[str], *, env: dict[str, str] | None = None, cwd: Path = REPO) -> Measured:
    """Run argv to completion (stdout discarded); its wall time and peak RSS.

    /usr/bin/time (GNU time) reports the peak RSS of the command alone. Without it, os.wait4 gives the
    child's rusage, but Linux counts the forking parent's pages in a child's peak: this process then stays
    small (the file is generated in a child too) and tiny commands read as this process's size."""
    timing = OUT / "run" / "time.txt"
    use_time = Path("/usr/bin/time").exists()
    full = ["/usr/bin/time", "-o", str(timing), "-f", "%M", *argv] if use_time else argv
    started = time.perf_counter()
    proc = subprocess.Popen(full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd)
    assert proc.stderr is not None
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{name} failed ({proc.returncode}):\n{stderr.decode(errors='replace')[-3000:]}")
    peak_kb = int(timing.read_text().split()[-1]) if use_time else usage.ru_maxrss  # Linux: kilobytes
    return Measured(name, wall, peak_kb / 1024, usage.ru_utime + usage.ru_stime)


def cached_file(rows: int, seed: int) -> Path:
    path = OUT / f"reviews-v{GENERATOR_VERSION}-{rows}-s{seed}.tsv.gz"
    if not path.exists():
        print(f"generating {path.name} ...", flush=True)
        started = time.perf_counter()
        generator = [
            str(PYTHON),
            "-m",
            "bench.synth_reviews",
            str(path),
            "--rows",
            str(rows),
            "--seed",
            str(seed),
        ]
        subprocess.run(generator, cwd=REPO, check=True)
        print(f"  {time.perf_counter() - started:.0f} s", flush=True)
    return path


def index_load_seconds(index_dir: Path) -> tuple[float, float]:
    """(best in-process load_index time of 5, whole fresh-process time including the import)."""
    code = (
        "import sys, time; t0 = time.perf_counter(); from contract.index import load_index; "
        "from pathlib import Path; best = 1e9\n"
        "for _ in range(5):\n"
        "    t = time.perf_counter(); idx = load_index(Path(sys.argv[1]))\n"
        "    best = min(best, time.perf_counter() - t)\n"
        "    if _ == 0: first = time.perf_counter() - t0\n"
        "print(best, first)"
    )
    result = subprocess.run(
        [str(PYTHON), "-c", code, str(index_dir)], cwd=REPO, capture_output=True, text=True, check=True
    )
    best, first = map(float, result.stdout.split())
    return best, first


def synthetic_index(folder: Path) -> Path:
    from contract.features import TimeTransform  # noqa: PLC0415 (bench-only import)
    from contract.index import write_index  # noqa: PLC0415

    write_index(
        folder,
        customer_ids=[str(10_000 + 353 * u) for u in range(150_000)],
        first_review_days=[13_392 + (u * 7) % 3_286 for u in range(150_000)],
        product_ids=[f"B00{i:07d}" for i in range(40_000)],
        titles=[f"Some Show Title {i}: Season {i % 9 + 1}" for i in range(40_000)],
        time_transform=TimeTransform(3_286),
        global_mean=4.05,
    )
    return folder


def time_commands(args: argparse.Namespace, data: Path, work: Path) -> dict[str, list[Measured]]:
    """Each command args.repeat times, by turns (a busy host slows them alike)."""
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    env["SAGEMAKER_SUPPRESS_V2_WARNING"] = "1"
    runs: dict[str, list[Measured]] = {"gzip": [], "notebook": [], "baseline": [], "prep": []}
    prep_argv = [str(PYTHON), "-m", "jobs.prep", "--input", str(work / "input"), "--output"]
    for i in range(args.repeat):
        runs["gzip"].append(measure("gzip -dc", ["gzip", "-dc", str(data)]))
        if not args.skip_notebook:
            shutil.rmtree(work / "notebook", ignore_errors=True)
            notebook = [str(PYTHON), str(REFERENCE), str(data), str(work / "notebook")]
            runs["notebook"].append(measure("notebook code", notebook, env=env))
        if args.baseline_tree is not None:
            shutil.rmtree(work / "baseline", ignore_errors=True)
            baseline = [*prep_argv, str(work / "baseline")]
            cwd = args.baseline_tree.resolve()
            runs["baseline"].append(measure("prep job (baseline tree)", baseline, env=env, cwd=cwd))
        shutil.rmtree(work / "prep", ignore_errors=True)
        runs["prep"].append(measure("prep job", [*prep_argv, str(work / "prep")], env=env))
        print(f"run {i + 1}/{args.repeat} done", flush=True)
    return {k: v for k, v in runs.items() if v}


def print_table(runs: dict[str, list[Measured]], data: Path, work: Path) -> None:
    best = {k: min(v, key=lambda m: m.wall_s) for k, v in runs.items()}
    manifest = json.loads((work / "prep" / "manifest.json").read_text())
    print()
    size_mb = data.stat().st_size / 1e6
    print(f"file: {data.relative_to(REPO)}  {size_mb:.1f} MB gzip, {manifest['counts']['rows_read']:,} rows")
    print(
        f"{'':26}{'wall s':>9}{'cpu s':>8}{'peak RSS MB':>13}{'rows kept':>12}{'N':>9}{'M':>8}{'train':>10}"
        f"{'valid.':>9}{'test':>9}"
    )
    for key, label in (
        ("gzip", "gzip -dc"),
        ("notebook", "notebook code"),
        ("baseline", "prep job (baseline tree)"),
        ("prep", "prep job"),
    ):
        if key not in best:
            continue
        figures = f"{label:26}{best[key].wall_s:9.2f}{best[key].cpu_s:8.2f}{best[key].peak_rss_mb:13.0f}"
        if key == "notebook":
            ref = json.loads((work / "notebook" / "summary.json").read_text())
            figures += (
                f"{ref['rows_read']:12,}{ref['customers']:9,}{ref['products']:8,}{ref['train_rows']:10,}"
                f"{'-':>9}{ref['test_rows']:9,}"
            )
        elif key != "gzip":
            m = json.loads((work / key / "manifest.json").read_text())
            c = m["counts"]
            validation = format(c["validation_rows"], ",") if "validation_rows" in c else "-"
            figures += (
                f"{c['rows_usable']:12,}{m['num_customers']:9,}{m['num_products']:8,}{c['train_rows']:10,}"
                f"{validation:>9}{c['test_rows']:9,}"
            )
        print(figures)
    for measured in runs.values():
        if len(measured) > 1:
            walls = ", ".join(f"{m.wall_s:.2f}" for m in measured)
            cpus = ", ".join(f"{m.cpu_s:.2f}" for m in measured)
            print(f"{measured[0].name}, each run: wall {walls} s; cpu {cpus} s")
    print(f"bad rows skipped by the prep job: {manifest['counts']['bad_rows']}")
    print(f"the prep job's step timings (last run): {manifest['timings_s']}")
    print(f"prep / gzip wall time: {best['prep'].wall_s / best['gzip'].wall_s:.2f} (target <= 2)")
    if "baseline" in best:
        fastest_cpu = {k: min(m.cpu_s for m in runs[k]) for k in ("prep", "baseline")}
        wall_ratio = best["prep"].wall_s / best["baseline"].wall_s
        print(
            f"prep / baseline tree (fastest of each): wall {wall_ratio:.3f}, "
            f"cpu {fastest_cpu['prep'] / fastest_cpu['baseline']:.3f}; "
            f"baseline / gzip wall {best['baseline'].wall_s / best['gzip'].wall_s:.2f}"
        )
    if "notebook" in best:
        print(f"notebook / gzip wall time: {best['notebook'].wall_s / best['gzip'].wall_s:.2f}")
        rss = best["prep"].peak_rss_mb / best["notebook"].peak_rss_mb
        print(f"prep / notebook peak RSS: {rss:.3f} (target <= 0.25)")


def print_index_loads(work: Path) -> None:
    manifest = json.loads((work / "prep" / "manifest.json").read_text())
    own_best, own_cold = index_load_seconds(work / "prep" / "index")
    n, m = manifest["num_customers"], manifest["num_products"]
    print(
        f"index load (stdlib), this run's {n:,} customers / {m:,} products: {own_best * 1000:.0f} ms "
        f"(fresh process with import: {own_cold * 1000:.0f} ms)"
    )
    syn_best, syn_cold = index_load_seconds(synthetic_index(work / "index-150k-40k"))
    print(
        f"index load (stdlib), 150,000 customers / 40,000 products: {syn_best * 1000:.0f} ms "
        f"(fresh process with import: {syn_cold * 1000:.0f} ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=FULL_ROWS)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each command; the fastest is reported")
    parser.add_argument("--skip-notebook", action="store_true", help="skip the notebook's code (slow, ~2 GB)")
    parser.add_argument(
        "--baseline-tree",
        type=Path,
        help="also time the prep job of another checkout (a folder holding jobs/, contract/, fm/, e.g. "
        "`git archive main jobs contract fm | tar -x -C DIR`), by turns with this one: before/after",
    )
    args = parser.parse_args()

    data = cached_file(args.rows, args.seed)
    work = OUT / "run"
    shutil.rmtree(work, ignore_errors=True)
    (work / "input").mkdir(parents=True)
    (work / "input" / data.name).symlink_to(data)
    subprocess.run(["cat", str(data)], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
    runs = time_commands(args, data, work)
    print_table(runs, data, work)
    print_index_loads(work)


if __name__ == "__main__":
    main()
