"""What one parsed block of review rows becomes: every row checked, bad rows counted under the first reason
that applies, the good rows' five columns kept compact (ids dictionary-encoded once every block is read)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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
_RATINGS = pa.array([b"1", b"2", b"3", b"4", b"5"], pa.binary())
_DATE_SHAPE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


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
class Chunks:
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


def _trimmed_ids(ids: pa.Array, decodable: np.ndarray) -> pa.Array:
    """contract.index.normalize_id on a column: whitespace around an id is not part of it (pyarrow's
    utf8_trim_whitespace trims the characters str.strip does; a test in tests/contract holds them equal).
    Rows that are not UTF-8 are blanked first: they are counted as undecodable, not kept."""
    usable = pc.if_else(pa.array(decodable), ids, pa.scalar(b"", pa.binary()))
    trimmed: pa.Array = pc.utf8_trim_whitespace(usable.cast(pa.string())).cast(pa.binary())
    return trimmed


def take_batch(batch: pa.RecordBatch, bad: Counter[str], chunks: Chunks) -> int:
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
