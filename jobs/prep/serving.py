"""What the serving shims must reproduce exactly: the title token, the time feature and the index format.

Standard library only, on purpose: the shims (lambdas/, stdlib + boto3) keep their own copy of this logic,
and tests hold the two copies to the same answers. Nothing here may import numpy or pyarrow.

The index (prep/index/) is three files:
- index.json: {schema_version, num_customers, num_products, feature_dim, time_transform, rating_range,
  global_mean}
- customers.tsv: line u (0-based) is "<customer_id>\\t<first_review_day>" for FM feature key u;
  first_review_day counts days since 1970-01-01 of the customer's first kept review.
- products.tsv: line i is "<product_id>\\t<title>" for FM feature key num_customers + i; the title is the
  product's most frequent one (ties: the lexicographically smallest).
Fields never hold a tab or a line break (the input is tab-separated without quoting), and lines end with
"\\n" only: split on "\\n", never with str.splitlines(), which also breaks at characters such as U+2028
that a title may hold.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INDEX_SCHEMA_VERSION = 1
RATING_RANGE = (1, 5)

_WHITESPACE = re.compile(r"\s")


def title_token(title: str) -> str:
    """The BlazingText word for a product title: lower-cased, every whitespace character replaced by "-".

    The notebook's `title.lower().replace(" ", "-")`, extended to all whitespace so that a token never
    holds a character at which a corpus line would be split.
    """
    return _WHITESPACE.sub("-", title.lower())


# ---------------------------------------------------------------------------------------------------------
# The time feature.
#
# The notebook put the raw days since the customer's first review (0 to ~3,000) into the last feature
# column. FM multiplies that value into its linear weight and into every pairwise interaction with the
# user and item columns, so a few hundred days scale the learnt terms by a few hundred; the test rows are
# each customer's latest review, that is the largest day counts, and the published test RMSE is about 50.
# We use  min(1, log1p(max(0, days)) / log1p(scale_days))  instead:
# - bounded to [0, 1] like the one-hot columns, so no term is scaled beyond what training saw, and a
#   request on a date later than any training row clips to 1 instead of extrapolating;
# - logarithmic, because the distribution is heavy-tailed (most reviews are a customer's first or come
#   within weeks of it) and the early days are where a customer's ratings drift most; a linear scale would
#   squeeze all of them near 0;
# - scale_days = the largest days-since-first among the kept rows (at least 1), recorded in the manifest
#   and the index, so that serving applies the very same formula.
TIME_TRANSFORM_KIND = "log1p_ratio"


def time_transform_params(scale_days: int) -> dict[str, Any]:
    """The JSON description of the time feature, as written to the manifest and index.json."""
    if scale_days < 1:
        raise ValueError(f"scale_days must be >= 1, got {scale_days}")
    return {
        "kind": TIME_TRANSFORM_KIND,
        "scale_days": int(scale_days),
        "formula": "min(1, log1p(max(0, days)) / log1p(scale_days))",
        "days": "request date minus the customer's first_review_day, in whole days",
    }


def time_feature(days: int, params: Mapping[str, Any]) -> float:
    """The value of the last FM feature for a review `days` days after the customer's first one."""
    if params.get("kind") != TIME_TRANSFORM_KIND:
        raise ValueError(
            f"unknown time transform kind {params.get('kind')!r}; expected {TIME_TRANSFORM_KIND!r}"
        )
    scale = int(params["scale_days"])
    return min(1.0, math.log1p(max(0, days)) / math.log1p(scale))


# ---------------------------------------------------------------------------------------------------------
# The index.


