"""Reading review files: the five columns the job needs, bad rows counted by reason, ids turned into codes.

The input is the Amazon Customer Reviews TSV schema: 15 tab-separated columns, a header line, no quoting
and no escapes (a `"` is an ordinary character), rows ending with LF (CRLF too; any other CR is part of
its field), as `.tsv` or `.tsv.gz`. The reader streams each file through pyarrow's CSV reader with
quoting off, which parses blocks in native code on its own threads, behind jobs.prep.rows.RowStream,
which finds where rows end as the schema says (pyarrow would also end a row at a bare CR, and fail on a
row longer than its block); only the five needed columns are converted (the review text, most of every
row, is never materialized), and each block is checked and reduced to compact columns before the next
one is taken, so memory holds the kept columns of the rows, not the file. The raw bytes are hashed on
the way through. Empty files (no text at all) are skipped."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from contract import layout
from jobs.prep.failure import PrepError, fmt_count, name_list, os_cause
from jobs.prep.rows import MAX_ROW_BYTES, PIECE_BYTES, HeaderTooLongError, RowStream

NEEDED_COLUMNS = ("customer_id", "product_id", "product_title", "star_rating", "review_date")
# Every bad row is counted once, under the first reason that applies, in this order.
BAD_ROW_REASONS = (
    "row_too_long",  # longer than jobs.prep.rows.MAX_ROW_BYTES (64 MiB): skipped, not held in memory
    "wrong_field_count",  # not 15 tab-separated fields (the real file has lines of 22)
    "undecodable_bytes",  # a needed field is not valid UTF-8
    "empty_id",  # customer_id or product_id is empty
    "empty_title",  # product_title is empty: it has no corpus token
    "bad_star_rating",  # star_rating is not one of 1, 2, 3, 4, 5
    "bad_review_date",  # review_date is not a real YYYY-MM-DD date
)
BLOCK_SIZE = 4 << 20  # bytes of text per parsed block: bounds memory, amortizes per-block overhead
_RATINGS = pa.array([b"1", b"2", b"3", b"4", b"5"], pa.binary())
_DATE_SHAPE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


@dataclass
class InputFile:
    """One input file as the manifest lists it."""

    name: str
    bytes: int
    sha256: str
    rows_read: int = 0
    bad_rows: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "rows_read": self.rows_read,
            "bad_rows": self.bad_rows,
        }


@dataclass
class Reviews:
    """The usable rows of all input files, as parallel arrays, ids replaced by codes."""

    customer: np.ndarray  # int32 code into customer_ids
    product: np.ndarray  # int32 code into product_ids
    rating: np.ndarray  # int8, 1..5
    day: np.ndarray  # int32, days since 1970-01-01
    customer_ids: pa.Array  # one per customer code: string, or int64 when every id is a decimal integer
    product_ids: pa.Array  # one per product code: string, or int64 as customer_ids
    product_titles: pa.Table  # (product: int32 code, title: string, n: int64): rows per title per product
    files: list[InputFile]
    empty_files: list[str] = field(default_factory=list)  # skipped: no text at all (zero-byte objects)

    @property
    def rows_read(self) -> int:
        return sum(f.rows_read for f in self.files)

    @property
    def bad_rows(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for f in self.files:
            total.update(f.bad_rows)
        return {reason: total[reason] for reason in BAD_ROW_REASONS if total[reason]}

    @property
    def rows_usable(self) -> int:
        return len(self.customer)


def find_input_files(folder: Path) -> list[Path]:
    """The .tsv and .tsv.gz files under `folder` (recursively, not into linked folders), in name order; a
    folder that cannot be listed is an error, not a folder skipped."""
    if not folder.is_dir():
        raise PrepError(f"input folder {folder} does not exist or is not a folder")

    def refuse(error: OSError) -> None:
        raise PrepError(f"input folder {folder}: cannot list {error.filename}: {os_cause(error)}")

    files = sorted(
        Path(root) / name
        for root, _, names in os.walk(folder, onerror=refuse)
        for name in names
        if name.endswith(layout.RAW_INPUT_SUFFIXES)
        and not name.startswith(".")
        and (Path(root) / name).is_file()
    )
    if not files:
        raise PrepError(f"no input files: no .tsv or .tsv.gz file under {folder}")
    return files


class _HashingReader:
    """A raw file that hashes and counts the bytes read through it (pyarrow calls read())."""

    def __init__(self, path: Path) -> None:
        self._file: BinaryIO = path.open("rb")
        self.sha256 = hashlib.sha256()
        self.bytes = 0
        self.closed = False

    def read(self, n: int = -1) -> bytes:
        data = self._file.read(n)
        self.sha256.update(data)
        self.bytes += len(data)
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        self._file.close()
        self.closed = True

    def drain(self) -> None:
        """Hash whatever pyarrow left unread (the tail after the last block it needed)."""
        while self.read(1 << 20):
            pass


def _decode_header(name: str, line: bytes) -> list[str]:
    if not line.strip():
        raise PrepError(f"input {name}: the first line, the header, is empty")
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise PrepError(f"input {name}: the header line is not UTF-8 ({e.reason} at byte {e.start})") from e
    return text.split("\t")


def _check_header(name: str, names: list[str]) -> None:
    missing = [c for c in NEEDED_COLUMNS if c not in names]
    if missing:
        raise PrepError(
            f"input {name}: header lacks column(s) {', '.join(missing)} "
            f"(needs {', '.join(NEEDED_COLUMNS)}; found {len(names)} columns: {', '.join(names)[:300]})"
        )
    duplicated = sorted({c for c in NEEDED_COLUMNS if names.count(c) > 1})
    if duplicated:
        raise PrepError(f"input {name}: header repeats column(s) {', '.join(duplicated)}")


def _valid_utf8(values: pa.Array) -> np.ndarray:
    """Per value: is it valid UTF-8. Fast path: validate the whole array at once."""
    try:
        values.view(pa.string()).validate(full=True)
        return np.ones(len(values), dtype=bool)
    except pa.ArrowInvalid:
        out = np.ones(len(values), dtype=bool)
        for i, v in enumerate(values.to_pylist()):
            try:
                v.decode("utf-8")
            except UnicodeDecodeError:
                out[i] = False
        return out


def _parse_days(dates: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """For distinct date strings: (valid, days since epoch). Strict YYYY-MM-DD, real calendar dates only
    (pyarrow's strptime would roll 2015-02-30 over into March: a round trip through strftime rejects it)."""
    text = dates.view(pa.string())
    shaped = pc.fill_null(pc.match_substring_regex(text, _DATE_SHAPE), False)
    parsed = pc.strptime(
        pc.if_else(shaped, text, "1970-01-01"), format="%Y-%m-%d", unit="s", error_is_null=True
    )
    round_trip = pc.strftime(parsed, format="%Y-%m-%d")
    valid = pc.fill_null(pc.and_(shaped, pc.equal(round_trip, text)), False).to_numpy(zero_copy_only=False)
    days = pc.fill_null(parsed.cast(pa.date32()).cast(pa.int32()), 0).to_numpy(zero_copy_only=False)
    return valid, days


def _dictionary_lookup(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Indices and dictionary of a dictionary-typed column read by pyarrow's CSV reader."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    return column.indices.to_numpy(zero_copy_only=False), column.dictionary


class _IdColumn:
    """The ids of the kept rows, block by block, stored compactly until they are encoded.

    Ids that are decimal integers without leading zeros (every customer_id of the real files) are kept as
    int64, which is smaller than the text and hashes faster; the first block holding any other id turns
    the column back to text, so any string id works."""

    def __init__(self) -> None:
        self.numeric = True
        self.blocks: list[pa.Array] = []

    def append(self, ids: pa.Array) -> None:
        if self.numeric:
            as_int = _as_decimal_int(ids)
            if as_int is not None:
                self.blocks.append(as_int)
                return
            self.numeric = False
            self.blocks = [b.cast(pa.string()).cast(pa.binary()) for b in self.blocks]
        self.blocks.append(ids)

    def encode(self) -> tuple[np.ndarray, pa.Array]:
        """Codes (int32) per row and the distinct ids (int64 or string) per code; empties the column."""
        blocks, self.blocks = self.blocks, []
        if not blocks:
            return np.zeros(0, dtype=np.int32), pa.array([], pa.string())
        if self.numeric:
            ids = np.concatenate([b.to_numpy(zero_copy_only=False) for b in blocks])
            del blocks
            return _sort_encode(ids)
        encoded = pc.dictionary_encode(pa.chunked_array(blocks))
        del blocks
        # One shared memo table: every chunk carries the same, final dictionary.
        dictionary = encoded.chunk(encoded.num_chunks - 1).dictionary
        codes = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in encoded.chunks])
        return codes.astype(np.int32, copy=False), dictionary.cast(pa.string())


