"""Hand-made review files for the prep job's tests (no tests here; the other test_prep_* files use these)."""

from __future__ import annotations

import gzip
import hashlib
import os
import random
import resource
import shutil
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PREP_ENTRIES = ["baselines", "corpus", "index", "manifest.json", "test", "train", "validation"]
"""What a run's prep/ folder holds, sorted."""

HEADER = (
    "marketplace\tcustomer_id\treview_id\tproduct_id\tproduct_parent\tproduct_title\tproduct_category\t"
    "star_rating\thelpful_votes\ttotal_votes\tvine\tverified_purchase\treview_headline\treview_body\t"
    "review_date"
)
# A review body that opens a quotation and never closes it, as real ones do: harmless without quoting.
BODY = '"Loved it, my wife said "watch it again'

# (customer_id, product_id, product_title, star_rating, review_date), deliberately out of order.
# With thresholds 2/2: customer 55 (1 review) and product B3 (1 review) drop out; 7 rows are kept.
ROWS: list[tuple[str, str, str, str, str]] = [
    ("100", "B2", "Beta  Film", "4", "2014-12-31"),
    ("100", "B1", "Alpha Show", "5", "2015-03-01"),
    ("7", "B1", "Alpha Show", "5", "2015-01-01"),
    ("7", "B2", "beta film", "4", "2015-01-03"),
    ("7", "B1", "Alpha Show", "3", "2015-01-10"),
    ("20", "B2", "Beta Film", "1", "2015-02-01"),
    ("20", "B1", "Alpha Show", "2", "2015-02-01"),
    ("20", "B3", '"Gamma', "5", "2015-02-05"),
    ("55", "B1", "Alpha Show HD", "4", "2015-01-01"),
]


def line(fields: Sequence[str], body: str = BODY) -> str:
    customer, product, title, rating, date = fields
    return "\t".join(
        [
            "US",
            customer,
            "R1X",
            product,
            "123",
            title,
            "Video",
            rating,
            "0",
            "0",
            "N",
            "Y",
            "Nice",
            body,
            date,
        ]
    )


def tsv_bytes(
    rows: Sequence[Sequence[str]], extra_lines: Sequence[bytes] = (), header: str = HEADER
) -> bytes:
    text = "".join(line(r) + "\n" for r in rows)
    return (header + "\n").encode() + text.encode() + b"".join(x + b"\n" for x in extra_lines)


def write_tsv(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def many_rows(n: int, customers: int = 500, products: int = 50, seed: int = 3) -> list[tuple[str, ...]]:
    """n distinct-enough reviews over a few customers and products, for inputs that must be large."""
    rng = random.Random(seed)
    return [
        (
            str(rng.randrange(customers)),
            f"P{rng.randrange(products)}",
            f"Title {rng.randrange(products)}",
            str(rng.randint(1, 5)),
            f"2015-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        )
        for _ in range(n)
    ]


SplitRow = tuple[str, str, int, int]  # customer, product, rating, day


def split_hash(customer: str, product: str, seed: int) -> int:
    """The split hash as jobs/prep/split.py states it, straight from hashlib."""
    message = f"{customer}\t{product}".encode()
    return int(hashlib.blake2b(message, key=seed.to_bytes(8, "little"), digest_size=8).hexdigest(), 16)


def plain_split(rows: Sequence[SplitRow], seed: int) -> tuple[list[SplitRow], list[SplitRow], list[SplitRow]]:
    """(test, validation, train) rows by the split's rules, in plain Python: per customer, test = the latest
    day's row with the smallest split hash, then the highest rating; validation = the same among the rows
    outside the test pair when they hold at least 2 products; train = the rows outside both pairs."""
    by_customer: dict[str, list[SplitRow]] = defaultdict(list)
    for row in rows:
        by_customer[row[0]].append(row)

    def pick(candidates: list[SplitRow]) -> SplitRow:
        return min(candidates, key=lambda r: (-r[3], split_hash(r[0], r[1], seed), -r[2]))

    test, validation, train = [], [], []
    for reviews in by_customer.values():
        chosen = pick(reviews)
        test.append(chosen)
        rest = [r for r in reviews if r[1] != chosen[1]]
        if len({r[1] for r in rest}) >= 2:
            chosen = pick(rest)
            validation.append(chosen)
            rest = [r for r in rest if r[1] != chosen[1]]
        train += rest
    return test, validation, train


def can_mount() -> bool:
    """Whether this process may mount file systems (root with CAP_SYS_ADMIN, a mount binary)."""
    return os.geteuid() == 0 and shutil.which("mount") is not None


def mount_tmpfs(folder: Path, *, size: str, read_only: bool = False) -> bool:
    """Mount a tmpfs of `size` (mount's syntax: 64k, 4m) on folder; False when this sandbox forbids it."""
    if not can_mount():
        return False
    folder.mkdir(parents=True, exist_ok=True)
    options = f"size={size},mode=0755" + (",ro" if read_only else "")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "loftrec-test", str(folder)],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def remount(folder: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True, capture_output=True)


def unmount(folder: Path) -> None:
    subprocess.run(["umount", str(folder)], check=False, capture_output=True)


@contextmanager
def tmpfs(folder: Path, *, size: str, read_only: bool = False) -> Iterator[Path]:
    """A real small file system on folder for the test's duration; skips the test where mounts are
    not allowed."""
    if not mount_tmpfs(folder, size=size, read_only=read_only):
        pytest.skip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)")
    try:
        yield folder
    finally:
        unmount(folder)


def run_cli(*args: str | Path, file_size_limit: int | None = None) -> subprocess.CompletedProcess[str]:
    """python -m jobs.prep as the container runs it; `file_size_limit`: RLIMIT_FSIZE in bytes, so that a
    write past it fails with EFBIG (Python ignores SIGXFSZ)."""

    def limit() -> None:  # in the child, before exec
        if file_size_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    return subprocess.run(
        [sys.executable, "-m", "jobs.prep", *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        preexec_fn=limit if file_size_limit is not None else None,
    )
