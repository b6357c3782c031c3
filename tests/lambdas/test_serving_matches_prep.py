"""The shims' copies of prep's formulas (title token, time feature, index format) agree with prep's own."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from jobs.prep import serving as prep
from lambdas.serving.index import TimeTransform, parse_index, title_token
from lambdas.serving.logic import time_feature

TRICKY_TITLES = [
    "Sherlock Season 1",
    "  leading and trailing  ",
    "two  spaces",
    "tab\tvertical\x0bform\x0cfeed\rreturn",
    "no\u00a0break thin\u2009space ideographic\u3000space",
    "line\u2028separator paragraph\u2029separator next\x85line",
    "file\x1cgroup\x1drecord\x1eunit\x1fseparators",
    "zero\u200bwidth is not whitespace",
    "ÉCOLE İstanbul ΣΟΦΙΑΣ Straße",
    "\u01c4ungla \uff26\uff35\uff2c\uff2c",  # a titlecase digraph, fullwidth letters
    "",
]


@pytest.mark.parametrize("title", TRICKY_TITLES)
def test_title_token_is_prep_s(title: str) -> None:
    assert title_token(title) == prep.title_token(title)


def test_time_feature_is_prep_s() -> None:
    params = prep.time_transform_params(2704)
    transform = TimeTransform.from_json(params)
    for days in [-30, -1, 0, 1, 2, 7, 30, 365, 1000, 2703, 2704, 2705, 10_000]:
        assert transform(days) == prep.time_feature(days, params)


def test_an_index_written_by_prep_is_read_by_the_shims(tmp_path: Path) -> None:
    titles = ["Sherlock Season 1", "line\u2028separator", "SHERLOCK season 1"]
    prep.write_index(
        tmp_path,
        customer_ids=["c-1", "c-2"],
        first_review_days=[16000, 16500],
        product_ids=["p-1", "p-2", "p-3"],
        titles=titles,
        time_transform=prep.time_transform_params(900),
        global_mean=4.25,
    )
    index = parse_index(
        *((tmp_path / f).read_bytes() for f in ("index.json", "customers.tsv", "products.tsv"))
    )
    theirs = prep.load_index(tmp_path)

    assert index.feature_dim == theirs.feature_dim == 6
    assert index.customer_keys == theirs.customer_key
    assert {p: index.product_key(r) for p, r in index.product_rows.items()} == theirs.product_key
    assert index.title_rows == {"sherlock-season-1": 0, "line-separator": 1}  # U+2028 is whitespace
    assert (index.rating_range, index.global_mean) == ((1.0, 5.0), 4.25)
    request = dt.date(2014, 6, 1)
    day = (request - dt.date(1970, 1, 1)).days
    assert time_feature(index, index.customer_keys["c-2"], request) == theirs.time_feature("c-2", day)
