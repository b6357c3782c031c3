"""Reading and writing the FM model artifact at the notebook's size, against np.load of the same arrays.

feature_dim 178,730 (140,344 customers + 38,385 products + 1 time feature), num_factors 256, float32: V is
183 MB. Writes model.tar.gz with fm.artifact, extracts its model_algo-1, saves w and V as .npy, then
prints the best of --repeats read times of each form, the ratio to np.load, and the write time. Exits
non-zero if a read gives other values than were written.

    .venv/bin/python bench/fm_artifact.py [--feature-dim 178730] [--num-factors 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from fm.artifact import FmParameters, read_fm_artifact, write_fm_artifact


def best_of(repeats: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feature-dim", type=int, default=178_730)
    parser.add_argument("--num-factors", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    d, k = args.feature_dim, args.num_factors
    params = FmParameters(
        w0=3.9,
        w=rng.standard_normal(d, dtype=np.float32) * 0.01,
        v=rng.standard_normal((d, k), dtype=np.float32) * 0.001,
    )
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        tar_gz, model_algo = folder / "model.tar.gz", folder / "model_algo-1"
        start = time.perf_counter()
        write_fm_artifact(tar_gz, params, {"predictor_type": "regressor"})
        write_seconds = time.perf_counter() - start
        with tarfile.open(tar_gz) as tar:
            member = tar.extractfile("model_algo-1")
            assert member is not None
            model_algo.write_bytes(member.read())
        np.save(folder / "w.npy", params.w)
        np.save(folder / "v.npy", params.v)

        for source in (tar_gz, model_algo):
            got = read_fm_artifact(source)
            if not (
                np.array_equal(got.v, params.v)
                and np.array_equal(got.w, params.w)
                and got.w0 == np.float32(params.w0)
            ):
                print(f"reading {source.name} gave other values than were written", file=sys.stderr)
                return 1

        npy = best_of(args.repeats, lambda: (np.load(folder / "w.npy"), np.load(folder / "v.npy")))
        from_tar_gz = best_of(args.repeats, lambda: read_fm_artifact(tar_gz))
        from_model_algo = best_of(args.repeats, lambda: read_fm_artifact(model_algo))
        mb = 1e6
        print(f"feature_dim {d:,} x num_factors {k}: V is {params.v.nbytes / mb:,.1f} MB of float32")
        sizes = f"model.tar.gz {tar_gz.stat().st_size / mb:,.1f} MB"
        print(f"{sizes}, model_algo-1 {model_algo.stat().st_size / mb:,.1f} MB")
        print(f"write model.tar.gz              {write_seconds:7.3f} s")
        print(f"np.load w.npy + v.npy           {npy:7.3f} s")
        for name, seconds in (("model.tar.gz", from_tar_gz), ("model_algo-1", from_model_algo)):
            print(f"read_fm_artifact({name})  {seconds:7.3f} s  {seconds / npy:5.1f} x np.load")
    return 0


if __name__ == "__main__":
    sys.exit(main())
