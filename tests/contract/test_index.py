"""The title token and the serving index: one writer, one reader, every malformed file named."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from contract.features import TimeTransform
from contract.index import (
    IndexFormatError,
    index_files,
    load_index,
    normalize_id,
    parse_index,
    title_token,
    write_index,
)

REPO = Path(__file__).resolve().parents[2]

INDEX = {
    "schema_version": 1,
    "num_customers": 2,
    "num_products": 3,
    "feature_dim": 6,
    "time_transform": {"kind": "log1p_ratio", "scale_days": 10},
    "rating_range": [1, 5],
    "global_mean": 3.9,
}
CUSTOMERS = b"alice\t100\nbob\t200\n"
PRODUCTS = b"pa\tTitle A\npb\tTitle B\npc\tTitle C\n"


@pytest.mark.parametrize(
    ("title", "token"),
    [
        ("Sherlock: Season 1", "sherlock:-season-1"),
        ("Sherlock Season 1", "sherlock-season-1"),
        ("Beta  Film", "beta--film"),
        ("two  spaces", "two--spaces"),
        ("Tab\tand\nnewline", "tab-and-newline"),
        ("tab\tnew\nline\r\x0b\x0c", "tab-new-line---"),
        ("No\u00a0break\u2028line\u3000wide", "no-break-line-wide"),
        ("\u00a0no-break\u2009thin\u3000ideographic", "-no-break-thin-ideographic"),
        ("\u2028line\u2029paragraph\x1c\x1d\x1e\x1f\x85", "-line-paragraph-----"),
        ("ÄRGER Über", "ärger-über"),
        ("ÉCOLE İstanbul ΣΟΦΙΑ", "école-i̇stanbul-σοφια"),
        ("zero\u200bwidth", "zero\u200bwidth"),  # not whitespace for Python: kept
        (" edge ", "-edge-"),
        ('"Quoted" title', '"quoted"-title'),
        ("", ""),
    ],
)
def test_title_token(title: str, token: str) -> None:
    assert title_token(title) == token


def test_title_token_is_the_notebooks_on_titles_with_plain_spaces() -> None:
    for title in ("Sherlock Season 2", "The Imitation Game", "Keeping Up With The Kardashians Season 1"):
        assert title_token(title) == title.lower().replace(" ", "-")


def test_index_round_trip(tmp_path: Path) -> None:
    transform = TimeTransform(100)
    write_index(
        tmp_path,
        customer_ids=["42", "7"],
        first_review_days=[16000, 16436],
        product_ids=["B1", "B2", "B3"],
        titles=["Line\u2028Separated", "Tab-free title", "Ünïcode"],
        time_transform=transform,
        global_mean=4.25,
    )
    assert json.loads((tmp_path / "index.json").read_text()) == {
        "schema_version": 1,
        "num_customers": 2,
        "num_products": 3,
        "feature_dim": 6,
        "time_transform": transform.to_json(),
        "rating_range": [1, 5],
        "global_mean": 4.25,
    }
    index = load_index(tmp_path)
    assert index.customer_keys == {"42": 0, "7": 1}
    assert index.customer_ids == ["42", "7"]
    assert {p: index.product_key(r) for p, r in index.product_rows.items()} == {"B1": 2, "B2": 3, "B3": 4}
    assert index.product_titles[0] == "Line\u2028Separated"
    assert index.title_rows == {
        "line-separated": 0,
        "tab-free-title": 1,
        "ünïcode": 2,
    }  # U+2028 is whitespace
    assert (index.feature_dim, index.time_key) == (6, 5)
    assert (index.rating_range, index.global_mean) == ((1.0, 5.0), 4.25)
    assert index.time_transform(index.days_since_first_review(1, 16436 + 100)) == 1.0
    assert index.time_transform(index.days_since_first_review(0, 16000 + 1)) == pytest.approx(
        np.log(2) / np.log(101)
    )


def test_a_title_held_by_two_products_maps_to_the_first() -> None:
    files = index_files(
        customer_ids=["c"],
        first_review_days=[1],
        product_ids=["p-1", "p-2", "p-3"],
        titles=["Sherlock Season 1", "line\u2028separator", "SHERLOCK season 1"],
        time_transform=TimeTransform(9),
        global_mean=4.0,
    )
    index = parse_index(*files.values())
    assert index.title_rows == {"sherlock-season-1": 0, "line-separator": 1}


@pytest.mark.parametrize(
    ("index", "customers", "products", "message"),
    [
        (INDEX | {"feature_dim": 7}, CUSTOMERS, PRODUCTS, "index.json: feature_dim 7 != num_customers"),
        (INDEX | {"schema_version": 2}, CUSTOMERS, PRODUCTS, "index.json: schema_version 2 is not 1"),
        (
            INDEX | {"time_transform": {"kind": "x"}},
            CUSTOMERS,
            PRODUCTS,
            "index.json: time_transform.kind 'x'",
        ),
        (INDEX | {"rating_range": [5, 1]}, CUSTOMERS, PRODUCTS, "index.json: rating_range is [5, 1]"),
        (INDEX | {"global_mean": "high"}, CUSTOMERS, PRODUCTS, "index.json: global_mean is 'high'"),
        (INDEX | {"num_customers": 0}, CUSTOMERS, PRODUCTS, "index.json: num_customers is 0"),
        (INDEX, b"alice\t100\n", PRODUCTS, "customers.tsv: 1 lines, index.json says 2"),
        (INDEX, b"alice\t100\nbob\tlater\n", PRODUCTS, "customers.tsv: line 2: first_review_day 'later'"),
        (INDEX, b"alice\t100\nalice\t200\n", PRODUCTS, "customers.tsv: a customer_id appears twice"),
        (INDEX, b"alice\t100\n\xff\t1\n", PRODUCTS, "customers.tsv: not UTF-8"),
        (INDEX, CUSTOMERS, b"pa\tA\npb\tB\tx\npc\tC\n", "products.tsv: line 2 does not have exactly two"),
        (INDEX, CUSTOMERS, b"pa\tA\npa\tB\npc\tC\n", "products.tsv: a product_id appears twice"),
    ],
)
def test_a_malformed_index_names_the_file_and_the_problem(
    index: dict[str, Any], customers: bytes, products: bytes, message: str
) -> None:
    with pytest.raises(IndexFormatError) as raised:
        parse_index(json.dumps(index).encode(), customers, products)
    assert str(raised.value).startswith(message)


def test_index_at_full_scale_loads_every_key(tmp_path: Path) -> None:
    n, m = 150_000, 40_000
    write_index(
        tmp_path,
        customer_ids=[str(10_000_000 + 7 * u) for u in range(n)],
        first_review_days=[13_000 + u % 3000 for u in range(n)],
        product_ids=[f"B{i:09d}" for i in range(m)],
        titles=[f"Title number {i}: Season {i % 9}" for i in range(m)],
        time_transform=TimeTransform(3286),
        global_mean=4.1,
    )
    index = load_index(tmp_path)
    assert len(index.customer_keys) == n and len(index.product_rows) == m
    assert index.customer_keys[str(10_000_000 + 7 * 149_999)] == 149_999
    assert index.first_review_day[149_999] == 13_000 + 149_999 % 3000
    assert index.product_key(index.product_rows["B000039999"]) == n + 39_999
    assert index.product_titles[39_999] == "Title number 39999: Season 3"


# Every character str.isspace() holds for, written out: the ASCII whitespace, the information separators
# U+001C..U+001F, NEL, NO-BREAK SPACE, OGHAM SPACE MARK, U+2000..U+200A, LINE and PARAGRAPH SEPARATOR,
# NARROW NO-BREAK SPACE, MEDIUM MATHEMATICAL SPACE, IDEOGRAPHIC SPACE.
ID_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000"
)
# Every code point but the surrogates, which no UTF-8 text holds.
CODE_POINTS = [c for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("13", "13"),
        (" 13", "13"),
        ("13\t", "13"),
        ("\u00a0B00ABC\u3000", "B00ABC"),
        ("\u2028C1\x85", "C1"),
        ("A B", "A B"),  # inside an id, whitespace is part of it
        ("   ", ""),
        ("\u200bC1", "\u200bC1"),  # ZERO WIDTH SPACE is a format character, not whitespace
    ],
)
def test_normalize_id_trims_the_whitespace_around_an_id(raw: str, normalized: str) -> None:
    assert normalize_id(raw) == normalized


def test_normalize_id_trims_exactly_the_characters_written_out() -> None:
    trimmed = [c for c in CODE_POINTS if normalize_id(f"{chr(c)}x{chr(c)}") == "x"]
    assert "".join(map(chr, trimmed)) == ID_WHITESPACE


def test_pyarrow_trims_the_same_whitespace_as_normalize_id() -> None:
    """A columnar reader (the prep job) may trim ids with pyarrow's utf8_trim_whitespace: for every code
    point on either side of an id, it trims what normalize_id trims, and nothing else."""
    import pyarrow as pa  # noqa: PLC0415 -- the contract itself needs the standard library only
    import pyarrow.compute as pc  # noqa: PLC0415

    for template in ("{c}x", "x{c}", "{c}{c}x{c}"):
        raws = [template.format(c=chr(c)) for c in CODE_POINTS]
        trimmed = pc.utf8_trim_whitespace(pa.array(raws, pa.string())).to_pylist()
        differ = [
            f"U+{ord(raw.replace('x', '')[0]):04X}"
            for raw, ours in zip(raws, trimmed, strict=True)
            if ours != normalize_id(raw)
        ]
        assert differ == [], template


def test_the_contract_needs_only_the_standard_library() -> None:
    code = (
        "import sys, contract.layout, contract.features, contract.index, contract.algorithms, "
        "contract.documents; "
        "bad = sorted({'numpy', 'pyarrow', 'boto3', 'aws_cdk'} & set(sys.modules)); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
