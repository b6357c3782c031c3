"""The split (jobs/prep/split.py): which row is test, which is validation, on hand-made ties; what the seed,
the row order and the other customers' rows change (the seed: the choice; the rest: nothing); and, on many
crafted ties, that the chosen items' ids follow the candidates' distribution, where the greatest product id
did not.

The hand-made input (thresholds 1/1, so every row is kept), with the split hash of each tied pair (blake2b
of "customer\\tproduct" keyed by the seed, test_the_split_hash_is_keyed_blake2b_of_the_ids):

    row  customer product stars date          seed 42 hash         seed 7 hash
    a1   A        P1      4     2015-01-01
    a2   A        P2      1     2015-01-02
    a3   A        P2      3     2015-01-05    a1a7fbe722036767     49da07a80e45b076
    a4   A        P3      5     2015-01-05    f63fe205b972d1f2     9dfe5f9f0c63560b
    a5   A        P4      2     2015-01-05    adf970418e088373     445afee2a875381c
    b1   B        P3      4     2015-02-01
    b2   B        P1      2     2015-02-03    379c84dcb5e36544     d9dcf49c9e08095a
    b3   B        P1      5     2015-02-03    (the same pair)
    b4   B        P2      3     2015-02-03    22b5b3a4098b323d     df6be6409c02917e
    c1   C        P1      3     2015-03-01
    c2   C        P1      4     2015-03-02
    c3   C        P5      5     2015-03-03    (alone on its date: no hash needed)
    d1   D        P1      1     2015-04-01

Seed 42:
- A: 01-05 holds P2, P3, P4; P2's hash is the smallest: test a3 (the greatest id would take P4). Outside
  the P2 pair (a2 and a3 both leave) A has P1, P3, P4: validation among its latest date's P3 and P4: P4,
  a5. Train a1, a4.
- B: 02-03 holds P1 (twice) and P2: P2 is smaller: test b4. Outside it B has P3 and P1: validation on
  02-03, P1, the higher of its two ratings: b3 (b2 goes nowhere: the pair leaves train). Train b1.
- C: test c3; outside it only P1, one product: no validation. Train c1, c2.
- D: test d1; nothing left. No train row.
Seed 7:
- A: P4 is smallest: test a5; validation among P2, P3 on 01-05: P2, a3 (and a2 leaves). Train a1, a4.
- B: P1 is smaller: test b3 (the higher rating), b2 goes nowhere; outside P1 B has P3 and P2: validation on
  02-03: b4. Train b1.
- C and D as with seed 42.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import chisquare

from contract.index import load_index
from fm.recordio import read_sparse_records
from jobs.prep.failure import PrepError
from jobs.prep.job import PrepConfig, run_prep
from jobs.prep.prepare import Thresholds
from jobs.prep.split import pair_hashes
from tests.jobs.test_prep_support import tsv_bytes, write_tsv

Review = tuple[str, str, int]  # customer, product, stars

SPLIT_ROWS = [
    ("A", "P1", "4", "2015-01-01"),
    ("A", "P2", "1", "2015-01-02"),
    ("A", "P2", "3", "2015-01-05"),
    ("A", "P3", "5", "2015-01-05"),
    ("A", "P4", "2", "2015-01-05"),
    ("B", "P3", "4", "2015-02-01"),
    ("B", "P1", "2", "2015-02-03"),
    ("B", "P1", "5", "2015-02-03"),
    ("B", "P2", "3", "2015-02-03"),
    ("C", "P1", "3", "2015-03-01"),
    ("C", "P1", "4", "2015-03-02"),
    ("C", "P5", "5", "2015-03-03"),
    ("D", "P1", "1", "2015-04-01"),
]
TRAIN = [("A", "P1", 4), ("A", "P3", 5), ("B", "P3", 4), ("C", "P1", 3), ("C", "P1", 4)]
EXPECTED: dict[int, dict[str, list[Review]]] = {
    42: {
        "test": [("A", "P2", 3), ("B", "P2", 3), ("C", "P5", 5), ("D", "P1", 1)],
        "validation": [("A", "P4", 2), ("B", "P1", 5)],
        "train": TRAIN,
    },
    7: {
        "test": [("A", "P4", 2), ("B", "P1", 5), ("C", "P5", 5), ("D", "P1", 1)],
        "validation": [("A", "P2", 3), ("B", "P2", 3)],
        "train": TRAIN,
    },
}


def rows_file(rows: list[tuple[str, str, str, str]]) -> bytes:
    return tsv_bytes([(c, p, f"Title {p}", stars, date) for c, p, stars, date in rows])


def config(seed: int) -> PrepConfig:
    return PrepConfig(thresholds=Thresholds(1, 1), fm_instance_count=1, seed=seed)


def reviews_in(out: Path, channel: str) -> list[Review]:
    """The shards of a channel as (customer id, product id, stars), through the run's own index."""
    index = load_index(out / "index")
    n = index.num_customers
    found: list[Review] = []
    for path in sorted((out / channel).iterdir()):
        with path.open("rb") as f:
            records = read_sparse_records(f)
        keys = records.indices.reshape(-1, 3)
        for (user, item, _), label in zip(keys.tolist(), records.labels.tolist(), strict=True):
            found.append((index.customer_ids[user], index.product_ids[item - n], int(label)))
    return found


