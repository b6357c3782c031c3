"""Property-based tests of the prep reader and the job, on generated rows and files.

Whatever the bytes (field counts, tabs, CR and LF anywhere, quotes, long fields, bad UTF-8, empty and
truncated files, bad dates and ratings), reading ends in exact counts or in a one-line PrepError, and the
job ends in a manifest or a one-line PrepError with no output folder left; its train, validation and test
shards hold the rows that a plain-Python statement of the split picks (tests/jobs/test_prep_support.py
plain_split). The expected answer comes from `expect`, a plain-Python statement of the schema's rules,
independent of the reader's code:
- a file with no text at all is skipped; the header is the text up to the first LF;
- a row ends at LF; one CR before its end is dropped; an empty row is no row; a row longer than
  max_row_bytes is row_too_long; then, first reason first: not the header's field count, a needed field
  not UTF-8, an empty id, an empty title, a rating not 1..5, a date not a real YYYY-MM-DD.
Run time is bounded by max_examples (reader 150, job 40: a few seconds each on the development machine).
"""

from __future__ import annotations

import datetime
import gzip
import re
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from contract.index import normalize_id
from fm.recordio import read_sparse_records
from jobs.prep.blocks import BAD_ROW_REASONS, NEEDED_COLUMNS
from jobs.prep.failure import PrepError
from jobs.prep.job import PrepConfig, run_prep, training_set_warnings
from jobs.prep.prepare import Thresholds
from jobs.prep.read import Reviews, RowLimits, read_reviews
from tests.jobs.test_prep_support import HEADER, PREP_ENTRIES, plain_split

COLUMNS = HEADER.split("\t")
EPOCH = datetime.date(1970, 1, 1)
DATE_SHAPE = re.compile(rb"[0-9]{4}-[0-9]{2}-[0-9]{2}")

# ---------------------------------------------------------------------------------------------- the oracle

UsableRow = tuple[str, str, str, int, int]  # customer, product, title, rating, day


@dataclass
class Expected:
    """What reading the files must give."""

    error: tuple[str, ...] | None = None  # the PrepError's message starts with one of these
    rows_read: int = 0
    bad: Counter[str] = field(default_factory=Counter)
    usable: list[UsableRow] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)


def _row_verdict(  # noqa: PLR0911 (one return per reason, in the order the reasons apply)
    body: bytes, positions: list[int], n_columns: int
) -> str | UsableRow:
    """A bad row's reason, or the usable row."""
    fields = body.split(b"\t")
    if len(fields) != n_columns:
        return "wrong_field_count"
    customer, product, title, rating, date = (fields[p] for p in positions)
    try:
        text = [v.decode("utf-8") for v in (customer, product, title, rating, date)]
    except UnicodeDecodeError:
        return "undecodable_bytes"
    text[0], text[1] = (
        normalize_id(text[0]),
        normalize_id(text[1]),
    )  # whitespace around an id is not part of it
    if not text[0] or not text[1]:
        return "empty_id"
    if not title:
        return "empty_title"
    if rating not in (b"1", b"2", b"3", b"4", b"5"):
        return "bad_star_rating"
    if not DATE_SHAPE.fullmatch(date):
        return "bad_review_date"
    try:
        day = (datetime.date.fromisoformat(text[4]) - EPOCH).days
    except ValueError:
        return "bad_review_date"
    return text[0], text[1], text[2], int(text[3]), day


def _header_error(name: str, line: bytes) -> str | None:
    if not line.strip():
        return f"input {name}: the first line, the header, is empty"
    try:
        names = line.decode("utf-8-sig").split("\t")
    except UnicodeDecodeError:
        return f"input {name}: the header line is not UTF-8"
    if any(c not in names for c in NEEDED_COLUMNS):
        return f"input {name}: header lacks column(s)"
    if any(names.count(c) > 1 for c in NEEDED_COLUMNS):
        return f"input {name}: header repeats column(s)"
    return None


def expect(files: list[tuple[str, bytes, bool]], max_row_bytes: int) -> Expected:
    """files: (name, text, truncated gzip) in reading order."""
    out = Expected()
    for name, text, truncated in files:
        header, _, body = text.partition(b"\n")
        header = header.removesuffix(b"\r")
        error = _header_error(name, header) if text else None
        if truncated:  # the header may be read before the stream breaks
            out.error = (
                f"input {name}: the gzip stream is truncated or corrupt",
                *([error] if error else []),
            )
            return out
        if not text:
            out.empty.append(name)
            continue
        if error is not None:
            out.error = (error,)
            return out
        names = header.decode("utf-8-sig").split("\t")
        positions = [names.index(c) for c in NEEDED_COLUMNS]
        rows = body.split(b"\n")
        if rows[-1] == b"":
            rows.pop()
        for row in rows:
            if len(row) > max_row_bytes:
                verdict: str | UsableRow = "row_too_long"
            else:
                content = row.removesuffix(b"\r")
                if not content:
                    continue
                verdict = _row_verdict(content, positions, len(names))
            out.rows_read += 1
            if isinstance(verdict, str):
                out.bad[verdict] += 1
            else:
                out.usable.append(verdict)
    if not out.error and out.empty and len(out.empty) == len(files):
        out.error = ("no usable input: every input file is empty",)
    return out


