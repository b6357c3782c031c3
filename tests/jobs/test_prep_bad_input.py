"""Bad input: each case is counted or refused with one line that names the cause and the counts."""

from __future__ import annotations

import gzip
import os
import random
import shutil
from pathlib import Path

import pytest

from contract.documents import Manifest
from jobs.prep.failure import PrepError
from jobs.prep.job import PrepConfig, run_prep
from jobs.prep.prepare import Thresholds
from tests.jobs.test_prep_support import HEADER, ROWS, line, many_rows, tsv_bytes, write_tsv

LOW = Thresholds(min_customer_reviews=2, min_product_reviews=2)


def _quiet(_: str) -> None:
    pass


def prep(tmp_path: Path, config: PrepConfig | None = None) -> Manifest:
    return run_prep(
        tmp_path / "in",
        tmp_path / "out",
        config or PrepConfig(thresholds=LOW, fm_instance_count=1),
        log=_quiet,
    )


def fails(tmp_path: Path, config: PrepConfig | None = None) -> str:
    with pytest.raises(PrepError) as err:
        prep(tmp_path, config)
    message = str(err.value)
    assert "\n" not in message
    return message


GOOD = ("900", "B1", "Alpha Show", "4", "2015-01-02")
BAD_LINES = [
    # wrong field count: 22 fields (review text holding 7 tabs), and 14
    line(GOOD, body="a\tb\tc\td\te\tf\tg\th").encode(),
    "\t".join(line(GOOD).split("\t")[:14]).encode(),
    # undecodable bytes in a title (Latin-1)
    line(GOOD).replace("Alpha Show", "Caf\x00").encode().replace(b"\x00", b"\xe9"),
    # empty ids; the second also has a bad rating: counted once, under the first reason
    line(("", "B1", "Alpha Show", "4", "2015-01-02")).encode(),
    line(("900", "", "Alpha Show", "9", "2015-01-02")).encode(),
    # empty title
    line(("900", "B1", "", "4", "2015-01-02")).encode(),
    # star ratings
    *(
        line(("900", "B1", "Alpha Show", r, "2015-01-02")).encode()
        for r in ("0", "6", "4.5", "", "five", " 4")
    ),
    # dates: not a calendar date, other shapes, empty
    *(
        line(("900", "B1", "Alpha Show", "4", d)).encode()
        for d in ("2015-02-30", "2015/01/02", "", "15-01-02", "2015-1-2", "2015-01-02T00:00")
    ),
]
BAD_COUNTS = {
    "wrong_field_count": 2,
    "undecodable_bytes": 1,
    "empty_id": 2,
    "empty_title": 1,
    "bad_star_rating": 6,
    "bad_review_date": 6,
}


def test_bad_rows_are_skipped_and_counted_by_reason(tmp_path: Path) -> None:
    write_tsv(tmp_path / "in" / "reviews.tsv", tsv_bytes(ROWS, BAD_LINES))
    manifest = prep(tmp_path, PrepConfig(thresholds=LOW, fm_instance_count=1, max_bad_row_fraction=1.0))
    counts = manifest["counts"]
    assert counts["bad_rows"] == BAD_COUNTS
    assert (counts["rows_read"], counts["rows_usable"], counts["rows_kept"]) == (9 + 18, 9, 7)
    assert manifest["inputs"][0]["bad_rows"] == BAD_COUNTS
    assert manifest["feature_dim"] == 6


def test_too_many_bad_rows_fail_with_counts_by_reason(tmp_path: Path) -> None:
    write_tsv(tmp_path / "in" / "reviews.tsv", tsv_bytes(ROWS, BAD_LINES))
    assert fails(tmp_path) == (
        "too many bad rows: 18 of 27 rows read (66.67%) are bad (wrong_field_count 2, undecodable_bytes 1, "
        "empty_id 2, empty_title 1, bad_star_rating 6, bad_review_date 6), above the limit of 1.00% "
        "(--max-bad-row-fraction)"
    )
    assert not (tmp_path / "out").exists()


def test_bad_fraction_at_the_limit_passes_and_above_fails(tmp_path: Path) -> None:
    # 1 bad row in 10 read: 10 % passes a 10 % limit and fails a 9 % one.
    write_tsv(tmp_path / "in" / "reviews.tsv", tsv_bytes(ROWS, BAD_LINES[:1]))
    prep(tmp_path, PrepConfig(thresholds=LOW, fm_instance_count=1, max_bad_row_fraction=0.10))
    shutil.rmtree(tmp_path / "out")
    assert "1 of 10 rows read (10.00%)" in fails(
        tmp_path, PrepConfig(thresholds=LOW, fm_instance_count=1, max_bad_row_fraction=0.09)
    )