def _sort_encode(ids: np.ndarray) -> tuple[np.ndarray, pa.Array]:
    """Codes and distinct values of integer ids by sorting: less transient memory than a hash table of
    millions of int64 keys, or than np.unique(return_inverse=True)."""
    order = np.argsort(ids)
    first = np.empty(len(ids), dtype=bool)
    sorted_ids = ids[order]
    first[0] = True
    np.not_equal(sorted_ids[1:], sorted_ids[:-1], out=first[1:])
    del sorted_ids
    codes = np.empty(len(ids), dtype=np.int32)
    codes[order] = np.cumsum(first, dtype=np.int32) - 1
    return codes, pa.array(ids[order[first]])


def _as_decimal_int(ids: pa.Array) -> pa.Array | None:
    """The ids as int64 if each is the canonical decimal text of an integer ("12", not "012" or "+12")."""
    text = ids.view(pa.string())
    try:
        as_int = pc.cast(text, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return as_int if pc.all(pc.equal(pc.cast(as_int, pa.string()), text)).as_py() else None


@dataclass
class _Chunks:
    customer: _IdColumn = field(default_factory=_IdColumn)
    product: _IdColumn = field(default_factory=_IdColumn)
    rating: list[np.ndarray] = field(default_factory=list)
    day: list[np.ndarray] = field(default_factory=list)
    titles: list[pa.Table] = field(default_factory=list)
    title_rows: int = 0

    def compact_titles(self, force: bool = False) -> None:
        """Sum the per-block (product_id, title) counts once they hold many rows: memory stays ~ the number
        of distinct pairs, not of rows."""
        if len(self.titles) > 1 and (force or self.title_rows > 300_000):
            summed = pa.concat_tables(self.titles).group_by(["product_id", "title"]).aggregate([("n", "sum")])
            merged = pa.table(
                {"product_id": summed["product_id"], "title": summed["title"], "n": summed["n_sum"]}
            )
            self.titles = [merged]
            self.title_rows = merged.num_rows


def _parse_options(on_invalid_row: Callable[[pcsv.InvalidRow], str]) -> pcsv.ParseOptions:
    return pcsv.ParseOptions(
        delimiter="\t",
        quote_char=False,
        escape_char=False,
        double_quote=False,
        newlines_in_values=False,
        invalid_row_handler=on_invalid_row,
    )


def _convert_options() -> pcsv.ConvertOptions:
    binary = pa.binary()
    low_cardinality = pa.dictionary(pa.int32(), pa.binary())
    return pcsv.ConvertOptions(
        include_columns=list(NEEDED_COLUMNS),
        column_types={
            "customer_id": binary,
            "product_id": binary,
            "product_title": binary,
            "star_rating": low_cardinality,
            "review_date": low_cardinality,
        },
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
        null_values=[],
        check_utf8=False,
    )


def _rows_aside_batch(rows: list[bytes], names: list[str], bad: Counter[str]) -> pa.RecordBatch | None:
    """The rows RowStream set aside (a bare CR, or not UTF-8), split on tabs as pyarrow splits the others: the
    needed columns of those with the header's field count; the others are counted."""
    positions = [names.index(c) for c in NEEDED_COLUMNS]
    columns: list[list[bytes]] = [[] for _ in NEEDED_COLUMNS]
    for row in rows:
        fields = row.split(b"\t")
        if len(fields) != len(names):
            bad["wrong_field_count"] += 1
            continue
        for column, position in zip(columns, positions, strict=True):
            column.append(fields[position])
    if not columns[0]:
        return None
    return pa.record_batch([pa.array(c, pa.binary()) for c in columns], names=list(NEEDED_COLUMNS))


@dataclass(frozen=True)
class RowLimits:
    """How RowStream cuts the text (jobs.prep.rows); tests make them small to reach piece boundaries."""

    piece_bytes: int = PIECE_BYTES
    max_row_bytes: int = MAX_ROW_BYTES


def _open_rows(
    path: Path, name: str, raw: _HashingReader, limits: RowLimits
) -> tuple[RowStream, list[str]] | None:
    """The file's rows after its checked header, and the header's names; None for a file without text."""
    read = pa.CompressedInputStream(pa.PythonFile(raw, mode="r"), "gzip").read if _gzipped(path) else raw.read
    rows = RowStream(read, piece_bytes=limits.piece_bytes, max_row_bytes=limits.max_row_bytes)
    try:
        header = rows.header()
    except HeaderTooLongError as e:
        raise PrepError(f"input {name}: no header line: {e}") from None
    except OSError as e:
        if e.errno is not None:  # the file system's refusal, not the stream's content
            raise
        raise PrepError(
            f"input {name}: the gzip stream is truncated or corrupt before the end of its header ({e})"
        ) from None
    if header is None:
        return None
    names = _decode_header(name, header)
    _check_header(name, names)
    return rows, names


def _read_file(path: Path, name: str, chunks: _Chunks, limits: RowLimits) -> InputFile | None:
    """Read one file into `chunks`; None when it holds no text at all (skipped)."""
    try:
        raw = _HashingReader(path)
    except OSError as e:
        raise PrepError(f"input {name}: cannot read it: {os_cause(e)}") from None
    bad: Counter[str] = Counter()
    good_rows = 0

    def on_invalid_row(row: pcsv.InvalidRow) -> str:
        bad["wrong_field_count"] += 1
        return "skip"

    def take_rows_aside() -> int:
        aside = _rows_aside_batch(rows.take_rows_aside(), names, bad)
        return 0 if aside is None else _take_batch(aside, bad, chunks)

    try:
        opened = _open_rows(path, name, raw, limits)
        if opened is None:
            return None
        rows, names = opened
        if rows.has_rows():
            # The header is consumed; pyarrow gets unique names (only the needed columns' matter).
            column_names = [c if c in NEEDED_COLUMNS else f"unused {i}" for i, c in enumerate(names)]
            reader = pcsv.open_csv(
                pa.PythonFile(rows, mode="r"),
                read_options=pcsv.ReadOptions(
                    block_size=BLOCK_SIZE, use_threads=True, column_names=column_names
                ),
                parse_options=_parse_options(on_invalid_row),
                convert_options=_convert_options(),
            )
            for batch in reader:
                good_rows += _take_batch(batch, bad, chunks) + take_rows_aside()
        good_rows += take_rows_aside()
        bad["row_too_long"] += rows.rows_too_long
        raw.drain()
    except OSError as e:
        read_before = f"{fmt_count(good_rows + sum(bad.values()))} rows read before"
        if e.errno is not None:  # the file system's refusal (EIO, ...), not the stream's content
            raise PrepError(f"input {name}: cannot read it: {os_cause(e)}; {read_before}") from None
        what = "gzip stream" if _gzipped(path) else "file"
        raise PrepError(f"input {name}: the {what} is truncated or corrupt ({e}); {read_before}") from None
    finally:
        raw.close()
    return InputFile(
        name=name,
        bytes=raw.bytes,
        sha256=raw.sha256.hexdigest(),
        rows_read=good_rows + sum(bad.values()),
        bad_rows={r: bad[r] for r in BAD_ROW_REASONS if bad[r]},
    )


def _gzipped(path: Path) -> bool:
    return path.name.endswith(".gz")


def _trimmed_ids(ids: pa.Array, decodable: np.ndarray) -> pa.Array:
    """contract.index.normalize_id on a column: whitespace around an id is not part of it (pyarrow's
    utf8_trim_whitespace trims the characters str.strip does; a test in tests/contract holds them equal).
    Rows that are not UTF-8 are blanked first: they are counted as undecodable, not kept."""
    usable = pc.if_else(pa.array(decodable), ids, pa.scalar(b"", pa.binary()))
    trimmed: pa.Array = pc.utf8_trim_whitespace(usable.cast(pa.string())).cast(pa.binary())
    return trimmed


def _take_batch(batch: pa.RecordBatch, bad: Counter[str], chunks: _Chunks) -> int:
    """Check one parsed block, count its bad rows, keep its good rows' columns. Returns rows kept."""
    n = batch.num_rows
    if n == 0:
        return 0
    customer = batch.column("customer_id")
    product = batch.column("product_id")
    title = batch.column("product_title")
    rating_idx, rating_dict = _dictionary_lookup(batch.column("star_rating"))
    date_idx, date_dict = _dictionary_lookup(batch.column("review_date"))

    decodable = _valid_utf8(customer) & _valid_utf8(product) & _valid_utf8(title)
    decodable &= _valid_utf8(rating_dict)[rating_idx] & _valid_utf8(date_dict)[date_idx]
    customer, product = _trimmed_ids(customer, decodable), _trimmed_ids(product, decodable)
    nonempty_id = pc.and_(
        pc.greater(pc.binary_length(customer), 0), pc.greater(pc.binary_length(product), 0)
    ).to_numpy(zero_copy_only=False)
    nonempty_title = pc.greater(pc.binary_length(title), 0).to_numpy(zero_copy_only=False)
    rating_of_entry = pc.fill_null(pc.index_in(rating_dict, value_set=_RATINGS), -1).to_numpy(
        zero_copy_only=False
    )
    rating = (rating_of_entry[rating_idx] + 1).astype(np.int8)
    date_valid, date_days = _parse_days(date_dict)

    checks = (
        ("undecodable_bytes", decodable),
        ("empty_id", nonempty_id),
        ("empty_title", nonempty_title),
        ("bad_star_rating", rating > 0),
        ("bad_review_date", date_valid[date_idx]),
    )
    good = np.ones(n, dtype=bool)
    for reason, ok in checks:
        failing = int(np.count_nonzero(good & ~ok))
        if failing:
            bad[reason] += failing
            good &= ok
    kept = int(np.count_nonzero(good))
    if kept == 0:
        return 0
    if kept < n:
        mask = pa.array(good)
        customer, product, title = customer.filter(mask), product.filter(mask), title.filter(mask)
        rating, days = rating[good], date_days[date_idx][good].astype(np.int32)
    else:
        days = date_days[date_idx].astype(np.int32)
    chunks.customer.append(customer)
    chunks.product.append(product)
    chunks.rating.append(rating)
    chunks.day.append(days)
    counted = (
        pa.table({"product_id": product, "title": title})
        .group_by(["product_id", "title"])
        .aggregate([([], "count_all")])
    )
    pairs = pa.table(
        {"product_id": counted["product_id"], "title": counted["title"], "n": counted["count_all"]}
    )
    chunks.titles.append(pairs)
    chunks.title_rows += pairs.num_rows
    chunks.compact_titles()
    return kept


def read_reviews(paths: list[Path], root: Path | None = None, limits: RowLimits = RowLimits()) -> Reviews:
    """Read every file; skip the empty ones (no text at all: S3 prefixes hold zero-byte marker objects);
    raise PrepError on a file that cannot be read at all (truncated gzip, header without a needed column)
    or when every file is empty. Bad rows are counted, not raised: the caller applies the limit."""
    chunks = _Chunks()
    files: list[InputFile] = []
    empty: list[str] = []
    for path in paths:
        name = str(path.relative_to(root)) if root is not None else path.name
        read = _read_file(path, name, chunks, limits)
        if read is None:
            empty.append(name)
        else:
            files.append(read)
    if not files:
        raise PrepError(f"no usable input: every input file is empty ({name_list(empty)})")

    customer, customer_ids = chunks.customer.encode()
    product, product_ids = chunks.product.encode()
    chunks.compact_titles(force=True)
    if chunks.titles:
        titles = chunks.titles[0]
        title_product = pc.index_in(
            titles.column("product_id").cast(pa.string()), value_set=product_ids.cast(pa.string())
        )
        product_titles = pa.table(
            {
                "product": title_product.cast(pa.int32()),
                "title": titles.column("title").cast(pa.string()),
                "n": titles.column("n").cast(pa.int64()),
            }
        )
    else:
        product_titles = pa.table(
            {
                "product": pa.array([], pa.int32()),
                "title": pa.array([], pa.string()),
                "n": pa.array([], pa.int64()),
            }
        )
    return Reviews(
        customer=customer,
        product=product,
        rating=np.concatenate(chunks.rating) if chunks.rating else np.zeros(0, dtype=np.int8),
        day=np.concatenate(chunks.day) if chunks.day else np.zeros(0, dtype=np.int32),
        customer_ids=customer_ids,
        product_ids=product_ids,
        product_titles=product_titles,
        files=files,
        empty_files=empty,
    )