def run_split(folder: Path, files: dict[str, bytes], seed: int) -> Path:
    for name, data in files.items():
        write_tsv(folder / "in" / name, data)
    run_prep(folder / "in", folder / "out", config(seed), log=lambda _: None)
    return folder / "out"


def test_the_split_hash_is_keyed_blake2b_of_the_ids() -> None:
    hashes = pair_hashes(["A", "A", "20", "é"], ["P2", "P4", "B1", "P 1"], 42)
    assert hashes.dtype == np.uint64
    assert hashes.tolist() == [0xA1A7FBE722036767, 0xADF970418E088373, 0x9626C8B05DFAA47A, 0xDF162007926C5052]
    key = (42).to_bytes(8, "little")  # the ids' UTF-8 bytes with a TAB between
    assert hashes[3] == int(hashlib.blake2b(b"\xc3\xa9\tP 1", key=key, digest_size=8).hexdigest(), 16)
    assert pair_hashes(["A"], ["P2"], 7).tolist() == [0x49DA07A80E45B076]


@pytest.mark.parametrize("seed", [42, 7])
def test_which_rows_are_test_validation_and_train(tmp_path: Path, seed: int) -> None:
    out = run_split(tmp_path, {"reviews.tsv": rows_file(SPLIT_ROWS)}, seed)
    for channel, expected in EXPECTED[seed].items():
        assert sorted(reviews_in(out, channel)) == expected, channel


def test_the_validation_shard_and_the_baselines_follow_the_customer_order(tmp_path: Path) -> None:
    # Customer keys by review count: A 0, B 1, C 2, D 3. Train (seed 42): A P1 4, A P3 5, B P3 4, C P1 3,
    # C P1 4: mu 4.
    out = run_split(tmp_path, {"reviews.tsv": rows_file(SPLIT_ROWS)}, 42)
    assert reviews_in(out, "validation") == EXPECTED[42]["validation"]
    assert reviews_in(out, "test") == EXPECTED[42]["test"]
    assert np.load(out / "baselines" / "validation.npy").shape == (2, 3)
    assert np.load(out / "baselines" / "test.npy")[:, 0].tolist() == [4.0] * 4


def test_neither_row_order_nor_files_nor_other_customers_change_the_choice(tmp_path: Path) -> None:
    plain = run_split(tmp_path / "plain", {"reviews.tsv": rows_file(SPLIT_ROWS)}, 42)
    shuffled = random.Random(5).sample(SPLIT_ROWS, len(SPLIT_ROWS))
    split_up = run_split(
        tmp_path / "split-up",
        {"b.tsv": rows_file(shuffled[:6]), "a/c.tsv.gz": rows_file(shuffled[6:])},
        42,
    )
    for name in ("test/part-00000.rio", "validation/part-00000.rio", "train/part-00000.rio"):
        assert (split_up / name).read_bytes() == (plain / name).read_bytes(), name
    # Another customer's reviews make P4 and P5 the most reviewed products: every item key changes, and so
    # does the ids' order by key; A to D keep their rows.
    other = [("E", p, "3", f"2015-05-{day:02d}") for day, p in enumerate(["P4"] * 7 + ["P5"] * 6, start=1)]
    crowded = run_split(tmp_path / "crowded", {"reviews.tsv": rows_file([*other, *SPLIT_ROWS])}, 42)
    assert load_index(crowded / "index").product_ids[:3] == ["P4", "P5", "P1"]
    for channel in ("test", "validation"):
        assert [r for r in reviews_in(crowded, channel) if r[0] != "E"] == EXPECTED[42][channel]


# ------------------------------------------------------------------------------------ crafted ties