def test_nothing_usable(tmp_path: Path) -> None:
    write_tsv(tmp_path / "in" / "reviews.tsv", tsv_bytes([], BAD_LINES[:2]))
    assert fails(tmp_path, PrepConfig(max_bad_row_fraction=1.0)) == (
        "no usable rows: 2 rows read from reviews.tsv, 2 bad (wrong_field_count 2)"
    )


def test_header_only_file_has_no_usable_rows(tmp_path: Path) -> None:
    write_tsv(tmp_path / "in" / "reviews.tsv.gz", (HEADER + "\n").encode())
    assert fails(tmp_path) == "no usable rows: 0 rows read from reviews.tsv.gz, 0 bad (none)"


def test_nothing_survives_the_filters(tmp_path: Path) -> None:
    write_tsv(tmp_path / "in" / "reviews.tsv", tsv_bytes(ROWS))
    assert fails(tmp_path, PrepConfig()) == (
        "nothing survives the filters: 0 of 4 customers have >= 5 reviews (--min-customer-reviews) and 0 of "
        "3 products have >= 10 reviews (--min-product-reviews), but no review among 9 usable rows has both"
    )


def test_truncated_gzip(tmp_path: Path) -> None:
    rng = random.Random(1)
    rows = [
        (str(rng.randrange(1000)), f"B{rng.randrange(50)}", "Alpha Show", "4", "2015-01-02")
        for _ in range(3000)
    ]
    data = gzip.compress(tsv_bytes(rows))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "reviews.tsv.gz").write_bytes(data[: len(data) // 2])
    message = fails(tmp_path)
    assert message.startswith("input reviews.tsv.gz: the gzip stream is truncated or corrupt (")
    assert message.endswith("rows read before")


def test_not_gzip_although_named_so(tmp_path: Path) -> None:
    write_tsv(tmp_path / "in" / "reviews.tsv", tsv_bytes(ROWS))
    (tmp_path / "in" / "reviews.tsv").rename(tmp_path / "in" / "reviews.tsv.gz")
    message = fails(tmp_path)
    assert message.startswith(
        "input reviews.tsv.gz: the gzip stream is truncated or corrupt before the end of its header"
    )


@pytest.mark.parametrize(
    ("name", "data"),
    [("empty.tsv", b""), ("empty.tsv.gz", b""), ("empty.tsv.gz", gzip.compress(b""))],
    ids=["zero-byte", "zero-byte-gz", "gzip-of-nothing"],
)
def test_empty_files_are_skipped_and_logged(tmp_path: Path, name: str, data: bytes) -> None:
    write_tsv(tmp_path / "in" / "a.tsv", tsv_bytes(ROWS))
    (tmp_path / "in" / "more").mkdir()
    (tmp_path / "in" / "more" / name).write_bytes(data)
    log: list[str] = []
    manifest = run_prep(
        tmp_path / "in", tmp_path / "out", PrepConfig(thresholds=LOW, fm_instance_count=1), log=log.append
    )
    assert f"skipped 1 empty input file(s): more/{name}" in log
    assert [f["name"] for f in manifest["inputs"]] == ["a.tsv"]
    assert manifest["empty_inputs"] == [f"more/{name}"]
    assert (manifest["counts"]["rows_read"], manifest["counts"]["empty_files"]) == (9, 1)


def test_only_empty_files_fail_naming_them(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.tsv").write_bytes(b"")
    (tmp_path / "in" / "b.tsv.gz").write_bytes(gzip.compress(b""))
    assert fails(tmp_path) == "no usable input: every input file is empty (a.tsv, b.tsv.gz)"


def test_header_only_and_empty_files(tmp_path: Path) -> None:
    write_tsv(tmp_path / "in" / "a.tsv", (HEADER + "\n").encode())
    (tmp_path / "in" / "b.tsv").write_bytes(b"")
    assert fails(tmp_path) == (
        "no usable rows: 0 rows read from a.tsv, 0 bad (none); empty files skipped: b.tsv"
    )


def test_a_blank_first_line_is_no_header(tmp_path: Path) -> None:
    write_tsv(tmp_path / "in" / "a.tsv", b"\r\n" + tsv_bytes(ROWS))
    assert fails(tmp_path) == "input a.tsv: the first line, the header, is empty"


def test_missing_header_column(tmp_path: Path) -> None:
    header = HEADER.replace("star_rating", "stars")
    write_tsv(tmp_path / "in" / "reviews.tsv", tsv_bytes(ROWS, header=header))
    message = fails(tmp_path)
    assert message.startswith(
        "input reviews.tsv: header lacks column(s) star_rating (needs customer_id, product_id, "
        "product_title, star_rating, review_date; found 15 columns: marketplace, customer_id,"
    )


def test_no_input_files(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "README.txt").write_text("not reviews")
    assert fails(tmp_path) == f"no input files: no .tsv or .tsv.gz file under {tmp_path / 'in'}"


def test_missing_input_folder(tmp_path: Path) -> None:
    assert fails(tmp_path) == f"input folder {tmp_path / 'in'} does not exist or is not a folder"


def test_output_folder_must_be_new(tmp_path: Path) -> None:
    write_tsv(tmp_path / "in" / "reviews.tsv", tsv_bytes(ROWS))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "stale.rio").write_bytes(b"")
    assert (
        fails(tmp_path)
        == f"output folder {tmp_path / 'out'} is not an empty folder: give a new folder for each run"
    )


def test_fewer_train_rows_than_shards(tmp_path: Path) -> None:
    write_tsv(tmp_path / "in" / "reviews.tsv", tsv_bytes(ROWS))
    assert fails(tmp_path, PrepConfig(thresholds=LOW, fm_instance_count=2, shards_per_instance=2)) == (
        "too few training rows: 3 train rows for 4 shards (--fm-instance-count 2 x --shards-per-instance 2)"
    )


def test_unreadable_input_file(tmp_path: Path) -> None:
    path = write_tsv(tmp_path / "in" / "reviews.tsv", tsv_bytes(ROWS))
    path.chmod(0o000)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("permission bits do not stop this user (root) from reading")
        assert fails(tmp_path) == "input reviews.tsv: cannot read it: permission denied (EACCES)"
    finally:
        path.chmod(0o644)


# ------------------------------------------------------------------------------------ warnings

ONE_REVIEW_CUSTOMER = ("56", "B2", "Beta Film", "3", "2015-01-05")


def test_a_tiny_training_set_is_warned_about(tmp_path: Path) -> None:
    # Thresholds 1/1 keep all 10 rows; 5 customers give 5 test rows (20's is B3, alone on its latest date);
    # 20 keeps B1 and B2 outside it: validation B1 (the smaller split hash: test_prep_semantics.py);
    # train = 7's B2, 100's B2, 20's B2 (the test and validation pairs removed), 55 and 56 none: 3 rows.
    write_tsv(tmp_path / "in" / "reviews.tsv", tsv_bytes([*ROWS, ONE_REVIEW_CUSTOMER]))
    log: list[str] = []
    manifest = run_prep(
        tmp_path / "in",
        tmp_path / "out",
        PrepConfig(thresholds=Thresholds(1, 1), fm_instance_count=1),
        log=log.append,
    )
    counts = manifest["counts"]
    assert (counts["train_rows"], counts["validation_rows"], counts["test_rows"]) == (3, 1, 5)
    expected = [
        "small training set: 3 train rows, fewer than 1,000 (one FM mini-batch at the default "
        "mini_batch_size): the run's figures mean little",
        "fewer train rows than customers: 3 train rows for 5 customers (each customer's latest review is a "
        "test row): most customers have no training row; raise --min-customer-reviews",
    ]
    assert manifest["warnings"] == expected
    assert [m for m in log if m.startswith("warning: ")] == [f"warning: {w}" for w in expected]


def test_a_healthy_training_set_has_no_warning(tmp_path: Path) -> None:
    write_tsv(tmp_path / "in" / "reviews.tsv", tsv_bytes(many_rows(3000, customers=200, products=40)))
    manifest = run_prep(
        tmp_path / "in", tmp_path / "out", PrepConfig(thresholds=LOW, fm_instance_count=1), log=_quiet
    )
    assert manifest["counts"]["train_rows"] >= 1_000 > manifest["num_customers"]
    assert manifest["warnings"] == []


def test_unlistable_input_folder(tmp_path: Path) -> None:
    write_tsv(tmp_path / "in" / "a.tsv", tsv_bytes(ROWS))
    locked = tmp_path / "in" / "more"
    write_tsv(locked / "b.tsv", tsv_bytes(ROWS))
    locked.chmod(0o000)
    try:
        if os.access(locked, os.R_OK):
            pytest.skip("permission bits do not stop this user (root) from listing")
        assert fails(tmp_path) == (
            f"input folder {tmp_path / 'in'}: cannot list {locked}: permission denied (EACCES)"
        )
    finally:
        locked.chmod(0o755)
