"""Which kept rows are test, validation and train.

- Test: each customer's reviews on its latest review_date; among them the review whose (customer, product)
  pair has the smallest split hash; among that pair's reviews on that date, the highest rating.
- Validation: the same rule on the customer's rows outside its test pair, for each customer with at least
  VALIDATION_MIN_PRODUCTS distinct products there.
- Train: the rows outside both pairs (every row of the test pair and of the validation pair leaves train, as
  the notebook removed the test pair: a model must not have seen the customer rate that product).

The split hash of a pair is blake2b(customer_id + TAB + product_id, UTF-8; key: the seed as 8 bytes
little-endian; digest_size 8), read as an unsigned big-endian 64-bit integer. No id holds a TAB (it
separates the input's fields), so distinct pairs hash distinct messages. Because the hash is of the ids
themselves, the choice depends neither on the order of the rows, of the files or of the ids, nor on the
other customers' rows, and the seed changes it. A tie-break by id is not blind to the product: most
customers review several products on their last date (553 of 610 in the bundled MovieLens data), and the
greatest id (byte order) chose ids starting with 9 for 41 % of the test rows where 3 % of the candidates
have one, products with fewer reviews (median 41 train reviews against the candidates' 59; on MovieLens
100k 73 against 150) and a test set on which the bias baseline did worse (RMSE 0.920 against 0.908).
bench/split_quality.py measures both rules.

VALIDATION_MIN_PRODUCTS = 2: a validation customer keeps at least one product in train, so that validation
scores known customers as the test set does, rather than customers whose only signal was taken away.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import numpy as np

VALIDATION_MIN_PRODUCTS = 2
SEED_RANGE = (0, 2**64 - 1)
"""The seed is the hash's 8-byte key (and numpy's shuffle seed, which takes no negative number)."""

TEST_RULE = (
    "each customer's latest review by review_date; among that date's reviews the one whose (customer, "
    "product) pair has the smallest split hash; among that pair's reviews on that date the highest rating"
)
VALIDATION_RULE = (
    "the test rule applied to each customer's rows outside its test pair, for customers with at least "
    f"{VALIDATION_MIN_PRODUCTS} distinct products there (each keeps a product in train)"
)
TRAIN_RULE = "the other rows, minus every row of the test pair and of the validation pair"
HASH_RULE = (
    "blake2b(customer_id + TAB + product_id as UTF-8, key = seed as 8 bytes little-endian, digest_size = 8) "
    "as an unsigned big-endian 64-bit integer; the smallest wins"
)


TieRank = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(user keys, item keys) of tied rows -> a uint64 per row: the smallest wins."""


def pair_hashes(customers: Sequence[str], products: Sequence[str], seed: int) -> np.ndarray:
    """The split hash (uint64) of each (customers[k], products[k])."""
    key = seed.to_bytes(8, "little")
    digests = b"".join(
        hashlib.blake2b(f"{c}\t{p}".encode(), key=key, digest_size=8).digest()
        for c, p in zip(customers, products, strict=True)
    )
    hashes: np.ndarray = np.frombuffer(digests, dtype=">u8").astype(np.uint64)
    return hashes


def hash_rank(customer_ids: Sequence[str], product_ids: Sequence[str], seed: int) -> TieRank:
    """The split's tie-break: the pair's split hash (customer_ids by user key, product_ids by item key)."""

    def rank(user: np.ndarray, item: np.ndarray) -> np.ndarray:
        return pair_hashes(
            [customer_ids[u] for u in user.tolist()], [product_ids[i] for i in item.tolist()], seed
        )

    return rank


def choose_latest(
    *,
    user: np.ndarray,
    item: np.ndarray,
    day: np.ndarray,
    rating: np.ndarray,
    eligible: np.ndarray,
    num_users: int,
    tie_rank: TieRank,
) -> np.ndarray:
    """The row chosen for each customer with an eligible row, by the test rule among its eligible rows:
    positions into the row arrays, in customer order.

    The rows are grouped by user (every user 0..num_users-1 has at least one row). Only the rows on a
    customer's latest eligible date are candidates, and only customers with more than one candidate need
    the tie-break: the hash is computed per tied row, not per row."""
    per_user = np.bincount(user, minlength=num_users)
    starts = np.cumsum(per_user) - per_user
    if len(user) and not np.all(np.diff(user) >= 0):
        raise ValueError("rows are not grouped by user")
    masked_day = np.where(eligible, day.astype(np.int64), np.iinfo(np.int64).min)
    latest = np.maximum.reduceat(masked_day, starts) if len(user) else np.zeros(0, np.int64)
    candidates = np.flatnonzero(eligible & (day == latest[user]))
    c_user = user[candidates]
    tied = np.bincount(c_user, minlength=num_users)[c_user] > 1
    ranks = np.zeros(len(candidates), dtype=np.uint64)
    if tied.any():
        rows = candidates[tied]
        ranks[tied] = tie_rank(user[rows], item[rows])
    # A stable sort: equal ranks of two products (a 64-bit hash collision) fall to the rows' own order.
    order = np.lexsort((-rating[candidates].astype(np.int16), ranks, c_user))
    sorted_user = c_user[order]
    first = np.r_[True, sorted_user[1:] != sorted_user[:-1]] if len(order) else np.zeros(0, dtype=bool)
    chosen: np.ndarray = candidates[order][first]
    return chosen


def split_rows(
    *,
    user: np.ndarray,
    item: np.ndarray,
    day: np.ndarray,
    rating: np.ndarray,
    num_users: int,
    tie_rank: TieRank,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(test, validation, train) masks over the rows, grouped by user, by the rules above; `tie_rank`
    breaks a date's ties (the job's: hash_rank)."""
    n_rows = len(user)

    def choose(eligible: np.ndarray) -> np.ndarray:
        return choose_latest(
            user=user,
            item=item,
            day=day,
            rating=rating,
            eligible=eligible,
            num_users=num_users,
            tie_rank=tie_rank,
        )

    test = choose(np.ones(n_rows, dtype=bool))
    is_test = np.zeros(n_rows, dtype=bool)
    is_test[test] = True
    test_item = np.full(num_users, -1, dtype=np.int64)
    test_item[user[test]] = item[test]
    rest = item != test_item[user]

    # VALIDATION_MIN_PRODUCTS (2) distinct products in the rest: its smallest and largest item differ (one
    # pass, where counting distinct products would sort the rows).
    has_two = np.zeros(num_users, dtype=bool)
    if n_rows:
        per_user = np.bincount(user, minlength=num_users)
        starts = np.cumsum(per_user) - per_user
        rest_item = item.astype(np.int64)
        low = np.minimum.reduceat(np.where(rest, rest_item, np.iinfo(np.int64).max), starts)
        high = np.maximum.reduceat(np.where(rest, rest_item, -1), starts)
        has_two = (high >= 0) & (low != high)
    validation = choose(rest & has_two[user])
    is_validation = np.zeros(n_rows, dtype=bool)
    is_validation[validation] = True
    validation_item = np.full(num_users, -1, dtype=np.int64)
    validation_item[user[validation]] = item[validation]
    is_train = rest & (item != validation_item[user])
    return is_test, is_validation, is_train
