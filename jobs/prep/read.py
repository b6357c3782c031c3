"""Reading review files: the five columns the job needs, bad rows counted by reason (jobs.prep.blocks), ids
turned into codes.

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
from jobs.prep.blocks import BAD_ROW_REASONS, NEEDED_COLUMNS, Chunks, take_batch
from jobs.prep.failure import PrepError, fmt_count, name_list, os_cause
from jobs.prep.rows import MAX_ROW_BYTES, PIECE_BYTES, HeaderTooLongError, RowStream

BLOCK_SIZE = 4 << 20  # bytes of text per parsed block: bounds memory, amortizes per-block overhead


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


def _read_file(path: Path, name: str, chunks: Chunks, limits: RowLimits) -> InputFile | None:
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
        return 0 if aside is None else take_batch(aside, bad, chunks)

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
                good_rows += take_batch(batch, bad, chunks) + take_rows_aside()
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


def read_reviews(paths: list[Path], root: Path | None = None, limits: RowLimits = RowLimits()) -> Reviews:
    """Read every file; skip the empty ones (no text at all: S3 prefixes hold zero-byte marker objects);
    raise PrepError on a file that cannot be read at all (truncated gzip, header without a needed column)
    or when every file is empty. Bad rows are counted, not raised: the caller applies the limit."""
    chunks = Chunks()
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