def split_ratings(usable: list[UsableRow]) -> dict[str, list[float]]:
    """The sorted ratings of each channel (train, validation, test) with thresholds 1/1 and the default seed,
    by the split's rules in plain Python (tests/jobs/test_prep_support.py plain_split)."""
    test, validation, train = plain_split([(c, p, r, d) for c, p, _, r, d in usable], PrepConfig().seed)
    return {
        name: sorted(float(r[2]) for r in rows)
        for name, rows in (("train", train), ("validation", validation), ("test", test))
    }


def shard_ratings(folder: Path) -> list[float]:
    labels: list[float] = []
    for path in sorted(folder.iterdir()):
        with path.open("rb") as f:
            labels += read_sparse_records(f).labels.tolist()
    return sorted(labels)


def usable_rows(reviews: Reviews) -> list[UsableRow]:
    customers = reviews.customer_ids.cast(pa.string()).take(pa.array(reviews.customer)).to_pylist()
    products = reviews.product_ids.cast(pa.string()).take(pa.array(reviews.product)).to_pylist()
    return [
        (str(c), str(p), "", int(r), int(d))
        for c, p, r, d in zip(customers, products, reviews.rating.tolist(), reviews.day.tolist(), strict=True)
    ]


def title_pairs(reviews: Reviews) -> Counter[tuple[str, str]]:
    table = reviews.product_titles
    products = reviews.product_ids.cast(pa.string()).take(table.column("product")).to_pylist()
    titles = table.column("title").to_pylist()
    return Counter(
        {
            (str(p), str(t)): int(n)
            for p, t, n in zip(products, titles, table.column("n").to_pylist(), strict=True)
        }
    )


# ---------------------------------------------------------------------------------------------- strategies

IDS = st.sampled_from(["7", "100", "C1", "007", "B1", "B2", "ÿ", '"q', "x\ry"] * 2 + [""])
TITLES = st.sampled_from(["Alpha Show", "beta\rfilm", '"Gamma', "Δ", "a b"] * 2 + [""])
RATINGS = st.sampled_from(["1", "2", "3", "4", "5"] * 4 + ["0", "6", "4.5", "", " 4", "five"])
DATES = st.one_of(
    st.dates(min_value=datetime.date(1, 1, 1)).map(lambda d: d.strftime("%Y-%m-%d").rjust(10, "0")),
    st.sampled_from(
        ["2015-02-30", "2015-13-01", "2015-1-2", "2015/01/02", "", "2015-01-02T00:00", "0001-01-01"]
    ),
)
PLAUSIBLE = {
    "customer_id": IDS,
    "product_id": IDS,
    "product_title": TITLES,
    "star_rating": RATINGS,
    "review_date": DATES,
}
# Review text as it comes: quotes, CR, non-ASCII, a line separator; no tab or LF (those make other rows).
BODY = st.text(
    alphabet=st.sampled_from(["a", "Z", " ", '"', "'", "\r", "é", "€", "\u2028", "-", "0"]), max_size=12
)
# Anything at all: tabs, LF, CR, NUL, bytes that are not UTF-8.
RAW = st.binary(max_size=12)
NOT_UTF8 = st.sampled_from([b"caf\xe9", b"\xff", b"\xed\xa0\x80", b"\xc3", b"a\x80b"])


@st.composite
def field_value(draw: st.DrawFn, column: str, *, messy: bool, long_bytes: int) -> bytes:
    """A plausible value for its column (bad ratings, dates, ids and titles among them), review text that
    may be long or not UTF-8; when `messy`, sometimes raw bytes."""
    choice = draw(st.integers(0, 9))
    if messy and choice < 3:
        return draw(RAW)
    if column in PLAUSIBLE:
        return str(draw(PLAUSIBLE[column])).encode()
    if choice == 3:
        return draw(NOT_UTF8)
    if choice == 4 and long_bytes and draw(st.integers(0, 4)) == 2:
        return b"L" * draw(st.integers(0, long_bytes))
    return draw(BODY).encode()


@st.composite
def review_file(draw: st.DrawFn, long_bytes: int) -> bytes:
    """A file's text: usually the real header, then rows of generated fields with LF, CRLF, a bare CR or
    nothing after them, some rows messy or junk; sometimes an odd header."""
    standard = HEADER.encode()
    odd = [
        b"\xef\xbb\xbf" + standard,  # a BOM
        standard.replace(b"star_rating", b"stars"),
        standard + b"\tproduct_id",
        b"",
        b"\xff" + standard,
    ]
    parts = [draw(st.sampled_from([standard] * 100 + odd))]
    parts.append(draw(st.sampled_from([b"\n", b"\r\n"])))
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.integers(0, 9))
        if kind == 5:
            parts.append(draw(RAW))
        else:
            parts.append(
                b"\t".join(draw(field_value(c, messy=kind == 6, long_bytes=long_bytes)) for c in COLUMNS)
            )
        parts.append(draw(st.sampled_from([b"\n"] * 6 + [b"\r\n"] * 2 + [b"\r", b"", b"\n\n", b"\r\n\r\n"])))
    return b"".join(parts)


