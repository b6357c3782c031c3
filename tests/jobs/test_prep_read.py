"""The reader on file shapes that real inputs take: gzip members, CRLF, ids of every form."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pyarrow as pa

from jobs.prep.blocks import _IdColumn
from jobs.prep.read import find_input_files, read_reviews
from tests.jobs.test_prep_support import ROWS, tsv_bytes, write_tsv


def ids_per_row(codes: np.ndarray, ids: pa.Array) -> list[str]:
    return [str(x) for x in ids.cast(pa.string()).take(pa.array(codes)).to_pylist()]


def test_concatenated_gzip_members_and_crlf_lines_read_like_the_plain_file(tmp_path: Path) -> None:
    data = tsv_bytes(ROWS)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "multi.tsv.gz").write_bytes(gzip.compress(data[:400]) + gzip.compress(data[400:]))
    write_tsv(tmp_path / "b" / "crlf.tsv", data.replace(b"\n", b"\r\n"))
    write_tsv(tmp_path / "c" / "plain.tsv", data)
    results = [read_reviews(find_input_files(tmp_path / d)) for d in ("a", "b", "c")]
    for r in results:
        assert (r.rows_read, r.bad_rows) == (9, {})
        assert ids_per_row(r.customer, r.customer_ids) == [row[0] for row in ROWS]
        assert ids_per_row(r.product, r.product_ids) == [row[1] for row in ROWS]
        assert r.rating.tolist() == [int(row[3]) for row in ROWS]
        assert r.day.tolist() == results[2].day.tolist()
    assert results[2].day.tolist()[:2] == [16435, 16495]  # 2014-12-31, 2015-03-01


def test_ids_that_only_look_numeric_stay_distinct(tmp_path: Path) -> None:
    rows = [
        ("7", "B1", "T", "5", "2015-01-01"),
        ("007", "B1", "T", "4", "2015-01-02"),
        ("+7", "B1", "T", "3", "2015-01-03"),
    ]
    write_tsv(tmp_path / "r.tsv", tsv_bytes(rows))
    r = read_reviews([tmp_path / "r.tsv"])
    assert ids_per_row(r.customer, r.customer_ids) == ["7", "007", "+7"]
    assert len(set(r.customer.tolist())) == 3


def test_id_column_turns_to_text_when_a_later_block_is_not_numeric() -> None:
    column = _IdColumn()
    column.append(pa.array([b"12", b"5", b"12"], pa.binary()))
    assert column.numeric
    column.append(pa.array([b"A7", b"5"], pa.binary()))
    assert not column.numeric
    codes, ids = column.encode()
    assert ids.type == pa.string()
    assert ids_per_row(codes, ids) == ["12", "5", "12", "A7", "5"]
    assert codes[0] == codes[2] and codes[1] == codes[4] and len(ids) == 3


def test_numeric_ids_are_encoded_by_value() -> None:
    column = _IdColumn()
    column.append(pa.array([b"30", b"4"], pa.binary()))
    column.append(pa.array([b"4", b"1000000000000"], pa.binary()))
    codes, ids = column.encode()
    assert column.numeric and ids.type == pa.int64()
    assert ids_per_row(codes, ids) == ["30", "4", "4", "1000000000000"]
