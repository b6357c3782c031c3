"""The reader and the job on real rows: the 874 Amazon sample rows in ../shared (read in place, never copied).

The expected values come from an independent plain-Python reading (csv with quoting off) and a plain-Python
statement of the split, so a disagreement points at the vectorized code.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow as pa
import pytest

from fm.recordio import read_sparse_records
from jobs.prep.blocks import NEEDED_COLUMNS
from jobs.prep.job import PrepConfig, run_prep
from jobs.prep.prepare import Thresholds
from jobs.prep.read import find_input_files, read_reviews
from tests.jobs.test_prep_support import plain_split

SAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "amazon-reviews-us-samples"
pytestmark = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"the Amazon sample rows are not at {SAMPLES}")
EPOCH = dt.date(1970, 1, 1)

Row = tuple[str, str, str, int, int]  # customer, product, title, rating, day


def python_rows() -> list[Row]:
    rows: list[Row] = []
    for path in sorted(SAMPLES.glob("*.tsv")):
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            header = next(reader)
            at = [header.index(c) for c in NEEDED_COLUMNS]
            for fields in reader:
                c, p, t, r, d = (fields[i] for i in at)
                rows.append((c, p, t, int(r), (dt.date.fromisoformat(d) - EPOCH).days))
    return rows


def labels(folder: Path) -> list[float]:
    found: list[float] = []
    for path in sorted(folder.iterdir()):
        with path.open("rb") as f:
            found += read_sparse_records(f).labels.tolist()
    return sorted(found)


def test_every_sample_row_is_read_as_plain_python_reads_it() -> None:
    expected = python_rows()
    assert len(expected) == 874
    assert any('"' in t for _, _, t, _, _ in expected)  # quote characters, read as ordinary ones
    reviews = read_reviews(find_input_files(SAMPLES), root=SAMPLES)
    assert reviews.rows_read == 874
    assert reviews.bad_rows == {}
    customers = reviews.customer_ids.cast(pa.string()).take(pa.array(reviews.customer)).to_pylist()
    products = reviews.product_ids.cast(pa.string()).take(pa.array(reviews.product)).to_pylist()
    got = list(zip(customers, products, reviews.rating.tolist(), reviews.day.tolist(), strict=True))
    assert got == [(c, p, r, d) for c, p, _, r, d in expected]
    assert [f.name for f in reviews.files][:2] == [
        "amazon_reviews_us_Apparel_v1_00.tsv",
        "amazon_reviews_us_Automotive_v1_00.tsv",
    ]


def test_the_job_on_the_samples_matches_a_plain_python_statement(tmp_path: Path) -> None:
    rows = python_rows()
    manifest = run_prep(
        SAMPLES,
        tmp_path / "out",
        PrepConfig(thresholds=Thresholds(1, 1), fm_instance_count=1),
        log=lambda _: None,
    )
    by_customer: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_customer[row[0]].append(row)
    test, validation, train = plain_split([(c, p, r, d) for c, p, _, r, d in rows], seed=42)
    assert manifest["num_customers"] == len(by_customer) == len(test)
    assert manifest["num_products"] == len({r[1] for r in rows})
    counts = manifest["counts"]
    assert isinstance(counts, dict)
    assert (counts["rows_kept"], counts["test_rows"], counts["validation_rows"], counts["train_rows"]) == (
        874,
        len(test),
        len(validation),
        len(train),
    )
    for channel, expected in (("test", test), ("validation", validation), ("train", train)):
        assert labels(tmp_path / "out" / channel) == sorted(float(r[2]) for r in expected), channel

    titles: dict[str, Counter[str]] = defaultdict(Counter)
    for _, p, t, _, _ in rows:
        titles[p][t] += 1
    lines = (tmp_path / "out" / "index" / "products.tsv").read_text(encoding="utf-8").split("\n")[:-1]
    for text in lines:
        product, title = text.split("\t")
        best = max(titles[product].values())
        assert title == min(t for t, n in titles[product].items() if n == best)
