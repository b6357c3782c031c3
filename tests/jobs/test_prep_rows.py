"""Where rows end: LF ends a row, a CR before it is dropped, any other CR is part of its field; a long row
is read whole, one over the limit is counted as row_too_long; pyarrow gets whole rows only."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import pytest

from contract.index import load_index
from jobs.prep.job import PrepConfig, run_prep
from jobs.prep.prepare import Thresholds
from jobs.prep.read import RowLimits, read_reviews
from jobs.prep.rows import MAX_ROW_BYTES, RowStream
from tests.jobs.test_prep_support import HEADER, ROWS, line, tsv_bytes, write_tsv


def drain(stream: RowStream) -> tuple[list[bytes], list[bytes]]:
    """(the rows pyarrow would get, split on LF, and the rows set aside), reading to the end, checking
    what pyarrow needs: a row that crosses the end of a block ends within the next block, and no block but
    the last ends with a CR (Arrow's CSV reader then skips the LF that starts the next block: a next block
    of that LF alone ends the stream there, apache/arrow#51368)."""
    blocks = []
    while block := bytes(stream.read(1 << 16)):
        blocks.append(block)
    for block, following in itertools.pairwise(blocks):
        assert block.endswith(b"\n") or b"\n" in following or following is blocks[-1]
        assert not block.endswith(b"\r"), (block, following)
    rows = b"".join(blocks).split(b"\n")
    if rows[-1] == b"":
        rows.pop()
    return rows, stream.take_rows_aside()


def rows_of(data: bytes, *, piece: int = 7, max_row: int = 64) -> tuple[list[bytes], list[bytes], int]:
    stream = RowStream(io.BytesIO(data).read, piece_bytes=piece, max_row_bytes=max_row)
    assert stream.header() == data.split(b"\n", 1)[0].removesuffix(b"\r")
    handed, aside = drain(stream)
    return handed, aside, stream.rows_too_long


def test_blocks_hold_whole_rows_whatever_the_piece_size() -> None:
    data = b"h\n" + b"".join(b"row %d\n" % i for i in range(50))
    for piece in (1, 2, 3, 7, 64, 1000):
        handed, aside, too_long = rows_of(data, piece=piece, max_row=max(2 * piece, 64))
        assert handed == [b"row %d" % i for i in range(50)]
        assert (aside, too_long) == ([], 0)


def test_bare_cr_rows_are_set_aside_crlf_rows_are_not() -> None:
    data = b"h\r\nplain\r\nin\rside\r\nlast\rrow\nend\r\n"
    handed, aside, _ = rows_of(data, piece=4, max_row=64)
    assert handed == [b"plain\r", b"end\r"]  # pyarrow drops the CR of CRLF itself
    assert aside == [b"in\rside", b"last\rrow"]


def test_crlf_split_between_pieces_is_a_line_end() -> None:
    data = b"h\nab\r\ncd\r\n"
    for piece in range(1, 12):
        handed, aside, _ = rows_of(data, piece=piece, max_row=64)
        assert [r.removesuffix(b"\r") for r in handed] == [b"ab", b"cd"]
        assert aside == []


def test_a_cr_at_the_end_of_the_file_ends_the_last_row() -> None:
    handed, aside, _ = rows_of(b"h\nab\ncd\r")
    assert [r.removesuffix(b"\r") for r in handed] == [b"ab", b"cd"]
    assert aside == []
    handed, aside, _ = rows_of(b"h\nab\nc\rd")
    assert (handed, aside) == ([b"ab"], [b"c\rd"])


def test_long_rows_are_read_whole_and_too_long_rows_counted() -> None:
    data = b"h\n" + b"short\n" + b"L" * 60 + b"\n" + b"T" * 65 + b"\n" + b"after\n" + b"T" * 200
    handed, aside, too_long = rows_of(data, piece=8, max_row=64)
    assert handed == [b"short", b"L" * 60, b"after"]
    assert (aside, too_long) == ([], 2)  # the second ends the file, without LF


def test_a_row_exactly_at_the_limit_is_read() -> None:
    handed, _, too_long = rows_of(b"h\n" + b"x" * 64 + b"\n" + b"y" * 65 + b"\nz\n", piece=8, max_row=64)
    assert (handed, too_long) == ([b"x" * 64, b"z"], 1)


def test_header_of_an_empty_file_is_none() -> None:
    assert RowStream(io.BytesIO(b"").read).header() is None
    stream = RowStream(io.BytesIO(b"only a header").read)
    assert stream.header() == b"only a header"
    assert not stream.has_rows()


# ------------------------------------------------------------------------------ the reader and the job

LOW = PrepConfig(thresholds=Thresholds(1, 1), fm_instance_count=1)


def _quiet(_: str) -> None:
    pass


def test_a_row_with_a_9_mb_review_body_is_read(tmp_path: Path) -> None:
    long_body = "x" * (9 << 20)
    path = write_tsv(
        tmp_path / "r.tsv",
        tsv_bytes(ROWS, [line(("7", "B9", "Long Review", "2", "2016-01-01"), long_body).encode()]),
    )
    reviews = read_reviews([path])
    assert (reviews.rows_read, reviews.rows_usable, reviews.bad_rows) == (10, 10, {})
    assert "B9" in reviews.product_ids.to_pylist()


@pytest.mark.parametrize("name", ["r.tsv", "r.tsv.gz"])
def test_a_row_over_the_limit_is_counted_not_called_corrupt(tmp_path: Path, name: str) -> None:
    too_long = line(ROWS[0], body="x" * (MAX_ROW_BYTES + 1)).encode()
    path = write_tsv(tmp_path / name, tsv_bytes(ROWS, [too_long, line(ROWS[1]).encode()]))
    reviews = read_reviews([path])
    assert (reviews.rows_read, reviews.rows_usable, reviews.bad_rows) == (11, 10, {"row_too_long": 1})


def test_a_bare_cr_in_the_review_body_keeps_the_row_whole(tmp_path: Path) -> None:
    extra = [line(("7", "B2", "beta film", "4", "2015-01-04"), body="first line\rsecond line").encode()]
    path = write_tsv(tmp_path / "r.tsv", tsv_bytes(ROWS, extra))
    reviews = read_reviews([path])
    assert (reviews.rows_read, reviews.rows_usable, reviews.bad_rows) == (10, 10, {})


def test_a_bare_cr_in_a_crlf_file_and_in_needed_fields(tmp_path: Path) -> None:
    rows = [*ROWS, ("7\r1", "B7", "beta\rfilm", "4", "2015-01-04")]
    crlf = tsv_bytes(rows).replace(b"\n", b"\r\n")
    path = write_tsv(tmp_path / "in" / "r.tsv", crlf + line(ROWS[0], body="a\rb").encode() + b"\r\n")
    reviews = read_reviews([path])
    assert (reviews.rows_read, reviews.rows_usable, reviews.bad_rows) == (11, 11, {})
    customers = reviews.customer_ids.cast("string").to_pylist()
    assert "7\r1" in customers and "7" in customers
    titles = reviews.product_titles.column("title").to_pylist()
    assert "beta\rfilm" in titles
    # The whole job: the CR is part of the title in the index and a "-" in its corpus token.
    run_prep(tmp_path / "in", tmp_path / "out", LOW, log=_quiet)
    index = load_index(tmp_path / "out" / "index")
    assert index.customer_ids.count("7\r1") == 1
    assert index.product_titles[index.product_rows["B7"]] == "beta\rfilm"
    assert "beta-film" in (tmp_path / "out" / "corpus" / "corpus.txt").read_text().split()


def test_a_bare_cr_row_with_the_wrong_field_count_is_counted_once(tmp_path: Path) -> None:
    bad = "\t".join(line(ROWS[0]).split("\t")[:14]) + "\rtail"
    path = write_tsv(tmp_path / "r.tsv", tsv_bytes(ROWS, [bad.encode()]))
    reviews = read_reviews([path])
    assert (reviews.rows_read, reviews.bad_rows) == (10, {"wrong_field_count": 1})


def test_header_with_crlf_and_a_bom(tmp_path: Path) -> None:
    data = b"\xef\xbb\xbf" + tsv_bytes(ROWS).replace(b"\n", b"\r\n")
    reviews = read_reviews([write_tsv(tmp_path / "r.tsv", data)])
    assert (reviews.rows_read, reviews.bad_rows) == (9, {})
    assert HEADER.startswith("marketplace")


def test_a_row_of_the_wrong_field_count_that_is_not_utf8_is_one_bad_row(tmp_path: Path) -> None:
    # Review text in Latin-1 holding a tab: 16 fields, not UTF-8. pyarrow cannot report such a row to
    # its invalid-row handler (it hands the handler text), so the stream sets it aside.
    latin1 = line(ROWS[0], body="caf\x00\tcr\x00me").encode().replace(b"\x00", b"\xe9")
    also_latin1 = line(ROWS[1], body="na\x00ve").encode().replace(b"\x00", b"\xef")  # 15 fields: kept
    path = write_tsv(tmp_path / "r.tsv.gz", tsv_bytes(ROWS, [latin1, also_latin1]))
    reviews = read_reviews([path])
    assert (reviews.rows_read, reviews.rows_usable, reviews.bad_rows) == (11, 10, {"wrong_field_count": 1})


@pytest.mark.parametrize(("long_at", "piece"), [(3, 118), (4, 102), (5, 77)])
def test_a_crlf_split_before_a_long_row_loses_no_row(tmp_path: Path, long_at: int, piece: int) -> None:
    """A CRLF file whose piece boundary falls between a row's CR and its LF, the next piece holding that LF
    and the start of a row longer than a piece: pyarrow once got a block ending with the CR, then a block
    of the LF alone, and ended the file there (every row from the long one on was lost, without a word)."""
    rows = [(f"C{i}", f"P{i}", "T", "4", "2015-01-01") for i in range(6)]
    text = (
        HEADER
        + "\r\n"
        + "".join(line(r, body="L" * 200 if i == long_at else "b") + "\r\n" for i, r in enumerate(rows))
    )
    write_tsv(tmp_path / "a.tsv", text.encode())
    reviews = read_reviews([tmp_path / "a.tsv"], root=tmp_path, limits=RowLimits(piece, 4096))
    assert (reviews.rows_read, reviews.rows_usable, reviews.bad_rows) == (6, 6, {})
