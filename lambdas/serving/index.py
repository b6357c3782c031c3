"""The run's lookups for serving (prep/index/): customers, products, titles and the time feature.

Stdlib only. Feature keys follow prep: customer u (0-based line of customers.tsv) is key u, product i (line i
of products.tsv) is key N + i, the time feature is the last key, feature_dim - 1.
"""

from __future__ import annotations

import json
import math
import re
from array import array
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import RunUnreadableError

INDEX_SCHEMA_VERSION = 1
_WHITESPACE = re.compile(r"\s")


def title_token(title: str) -> str:
    """The BlazingText corpus word for a product title: lower-cased, every whitespace character -> '-'.

    The same function is defined in jobs/prep (the container has no lambdas/); a test asserts they agree.
    """
    return _WHITESPACE.sub("-", title.lower())


@dataclass(frozen=True)
class TimeTransform:
    """How the days since the customer's first review become the FM's time feature, as prep computes it.

    index.json's time_transform: {"kind": "log1p_ratio", "scale_days": s, ...} means
    min(1, log1p(max(0, days)) / log1p(s)) (jobs/prep/serving.py; a test holds both to the same values).
    """

    scale_days: int

    KIND = "log1p_ratio"

    @classmethod
    def from_json(cls, spec: object) -> TimeTransform:
        if not isinstance(spec, Mapping):
            raise ValueError(f"time_transform must be an object, got {spec!r}")
        if spec.get("kind") != cls.KIND:
            raise ValueError(f"time_transform.kind {spec.get('kind')!r} is not {cls.KIND!r}")
        scale = spec.get("scale_days")
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise ValueError(f"time_transform.scale_days {scale!r} is not an integer >= 1")
        return cls(scale_days=scale)

    def __call__(self, days: int) -> float:
        return min(1.0, math.log1p(max(0, days)) / math.log1p(self.scale_days))


@dataclass(frozen=True)
class ServingIndex:
    """prep/index/ in memory: what the shims need to build FM requests and map titles to products."""

    num_customers: int
    num_products: int
    feature_dim: int
    rating_range: tuple[float, float]
    global_mean: float
    time_transform: TimeTransform
    customer_keys: dict[str, int]
    """customer_id -> feature key (0-based)."""
    first_review_day: array[int]
    """Per customer key: days since 1970-01-01 of the customer's first kept review."""
    product_rows: dict[str, int]
    """product_id -> product row i (feature key N + i)."""
    product_ids: list[str]
    title_rows: dict[str, int]
    """title token -> the row of the product holding that title with the most reviews (the lowest row)."""

    def product_key(self, row: int) -> int:
        return self.num_customers + row

    @property
    def time_key(self) -> int:
        return self.feature_dim - 1


def _tsv_pairs(data: bytes, name: str, expected: int) -> tuple[list[str], list[str]]:
    """Two-column TSV (no quoting, no tabs inside a field) -> (first column, second column)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RunUnreadableError(f"{name}: not UTF-8 ({exc})") from None
    if text.endswith("\n"):
        text = text[:-1]
    lines = text.split("\n") if text else []
    if len(lines) != expected:
        raise RunUnreadableError(f"{name}: {len(lines)} lines, index.json says {expected}")
    fields = "\t".join(lines).split("\t")
    if len(fields) != 2 * expected:
        bad = next(n for n, line in enumerate(lines) if line.count("\t") != 1)
        raise RunUnreadableError(f"{name}: line {bad + 1} does not have exactly two tab-separated fields")
    return fields[0::2], fields[1::2]


def _number(meta: Mapping[str, Any], key: str) -> float:
    value = meta.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RunUnreadableError(f"index.json: {key} is {value!r}, not a number")
    return float(value)


def _count(meta: Mapping[str, Any], key: str) -> int:
    value = meta.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RunUnreadableError(f"index.json: {key} is {value!r}, not a positive integer")
    return value


def parse_index(index_json: bytes, customers_tsv: bytes, products_tsv: bytes) -> ServingIndex:
    """The three files of prep/index/ -> ServingIndex; RunUnreadableError names the file and the problem."""
    try:
        meta = json.loads(index_json)
    except ValueError as exc:
        raise RunUnreadableError(f"index.json: not JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise RunUnreadableError("index.json: not a JSON object")
    if meta.get("schema_version") != INDEX_SCHEMA_VERSION:
        raise RunUnreadableError(
            f"index.json: schema_version {meta.get('schema_version')!r} is not {INDEX_SCHEMA_VERSION}"
        )
    num_customers = _count(meta, "num_customers")
    num_products = _count(meta, "num_products")
    feature_dim = _count(meta, "feature_dim")
    if feature_dim != num_customers + num_products + 1:
        raise RunUnreadableError(
            f"index.json: feature_dim {feature_dim} != num_customers + num_products + 1 "
            f"({num_customers + num_products + 1})"
        )
    try:
        transform = TimeTransform.from_json(meta.get("time_transform"))
    except ValueError as exc:
        raise RunUnreadableError(f"index.json: {exc}") from None
    rating_range = meta.get("rating_range")
    if (
        not isinstance(rating_range, list)
        or len(rating_range) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in rating_range)
        or not rating_range[0] < rating_range[1]
    ):
        raise RunUnreadableError(f"index.json: rating_range is {rating_range!r}, not [low, high]")
    global_mean = _number(meta, "global_mean")

    customer_ids, days = _tsv_pairs(customers_tsv, "customers.tsv", num_customers)
    try:
        first_review_day = array("i", map(int, days))
    except ValueError:
        bad = next(n for n, day in enumerate(days) if not day.lstrip("-").isdigit())
        message = f"customers.tsv: line {bad + 1}: first_review_day {days[bad]!r} is not an integer"
        raise RunUnreadableError(message) from None
    customer_keys = dict(zip(customer_ids, range(num_customers), strict=True))
    if len(customer_keys) != num_customers:
        raise RunUnreadableError("customers.tsv: a customer_id appears twice")

    product_ids, titles = _tsv_pairs(products_tsv, "products.tsv", num_products)
    product_rows = dict(zip(product_ids, range(num_products), strict=True))
    if len(product_rows) != num_products:
        raise RunUnreadableError("products.tsv: a product_id appears twice")
    title_rows: dict[str, int] = {}
    for row, title in enumerate(titles):
        title_rows.setdefault(title_token(title), row)

    return ServingIndex(
        num_customers=num_customers,
        num_products=num_products,
        feature_dim=feature_dim,
        rating_range=(float(rating_range[0]), float(rating_range[1])),
        global_mean=global_mean,
        time_transform=transform,
        customer_keys=customer_keys,
        first_review_day=first_review_day,
        product_rows=product_rows,
        product_ids=product_ids,
        title_rows=title_rows,
    )
