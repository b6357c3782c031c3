"""What the title-table step pays for the held-out titles' vectors at BlazingText's default size.

    .venv/bin/python bench/fasttext_bin.py [--buckets 2000000] [--dim 100] [--words 40000] [--held-out 4000]

Writes a model.tar.gz as BlazingText does (vectors.txt and vectors.bin, fastText's format with `--buckets`
n-gram rows: 2,000,000 x 100 float32 = 800 MB by default, random values, so gzip barely shrinks it) under a
temporary folder, then in fresh processes, each timed and with its peak RSS:
- one streaming pass over the archive that only unpacks it, a member at a time in 4 MB reads;
- the reference: the title table alone from vectors.txt (lambdas.serving.title_table.build_title_table),
  which unpacks vectors.bin as well to get past it (a tar stream does not seek);
- both tables as the step builds them, the held-out titles' vectors read from vectors.bin in the same pass
  (read_model_tables).
Prints seconds and the ratio to the reference; the Lambda's memory and timeout (stacks/pipeline/train.py
ExportTitleTableStep) must hold the last one.
"""

from __future__ import annotations

import argparse
import json
import resource
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

MAGIC, VERSION = 793712314, 12


def write_model(folder: Path, *, words: int, buckets: int, dim: int, seed: int = 0) -> Path:
    """model.tar.gz with vectors.txt (the words) and vectors.bin (fastText's layout, minn 5, maxn 10)."""
    rng = np.random.default_rng(seed)
    tokens = [f"product-title-number-{i}" for i in range(words)]
    bin_path, txt_path = folder / "vectors.bin", folder / "vectors.txt"
    with bin_path.open("wb") as f:
        f.write(struct.pack("<2i", MAGIC, VERSION))
        f.write(struct.pack("<12id", dim, 5, 10, 5, 5, 1, 2, 2, buckets, 5, 10, 100, 1e-4))
        f.write(struct.pack("<3iqq", words, words, 0, 10 * words, -1))
        for token in tokens:
            f.write(token.encode() + b"\0" + struct.pack("<qb", 10, 0))
        f.write(struct.pack("<?qq", False, words + buckets, dim))
        for start in range(0, words + buckets, 100_000):
            rows = min(100_000, words + buckets - start)
            f.write(rng.standard_normal((rows, dim), dtype=np.float32).astype("<f4").tobytes())
        f.write(struct.pack("<?qq", False, words, dim))
        f.write(np.zeros((words, dim), "<f4").tobytes())
    with txt_path.open("w") as f:
        f.write(f"{words} {dim}\n")
        vectors = rng.standard_normal((words, dim)).astype(np.float32)
        for token, vector in zip(tokens, vectors, strict=True):
            f.write(token + " " + " ".join(f"{v:.5f}" for v in vector) + "\n")
    archive = folder / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in (bin_path, txt_path):  # the order BlazingText's archives list them in
            tar.add(path, arcname=path.name)
    bin_path.unlink()
    txt_path.unlink()
    return archive


CHILD = r"""
import json, resource, sys, tarfile, time
sys.path.insert(0, sys.argv[1])
from lambdas.serving import title_table
mode, archive, words, held = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
known = {f"product-title-number-{i}" for i in range(words)}
held_out = [f"a-new-product-title-{i}" for i in range(held)]
started = time.perf_counter()
if mode == "unpack":
    with open(archive, "rb") as f, tarfile.open(fileobj=f, mode="r|gz") as tar:
        for member in tar:
            stream = tar.extractfile(member)
            while stream is not None and stream.read(1 << 22):
                pass
    counts = {}
elif mode == "title-table":
    with open(archive, "rb") as f, tarfile.open(fileobj=f, mode="r|gz") as tar:
        for member in tar:
            if member.name == "vectors.txt":
                table = title_table.build_title_table(title_table._lines(tar.extractfile(member)), known)
    counts = {"known": table.count}
else:
    tables = title_table.read_model_tables("file://" + archive, known, held_out)
    held_table = tables.held_out
    counts = {"known": tables.known.count, "held_out": held_table.count if held_table else 0}
seconds = time.perf_counter() - started
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, **counts}))
"""


def child(mode: str, archive: Path, words: int, held: int) -> dict[str, float]:
    root = str(Path(__file__).resolve().parents[1])
    out = subprocess.run(
        [sys.executable, "-c", CHILD, root, mode, str(archive), str(words), str(held)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--buckets", type=int, default=2_000_000, help="n-gram buckets (BlazingText's 2,000,000)"
    )
    parser.add_argument("--dim", type=int, default=100, help="vector_dim (cdk.json: 100)")
    parser.add_argument("--words", type=int, default=40_000, help="vocabulary words (known titles)")
    parser.add_argument("--held-out", type=int, default=4_000, help="held-out titles to build vectors for")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fasttext-bench-") as tmp:
        started = time.perf_counter()
        archive = write_model(Path(tmp), words=args.words, buckets=args.buckets, dim=args.dim)
        print(
            f"model.tar.gz: {archive.stat().st_size / 2**20:,.0f} MB ({args.words:,} words, {args.buckets:,} "
            f"buckets x {args.dim}), written in {time.perf_counter() - started:.0f} s; {args.held_out:,} "
            "held-out titles\n"
        )
        print("| pass | seconds | vs the title table alone | peak RSS MB |\n|---|---|---|---|")
        reference = child("title-table", archive, args.words, args.held_out)
        for mode in ("unpack", "title-table", "both-tables"):
            figures = reference if mode == "title-table" else child(mode, archive, args.words, args.held_out)
            print(
                f"| {mode} | {figures['seconds']:.1f} | {figures['seconds'] / reference['seconds']:.2f} | "
                f"{figures['peak_mb']:.0f} |"
            )
    print(
        f"\nself peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB", file=sys.stderr
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
