"""RecordIO-protobuf writer, ours against the SageMaker SDK 2.x, on a matrix like the notebook's training one.

Each row has 3 nonzeros: the customer's one-hot key (0..N-1), the product's one-hot key (N..N+M-1), and
days_since_first in the last column (0 for a customer's first review, an explicitly stored zero). Keys
are drawn Zipf-like because prep numbers customers and products in descending count order.

Prints rows/s of the SDK writer (on --sdk-rows rows), of ours (best of --repeats on --rows rows), their
ratio, our reader's rows/s, and the peak memory of our writer for a few chunk sizes. Exits non-zero if
the bytes differ from the SDK's on the rows both wrote, or if our reader does not read back what was
written.

    .venv/bin/python bench/recordio_writer.py [--rows 1028606] [--sdk-rows 200000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
logging.getLogger("sagemaker.config").setLevel(logging.WARNING)

from fm.recordio import read_sparse_records, write_sparse_records  # noqa: E402 (needs sys.path above)

# The notebook's figures: 140,344 customers, 38,385 products, feature_dim 178,730, ~1,028,606 train rows.
CUSTOMERS = 140_344
PRODUCTS = 38_385
TRAIN_ROWS = 1_028_606


class Csr:
    """The training matrix as CSR parts and labels."""

    def __init__(self, rows: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.feature_dim = CUSTOMERS + PRODUCTS + 1
        user = _zipf_keys(rng, CUSTOMERS, rows)
        item = CUSTOMERS + _zipf_keys(rng, PRODUCTS, rows)
        days = rng.exponential(300, rows).astype(np.int64).astype(np.float32)
        days[rng.random(rows) < 0.15] = 0  # the customer's first review
        self.indptr = np.arange(0, 3 * rows + 1, 3, dtype=np.int64)
        self.indices = np.stack([user, item, np.full(rows, self.feature_dim - 1)], axis=1).reshape(-1)
        self.indices = self.indices.astype(np.int32)
        self.values = np.stack([np.ones(rows), np.ones(rows), days], axis=1).reshape(-1).astype(np.float32)
        self.labels = rng.choice(np.arange(1, 6), rows, p=[0.07, 0.05, 0.09, 0.19, 0.60]).astype(np.float32)

    @property
    def rows(self) -> int:
        return len(self.labels)

    def head(self, rows: int) -> sp.csr_matrix:
        end = int(self.indptr[rows])
        return sp.csr_matrix(
            (self.values[:end], self.indices[:end], self.indptr[: rows + 1]), shape=(rows, self.feature_dim)
        )


def _zipf_keys(rng: np.random.Generator, count: int, rows: int) -> npt.NDArray[np.int64]:
    """Keys 0..count-1, key k drawn with weight 1/(k+10): a long tail, as review counts have."""
    weights = 1.0 / (np.arange(count) + 10.0)
    keys: npt.NDArray[np.int64] = np.searchsorted(np.cumsum(weights / weights.sum()), rng.random(rows))
    return np.minimum(keys, count - 1)


class Sink:
    """Counts bytes and forgets them: for memory figures that leave out the output itself."""

    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data: Any) -> int:
        self.bytes += len(data)
        return len(data)


def write_ours(m: Csr, stream: BinaryIO | Sink, chunk_rows: int) -> None:
    write_sparse_records(
        stream,  # type: ignore[arg-type]  # Sink stands in for a write-only binary stream
        m.indptr,
        m.indices,
        m.values,
        m.labels,
        m.feature_dim,
        chunk_rows=chunk_rows,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows", type=int, default=TRAIN_ROWS, help="rows for our writer (default: %(default)s)"
    )
    parser.add_argument(
        "--sdk-rows", type=int, default=200_000, help="rows for the SDK (default: %(default)s)"
    )
    parser.add_argument("--repeats", type=int, default=5, help="our writer's best of (default: %(default)s)")
    parser.add_argument("--chunk-rows", type=int, default=65536, help="our chunk size (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not 0 < args.sdk_rows <= args.rows or args.repeats < 1:
        parser.error("need 0 < --sdk-rows <= --rows and --repeats >= 1")

    # The SDK's writer (sagemaker.amazon.common re-exports it from serializer_utils); a slow import, so here.
    from sagemaker import serializer_utils  # noqa: PLC0415

    sdk_write: Callable[[BinaryIO, sp.csr_matrix, npt.NDArray[np.float32]], None] = (
        serializer_utils.write_spmatrix_to_sparse_tensor
    )

    m = Csr(args.rows, args.seed)
    print(f"matrix: {m.rows:,} rows, 3 nonzeros a row, feature_dim {m.feature_dim:,}")

    sdk_matrix = m.head(args.sdk_rows)
    sdk_out = io.BytesIO()
    start = time.perf_counter()
    sdk_write(sdk_out, sdk_matrix, m.labels[: args.sdk_rows])
    sdk_rate = args.sdk_rows / (time.perf_counter() - start)
    print(f"SDK 2.x writer:  {sdk_rate:>12,.0f} rows/s  ({args.sdk_rows:,} rows, once)")

    best = float("inf")
    ours = b""
    for _ in range(args.repeats):
        out = io.BytesIO()
        start = time.perf_counter()
        write_ours(m, out, args.chunk_rows)
        best = min(best, time.perf_counter() - start)
        ours = out.getvalue()
    our_rate = m.rows / best
    print(
        f"our writer:      {our_rate:>12,.0f} rows/s  ({m.rows:,} rows, best of {args.repeats}, "
        f"chunk_rows {args.chunk_rows:,}, {len(ours) / m.rows:.1f} bytes a row)"
    )
    ratio = our_rate / sdk_rate
    print(f"ratio:           {ratio:>12,.1f}x  (target >= 30x: {'met' if ratio >= 30 else 'NOT met'})")

    sdk_bytes = sdk_out.getvalue()
    same = ours[: len(sdk_bytes)] == sdk_bytes
    print(f"bytes agree with the SDK on the first {args.sdk_rows:,} rows ({len(sdk_bytes):,} bytes): {same}")

    start = time.perf_counter()
    back = read_sparse_records(io.BytesIO(ours))
    read_rate = m.rows / (time.perf_counter() - start)
    round_trip = (
        np.array_equal(back.indptr, m.indptr)
        and np.array_equal(back.indices, m.indices)
        and np.array_equal(back.values, m.values)
        and np.array_equal(back.labels, m.labels)
        and back.feature_dim == m.feature_dim
    )
    print(f"our reader:      {read_rate:>12,.0f} rows/s  (reads back what was written: {round_trip})")

    print("our writer's peak traced memory, output discarded (the input arrays are not counted):")
    for chunk_rows in (4096, 65536, 262144):
        tracemalloc.start()
        write_ours(m, Sink(), chunk_rows)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        per_row = peak / min(chunk_rows, m.rows)
        print(f"  chunk_rows {chunk_rows:>7,}: {peak / 2**20:7.1f} MiB ({per_row:,.0f} bytes a chunk row)")
    return 0 if same and round_trip else 1


if __name__ == "__main__":
    sys.exit(main())