def write_index(
    folder: Path,
    *,
    customer_ids: Sequence[str],
    first_review_days: Sequence[int],
    product_ids: Sequence[str],
    titles: Sequence[str],
    time_transform: Mapping[str, Any],
    global_mean: float,
) -> None:
    """Write index.json, customers.tsv and products.tsv into `folder` (created if missing)."""
    if len(customer_ids) != len(first_review_days) or len(product_ids) != len(titles):
        raise ValueError("customer_ids/first_review_days and product_ids/titles must have equal lengths")
    folder.mkdir(parents=True, exist_ok=True)
    num_customers, num_products = len(customer_ids), len(product_ids)
    meta = {
        "schema_version": INDEX_SCHEMA_VERSION,
        "num_customers": num_customers,
        "num_products": num_products,
        "feature_dim": num_customers + num_products + 1,
        "time_transform": dict(time_transform),
        "rating_range": list(RATING_RANGE),
        "global_mean": global_mean,
    }
    (folder / "index.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    with (folder / "customers.tsv").open("w", encoding="utf-8", newline="\n") as f:
        f.writelines(f"{c}\t{d}\n" for c, d in zip(customer_ids, first_review_days, strict=True))
    with (folder / "products.tsv").open("w", encoding="utf-8", newline="\n") as f:
        f.writelines(f"{p}\t{t}\n" for p, t in zip(product_ids, titles, strict=True))


@dataclass(frozen=True)
class ServingIndex:
    """The index in memory: feature keys of customers and products, and what a request needs."""

    meta: dict[str, Any]
    customer_key: dict[str, int]  # customer_id -> u
    first_review_days: list[int]  # by u
    product_key: dict[str, int]  # product_id -> num_customers + i
    titles: list[str]  # by i

    @property
    def feature_dim(self) -> int:
        return int(self.meta["feature_dim"])

    @property
    def num_customers(self) -> int:
        return int(self.meta["num_customers"])

    def title_of_key(self, key: int) -> str:
        return self.titles[key - self.num_customers]

    def time_feature(self, customer_id: str, request_day: int) -> float:
        """The time feature for `customer_id` on `request_day` (days since 1970-01-01)."""
        first = self.first_review_days[self.customer_key[customer_id]]
        return time_feature(request_day - first, self.meta["time_transform"])


def _columns(text: str, expected: int, name: str) -> tuple[list[str], list[str]]:
    """Split "a\\tb\\n" lines into two columns, at C speed: every tab and newline is a field boundary."""
    if text.endswith("\n"):
        text = text[:-1]
    fields = text.replace("\t", "\n").split("\n") if text else []
    if len(fields) != 2 * expected:
        raise ValueError(f"{name}: expected {expected} lines of 2 tab-separated fields")
    return fields[0::2], fields[1::2]


def parse_index(
    index_json: str | bytes, customers_tsv: str | bytes, products_tsv: str | bytes
) -> ServingIndex:
    """Build the in-memory index from the three files' contents (as read from disk or S3)."""
    meta = json.loads(index_json)
    if meta.get("schema_version") != INDEX_SCHEMA_VERSION:
        raise ValueError(
            f"index.json schema_version {meta.get('schema_version')!r} is not {INDEX_SCHEMA_VERSION}"
        )
    n, m = int(meta["num_customers"]), int(meta["num_products"])
    if isinstance(customers_tsv, bytes):
        customers_tsv = customers_tsv.decode("utf-8")
    if isinstance(products_tsv, bytes):
        products_tsv = products_tsv.decode("utf-8")
    cids, days = _columns(customers_tsv, n, "customers.tsv")
    pids, titles = _columns(products_tsv, m, "products.tsv")
    customer_key = dict(zip(cids, range(n), strict=True))
    product_key = dict(zip(pids, range(n, n + m), strict=True))
    if len(customer_key) != n or len(product_key) != m:
        raise ValueError("customers.tsv or products.tsv repeats an id")
    return ServingIndex(meta, customer_key, list(map(int, days)), product_key, titles)


def load_index(folder: Path) -> ServingIndex:
    """Load prep/index/ from a local folder."""
    return parse_index(
        (folder / "index.json").read_bytes(),
        (folder / "customers.tsv").read_bytes(),
        (folder / "products.tsv").read_bytes(),
    )
