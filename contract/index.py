"""The serving index (prep/index/): how the shims turn customer ids, product ids and titles into feature keys.

Three files, written by the prep job and read by the shims, the title-table export and the local twin:
- index.json: {schema_version, num_customers, num_products, feature_dim, time_transform, rating_range,
  global_mean};
- customers.tsv: line u (0-based) is "<customer_id>\\t<first_review_day>" for feature key u, the day counted
  from 1970-01-01 (the customer's first kept review);
- products.tsv: line i is "<product_id>\\t<title>" for feature key num_customers + i; the title is the
  product's most frequent one (ties: the lexicographically smallest).
Fields never hold a tab or an LF (the input is tab-separated without quoting, its rows end with LF), and
lines end with "\\n" only: they are split on "\\n", never with str.splitlines(), which also breaks at
characters that an id or a title may hold: a CR (part of its field in the input), U+2028.

Ids (customer_id, product_id) are compared after `normalize_id`: whitespace around an id is not part of it,
wherever the id comes from (a raw review file, an API request).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.features import RATING_RANGE, FeatureLayout, TimeTransform, rating_range_of

INDEX_SCHEMA_VERSION = 1
INDEX_FILES = ("index.json", "customers.tsv", "products.tsv")

_WHITESPACE = re.compile(r"\s")


class IndexFormatError(ValueError):
    """An index file is not in the format; the message names the file and the problem."""


def normalize_id(raw: str) -> str:
    """A customer or product id as every runtime compares it: without the whitespace around it.

    Whitespace is what str.strip removes: the characters for which str.isspace() holds (the ASCII ones,
    U+001C..U+001F, U+0085, U+00A0, the Unicode space separators, U+2028 and U+2029). An id that is empty
    after trimming is no id. pyarrow's utf8_trim_whitespace trims the same characters (tests/contract), so a
    columnar reader may trim with it.
    """
    return raw.strip()


def title_token(title: str) -> str:
    """The BlazingText corpus word for a product title: lower-cased, every whitespace character -> "-".

    The notebook's `title.lower().replace(" ", "-")`, extended to all whitespace so that a token never holds
    a character at which a corpus line would be split.
    """
    return _WHITESPACE.sub("-", title.lower())


# ---------------------------------------------------------------------------------------------------------
# Held-out titles.
#
# The cold start answers a product FM has never seen from its title's vector, which BlazingText builds from
# character n-grams alone: the title was never in the corpus. A known product's title was, on the corpus
# lines of its reviewers, so its vector sits near the titles reviewed with it: choosing the cold start's
# shrinkage on known products as they are would measure a title space that no new product gets. So the prep
# job leaves a fixed share of the known titles out of the corpus (chosen by a keyed hash of the token, the
# same titles in every run of the same data), and the shrinkage is chosen on the validation rows of their
# products, with their vectors built from n-grams as a new title's are (lambdas/serving/fasttext_bin.py).
# The price: those titles' products are never another title's neighbour and answer "similar titles" from
# n-grams, as a new product does. FM still trains on every product.

HELD_OUT_TITLE_SHARE = 0.1
"""The share of title tokens the corpus leaves out: about a tenth of the validation rows choose the cold
start's shrinkage (14,024 of 140,708 on a synthetic file at the notebook's scale, 46 of 610 on the bundled
slice)."""
_HELD_OUT_KEY = b"loftrec-held-out-titles"


def held_out_title(token: str) -> bool:
    """Whether the corpus leaves this title token out (see above): blake2b(token, key) below the share."""
    digest = hashlib.blake2b(token.encode("utf-8"), digest_size=8, key=_HELD_OUT_KEY).digest()
    return int.from_bytes(digest, "big") < HELD_OUT_TITLE_SHARE * 2**64


@dataclass(frozen=True)
class ServingIndex:
    """prep/index/ in memory."""

    features: FeatureLayout
    rating_range: tuple[float, float]
    global_mean: float
    time_transform: TimeTransform
    customer_ids: list[str]
    """By customer key u."""
    customer_keys: dict[str, int]
    """customer_id -> feature key u."""
    first_review_day: array[int]
    """By customer key: days since 1970-01-01 of the customer's first kept review."""
    product_ids: list[str]
    """By product row i (feature key N + i)."""
    product_titles: list[str]
    """By product row i."""
    product_rows: dict[str, int]
    """product_id -> product row i."""
    title_rows: dict[str, int]
    """title token -> the row of the product holding that title with the most reviews (the lowest row)."""

    @property
    def num_customers(self) -> int:
        return self.features.num_customers

    @property
    def num_products(self) -> int:
        return self.features.num_products

    @property
    def feature_dim(self) -> int:
        return self.features.feature_dim

    @property
    def time_key(self) -> int:
        return self.features.time_key

    def product_key(self, row: int) -> int:
        return self.features.item_key(row)

    def days_since_first_review(self, customer_key: int, day: int) -> int:
        """Whole days from the customer's first review to `day` (days since 1970-01-01)."""
        return day - self.first_review_day[customer_key]


# ---------------------------------------------------------------------------------------------- writing