@st.composite
def input_files(draw: st.DrawFn, long_bytes: int = 0) -> list[tuple[str, bytes, bool]]:
    """1 to 3 files: (name, text, truncate the gzip); some empty, some gzip."""
    files = []
    for i in range(draw(st.integers(1, 3))):
        gz = draw(st.booleans())
        # Rare cases on a middle value: Hypothesis draws the ends of a range more often.
        text = b"" if draw(st.integers(0, 9)) == 5 else draw(review_file(long_bytes))
        truncate = gz and bool(text) and draw(st.integers(0, 19)) == 10
        files.append((f"f{i}.tsv" + (".gz" if gz else ""), text, truncate))
    return files


def write_files(folder: Path, files: list[tuple[str, bytes, bool]]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text, truncate in files:
        data = gzip.compress(text, mtime=0) if name.endswith(".gz") and text else text
        if truncate:
            data = data[: len(data) - 9]  # into the deflate data: the stream cannot be complete
        (folder / name).write_bytes(data)
    return [folder / name for name, _, _ in files]


# ---------------------------------------------------------------------------------------------- properties

# Small pieces reach every boundary case; rows are ~100 bytes, long fields up to 600.
LIMITS = st.sampled_from([RowLimits(16, 256), RowLimits(64, 300), RowLimits(256, 600), RowLimits(1024, 4096)])


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=input_files(long_bytes=600), limits=LIMITS)
def test_reader_counts_every_row_exactly(files: list[tuple[str, bytes, bool]], limits: RowLimits) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = write_files(folder, files)
        want = expect(files, limits.max_row_bytes)
        try:
            reviews = read_reviews(paths, root=folder, limits=limits)
        except PrepError as e:
            message = str(e)
            event(f"reader: {message.split(':')[0 if message.startswith('no ') else 1].strip()}")
            assert "\n" not in message
            assert want.error is not None, message
            assert message.startswith(want.error), (message, want.error)
            return
    event("reader: read")
    event(f"reader: {'some' if want.usable else 'no'} usable rows")
    for reason in want.bad:
        event(f"reader: {reason} rows")
    assert want.error is None
    assert reviews.rows_read == want.rows_read
    assert reviews.bad_rows == {r: want.bad[r] for r in BAD_ROW_REASONS if want.bad[r]}
    assert reviews.empty_files == want.empty
    assert sorted(usable_rows(reviews)) == sorted((c, p, "", r, d) for c, p, _, r, d in want.usable)
    assert title_pairs(reviews) == Counter((p, t) for _, p, t, _, _ in want.usable)


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=input_files(), max_bad=st.sampled_from([1.0, 1.0, 1.0, 0.5, 0.0]))
def test_job_ends_in_a_manifest_or_one_line(files: list[tuple[str, bytes, bool]], max_bad: float) -> None:
    config = PrepConfig(thresholds=Thresholds(1, 1), fm_instance_count=1, max_bad_row_fraction=max_bad)
    with tempfile.TemporaryDirectory() as tmp:
        write_files(Path(tmp) / "in", files)
        want = expect(files, RowLimits().max_row_bytes)
        n_bad = sum(want.bad.values())
        ratings = split_ratings(want.usable)
        train, validation, test = (len(ratings[c]) for c in ("train", "validation", "test"))
        if want.error is None and not want.usable:
            want.error = ("no usable rows: ",)
        elif want.error is None and n_bad > max_bad * want.rows_read:
            want.error = ("too many bad rows: ",)
        elif want.error is None and train < 1:
            want.error = ("too few training rows: 0 train rows for 1 shards",)
        out = Path(tmp) / "runs" / "r1" / "prep"
        try:
            manifest = run_prep(Path(tmp) / "in", out, config, log=lambda _: None)
        except PrepError as e:
            message = str(e)
            event(f"job: {message.split(':', maxsplit=1)[0]}")
            assert "\n" not in message
            assert want.error is not None and message.startswith(want.error), (message, want.error)
            assert not (Path(tmp) / "runs").exists()  # nothing half-written, not even the parents
            return
        event("job: manifest")
        assert want.error is None
        counts = manifest["counts"]
        assert (counts["rows_read"], counts["rows_usable"]) == (want.rows_read, len(want.usable))
        assert counts["bad_rows"] == {r: want.bad[r] for r in BAD_ROW_REASONS if want.bad[r]}
        assert (counts["train_rows"], counts["validation_rows"], counts["test_rows"]) == (
            train,
            validation,
            test,
        )
        event(f"job: {'some' if validation else 'no'} validation rows")
        assert manifest["empty_inputs"] == want.empty
        assert manifest["warnings"] == training_set_warnings(
            train_rows=train, num_customers=test, validation_rows=validation
        )
        assert sorted(p.name for p in out.iterdir()) == PREP_ENTRIES
        for channel, expected in ratings.items():
            assert shard_ratings(out / channel) == expected, channel
        assert sorted(p.name for p in out.parent.iterdir()) == ["prep"]