PREFIX_SHARES = {"A": 160, "B": 120, "C": 80, "D": 40}
"""Products per id prefix: a review's product is drawn uniformly, so 40 %, 30 %, 20 % and 10 % of the ids
start with A, B, C, D. The greatest id favours D."""
CUSTOMERS = 3000
P_MATCH = 0.01
"""Below this p-value the chosen items' prefixes do not follow the candidates'."""
P_BIASED = 1e-6


def crafted_ties(seed: int = 11) -> list[tuple[str, str, str, str]]:
    """Per customer: 3 earlier reviews on their own dates, then 2 to 5 reviews of distinct products on its
    latest date; all products distinct within the customer."""
    rng = random.Random(seed)
    catalog = [f"{prefix}{n:04d}" for prefix, count in PREFIX_SHARES.items() for n in range(count)]
    rows = []
    for c in range(CUSTOMERS):
        customer = f"U{c:05d}"
        ties = rng.randint(2, 5)
        products = rng.sample(catalog, 3 + ties)
        last = f"2016-{rng.randint(1, 12):02d}-{rng.randint(10, 28):02d}"
        for k, product in enumerate(products[:3]):
            rows.append((customer, product, str(rng.randint(1, 5)), f"2015-0{k + 1}-01"))
        rows += [(customer, p, str(rng.randint(1, 5)), last) for p in products[3:]]
    return rows


def by_customer(rows: list[tuple[str, str, str, str]]) -> dict[str, list[tuple[str, str]]]:
    """customer -> [(product, date)]."""
    out: dict[str, list[tuple[str, str]]] = {}
    for customer, product, _, date in rows:
        out.setdefault(customer, []).append((product, date))
    return out


def tie_statistic(
    reviews: dict[str, list[tuple[str, str]]], chosen: dict[str, str], excluded: dict[str, str]
) -> float:
    """The chi-square p-value of the chosen products' prefixes against their expected counts when each
    customer's choice is uniform among its candidates (its latest date's products, `excluded`'s product
    set aside): sum over customers of the share of each prefix among the candidates."""
    expected: dict[str, float] = dict.fromkeys(PREFIX_SHARES, 0.0)
    for customer in chosen:
        products = [(p, d) for p, d in reviews[customer] if p != excluded.get(customer)]
        last = max(d for _, d in products)
        candidates = [p for p, d in products if d == last]
        for p in candidates:
            expected[p[0]] += 1 / len(candidates)
    observed = Counter(p[0] for p in chosen.values())
    prefixes = sorted(PREFIX_SHARES)
    return float(chisquare([observed[p] for p in prefixes], [expected[p] for p in prefixes]).pvalue)


def greatest_id(reviews: dict[str, list[tuple[str, str]]], excluded: dict[str, str]) -> dict[str, str]:
    """The rule the split replaced: among the latest date's products, the greatest id."""
    chosen = {}
    for customer, products in reviews.items():
        rest = [(d, p) for p, d in products if p != excluded.get(customer)]
        chosen[customer] = max(rest)[1]
    return chosen


def test_on_crafted_ties_the_chosen_ids_follow_the_candidates(tmp_path: Path) -> None:
    rows = crafted_ties()
    out = run_split(tmp_path, {"reviews.tsv": rows_file(rows)}, 42)
    reviews = by_customer(rows)
    test = {c: p for c, p, _ in reviews_in(out, "test")}
    validation = {c: p for c, p, _ in reviews_in(out, "validation")}
    assert len(test) == len(validation) == CUSTOMERS  # every customer has 3 earlier products

    p_test = tie_statistic(reviews, test, {})
    p_validation = tie_statistic(reviews, validation, test)
    assert p_test > P_MATCH, p_test
    assert p_validation > P_MATCH, p_validation

    # The same statistic rejects the greatest product id, on test and on validation.
    old_test = greatest_id(reviews, {})
    old_validation = greatest_id(reviews, old_test)
    assert tie_statistic(reviews, old_test, {}) < P_BIASED
    assert tie_statistic(reviews, old_validation, old_test) < P_BIASED


@pytest.mark.parametrize("seed", [-1, 2**64])
def test_a_seed_that_is_not_an_8_byte_key_is_one_line(tmp_path: Path, seed: int) -> None:
    write_tsv(tmp_path / "in" / "reviews.tsv", rows_file(SPLIT_ROWS))
    with pytest.raises(PrepError) as raised:
        run_prep(tmp_path / "in", tmp_path / "out", config(seed), log=lambda _: None)
    assert str(raised.value) == "invalid configuration: seed must be within 0..18446744073709551615 (--seed)"
    assert not (tmp_path / "out").exists()