def index_files(
    *,
    customer_ids: Sequence[str],
    first_review_days: Sequence[int],
    product_ids: Sequence[str],
    titles: Sequence[str],
    time_transform: TimeTransform,
    global_mean: float,
) -> dict[str, bytes]:
    """The three files' contents, by name."""
    if len(customer_ids) != len(first_review_days) or len(product_ids) != len(titles):
        raise ValueError("customer_ids/first_review_days and product_ids/titles must have equal lengths")
    layout = FeatureLayout(len(customer_ids), len(product_ids))
    meta = {
        "schema_version": INDEX_SCHEMA_VERSION,
        "num_customers": layout.num_customers,
        "num_products": layout.num_products,
        "feature_dim": layout.feature_dim,
        "time_transform": time_transform.to_json(),
        "rating_range": list(RATING_RANGE),
        "global_mean": global_mean,
    }
    return {
        "index.json": (json.dumps(meta, indent=1) + "\n").encode("utf-8"),
        "customers.tsv": "".join(
            f"{c}\t{d}\n" for c, d in zip(customer_ids, first_review_days, strict=True)
        ).encode("utf-8"),
        "products.tsv": "".join(f"{p}\t{t}\n" for p, t in zip(product_ids, titles, strict=True)).encode(
            "utf-8"
        ),
    }


def write_index(
    folder: Path,
    *,
    customer_ids: Sequence[str],
    first_review_days: Sequence[int],
    product_ids: Sequence[str],
    titles: Sequence[str],
    time_transform: TimeTransform,
    global_mean: float,
) -> None:
    """Write the three files into `folder`, created if missing."""
    folder.mkdir(parents=True, exist_ok=True)
    files = index_files(
        customer_ids=customer_ids,
        first_review_days=first_review_days,
        product_ids=product_ids,
        titles=titles,
        time_transform=time_transform,
        global_mean=global_mean,
    )
    for name, data in files.items():
        (folder / name).write_bytes(data)


# ---------------------------------------------------------------------------------------------- reading


def _tsv_pairs(data: bytes, name: str, expected: int) -> tuple[list[str], list[str]]:
    """Two-column TSV (no quoting, no tabs inside a field) -> (first column, second column), at C speed."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IndexFormatError(f"{name}: not UTF-8 ({exc})") from None
    if text.endswith("\n"):
        text = text[:-1]
    lines = text.split("\n") if text else []
    if len(lines) != expected:
        raise IndexFormatError(f"{name}: {len(lines)} lines, index.json says {expected}")
    fields = "\t".join(lines).split("\t")
    if len(fields) != 2 * expected:
        bad = next(n for n, line in enumerate(lines) if line.count("\t") != 1)
        raise IndexFormatError(f"{name}: line {bad + 1} does not have exactly two tab-separated fields")
    return fields[0::2], fields[1::2]


def _number(meta: Mapping[str, Any], key: str) -> float:
    value = meta.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise IndexFormatError(f"index.json: {key} is {value!r}, not a number")
    return float(value)


def _count(meta: Mapping[str, Any], key: str) -> int:
    value = meta.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise IndexFormatError(f"index.json: {key} is {value!r}, not a positive integer")
    return value


def parse_index(index_json: bytes, customers_tsv: bytes, products_tsv: bytes) -> ServingIndex:
    """The three files' contents -> ServingIndex; IndexFormatError names the file and the problem."""
    try:
        meta = json.loads(index_json)
    except ValueError as exc:
        raise IndexFormatError(f"index.json: not JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise IndexFormatError("index.json: not a JSON object")
    if meta.get("schema_version") != INDEX_SCHEMA_VERSION:
        raise IndexFormatError(
            f"index.json: schema_version {meta.get('schema_version')!r} is not {INDEX_SCHEMA_VERSION}"
        )
    layout = FeatureLayout(_count(meta, "num_customers"), _count(meta, "num_products"))
    feature_dim = _count(meta, "feature_dim")
    if feature_dim != layout.feature_dim:
        raise IndexFormatError(
            f"index.json: feature_dim {feature_dim} != num_customers + num_products + 1 "
            f"({layout.feature_dim})"
        )
    try:
        transform = TimeTransform.from_json(meta.get("time_transform"))
    except ValueError as exc:
        raise IndexFormatError(f"index.json: {exc}") from None
    rating_range = rating_range_of(meta.get("rating_range"))
    if rating_range is None:
        raise IndexFormatError(f"index.json: rating_range is {meta.get('rating_range')!r}, not [low, high]")
    global_mean = _number(meta, "global_mean")

    n, m = layout.num_customers, layout.num_products
    customer_ids, days = _tsv_pairs(customers_tsv, "customers.tsv", n)
    try:
        first_review_day = array("i", map(int, days))
    except ValueError:
        bad = next(row for row, day in enumerate(days) if not day.lstrip("-").isdigit())
        message = f"customers.tsv: line {bad + 1}: first_review_day {days[bad]!r} is not an integer"
        raise IndexFormatError(message) from None
    customer_keys = dict(zip(customer_ids, range(n), strict=True))
    if len(customer_keys) != n:
        raise IndexFormatError("customers.tsv: a customer_id appears twice")

    product_ids, titles = _tsv_pairs(products_tsv, "products.tsv", m)
    product_rows = dict(zip(product_ids, range(m), strict=True))
    if len(product_rows) != m:
        raise IndexFormatError("products.tsv: a product_id appears twice")
    title_rows: dict[str, int] = {}
    for row, title in enumerate(titles):
        title_rows.setdefault(title_token(title), row)

    return ServingIndex(
        features=layout,
        rating_range=rating_range,
        global_mean=global_mean,
        time_transform=transform,
        customer_ids=customer_ids,
        customer_keys=customer_keys,
        first_review_day=first_review_day,
        product_ids=product_ids,
        product_titles=titles,
        product_rows=product_rows,
        title_rows=title_rows,
    )


def load_index(folder: Path) -> ServingIndex:
    """prep/index/ from a local folder."""
    return parse_index(*((folder / name).read_bytes() for name in INDEX_FILES))
