"""Hand-made review files for the prep job's tests (no tests here; the other test_prep_* files use these)."""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path

HEADER = (
    "marketplace\tcustomer_id\treview_id\tproduct_id\tproduct_parent\tproduct_title\tproduct_category\t"
    "star_rating\thelpful_votes\ttotal_votes\tvine\tverified_purchase\treview_headline\treview_body\t"
    "review_date"
)
# A review body that opens a quotation and never closes it, as real ones do: harmless without quoting.
BODY = '"Loved it, my wife said "watch it again'

# (customer_id, product_id, product_title, star_rating, review_date), deliberately out of order.
# With thresholds 2/2: customer 55 (1 review) and product B3 (1 review) drop out; 7 rows are kept.
ROWS: list[tuple[str, str, str, str, str]] = [
    ("100", "B2", "Beta  Film", "4", "2014-12-31"),
    ("100", "B1", "Alpha Show", "5", "2015-03-01"),
    ("7", "B1", "Alpha Show", "5", "2015-01-01"),
    ("7", "B2", "beta film", "4", "2015-01-03"),
    ("7", "B1", "Alpha Show", "3", "2015-01-10"),
    ("20", "B2", "Beta Film", "1", "2015-02-01"),
    ("20", "B1", "Alpha Show", "2", "2015-02-01"),
    ("20", "B3", '"Gamma', "5", "2015-02-05"),
    ("55", "B1", "Alpha Show HD", "4", "2015-01-01"),
]


def line(fields: Sequence[str], body: str = BODY) -> str:
    customer, product, title, rating, date = fields
    return "\t".join(
        [
            "US",
            customer,
            "R1X",
            product,
            "123",
            title,
            "Video",
            rating,
            "0",
            "0",
            "N",
            "Y",
            "Nice",
            body,
            date,
        ]
    )


def tsv_bytes(
    rows: Sequence[Sequence[str]], extra_lines: Sequence[bytes] = (), header: str = HEADER
) -> bytes:
    text = "".join(line(r) + "\n" for r in rows)
    return (header + "\n").encode() + text.encode() + b"".join(x + b"\n" for x in extra_lines)


def write_tsv(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path
