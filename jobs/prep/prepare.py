"""The notebook's preparation, vectorized, with its defects fixed.

1. Count reviews per customer and per product on the usable rows; keep the rows whose customer has at least
   `min_customer_reviews` and whose product has at least `min_product_reviews` (one pass on the raw counts,
   as the notebook: not iterated to a fixed point).
2. Re-count on the kept rows; customers get feature keys 0..N-1 and products N..N+M-1, each by descending
   count, ties by id (byte order), so that the same input always gives the same keys.
3. The time feature: days since the customer's first kept review, through the bounded transform of
   contract.features (the notebook used the raw day count).
4. The split (jobs.prep.split): test = each customer's latest review by review_date, the tie among that
   date's reviews broken by a seeded hash of (customer, product); validation = the same rule on what remains,
   for customers with two products left; train = the other rows, minus every row of the test and validation
   pairs. It depends on the rows only, not on their order in the file, on how the input is split into files
   or on the ids' order (the notebook took the last row in file order).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from contract.features import FeatureLayout, TimeTransform
from jobs.prep.failure import PrepError, fmt_count
from jobs.prep.read import Reviews
from jobs.prep.split import hash_rank, split_rows


@dataclass(frozen=True)
class Thresholds:
    min_customer_reviews: int = 5
    min_product_reviews: int = 10


@dataclass
class Prepared:
    """The kept rows in (customer, date) order, with their feature keys and the split."""

    num_customers: int  # N
    num_products: int  # M
    customer_ids: list[str]  # by user key u
    product_ids: list[str]  # by item i (feature key N + i)
    product_titles: list[str]  # by item i: the most frequent title
    first_review_day: np.ndarray  # int32 by u
    user: np.ndarray  # int32 per kept row: 0..N-1
    item: np.ndarray  # int32 per kept row: 0..M-1 (feature key N + item)
    rating: np.ndarray  # int8 per kept row
    day: np.ndarray  # int32 per kept row
    time_value: np.ndarray  # float32 per kept row: the time feature
    is_test: np.ndarray  # bool per kept row: one per customer
    is_validation: np.ndarray  # bool per kept row: at most one per customer
    is_train: np.ndarray  # bool per kept row
    time_transform: TimeTransform

    @property
    def features(self) -> FeatureLayout:
        return FeatureLayout(self.num_customers, self.num_products)

    @property
    def feature_dim(self) -> int:
        return self.features.feature_dim

    @property
    def rows_kept(self) -> int:
        return len(self.user)


def time_features(days: np.ndarray, transform: TimeTransform) -> np.ndarray:
    """The time feature of many whole-day counts at once, as float32.

    Day counts are small integers, so this evaluates the stdlib function once per distinct clipped value
    and gathers: the vectorized and the pure-Python forms agree bit for bit by construction (numpy's own
    log1p may differ from math.log1p in the last bit)."""
    scale = transform.scale_days
    table = np.array([transform(d) for d in range(scale + 1)], dtype=np.float32)
    values: np.ndarray = table[np.clip(days, 0, scale)]
    return values


def _rank_by_count_then_id(counts: np.ndarray, ids: pa.Array) -> np.ndarray:
    """Order (positions into counts/ids) by descending count, ties by ascending id."""
    id_order = pc.array_sort_indices(ids).to_numpy(zero_copy_only=False)
    id_rank = np.empty(len(ids), dtype=np.int64)
    id_rank[id_order] = np.arange(len(ids))
    return np.lexsort((id_rank, -counts))


def _title_per_product(reviews: Reviews, kept_products: np.ndarray) -> list[str]:
    """The most frequent title of each kept product (ties: the lexicographically smallest)."""
    table = reviews.product_titles
    slot = np.full(len(reviews.product_ids), -1, dtype=np.int64)
    slot[kept_products] = np.arange(len(kept_products))
    product_slot = slot[table.column("product").to_numpy()]
    mine = product_slot >= 0
    sub = table.filter(pa.array(mine)).append_column("slot", pa.array(product_slot[mine]))
    sub = sub.sort_by([("slot", "ascending"), ("n", "descending"), ("title", "ascending")])
    slots = sub.column("slot").to_numpy()
    first = np.r_[True, slots[1:] != slots[:-1]]
    titles = sub.column("title").filter(pa.array(first)).to_pylist()
    if len(titles) != len(kept_products):  # pragma: no cover - every usable row has a product and title
        raise AssertionError("a kept product has no title")
    return [str(t) for t in titles]


def prepare(reviews: Reviews, thresholds: Thresholds, seed: int) -> Prepared:
    """Apply the thresholds, assign feature keys, compute the time feature and split the rows into test,
    validation and train (`seed`: the split hash's key)."""
    num_codes_c, num_codes_p = len(reviews.customer_ids), len(reviews.product_ids)
    customer_count = np.bincount(reviews.customer, minlength=num_codes_c)
    product_count = np.bincount(reviews.product, minlength=num_codes_p)
    customer_ok = customer_count >= thresholds.min_customer_reviews
    product_ok = product_count >= thresholds.min_product_reviews
    keep = customer_ok[reviews.customer] & product_ok[reviews.product]
    if not keep.any():
        raise PrepError(
            f"nothing survives the filters: {fmt_count(int(customer_ok.sum()))} of "
            f"{fmt_count(num_codes_c)} customers have >= {thresholds.min_customer_reviews} reviews "
            f"(--min-customer-reviews) and {fmt_count(int(product_ok.sum()))} of {fmt_count(num_codes_p)} "
            f"products have >= {thresholds.min_product_reviews} reviews (--min-product-reviews), but no "
            f"review among {fmt_count(reviews.rows_usable)} usable rows has both"
        )
    c_code, p_code = reviews.customer[keep], reviews.product[keep]
    rating, day = reviews.rating[keep], reviews.day[keep]

    # Keys: descending count on the kept rows, ties by id.
    kept_count_c = np.bincount(c_code, minlength=num_codes_c)
    kept_count_p = np.bincount(p_code, minlength=num_codes_p)
    kept_c = np.flatnonzero(kept_count_c)
    kept_p = np.flatnonzero(kept_count_p)
    # As text (ids held as integers included), so that ties go by the ids' byte order.
    kept_c_ids = reviews.customer_ids.take(pa.array(kept_c)).cast(pa.string())
    kept_p_ids = reviews.product_ids.take(pa.array(kept_p)).cast(pa.string())
    order_c = _rank_by_count_then_id(kept_count_c[kept_c], kept_c_ids)
    order_p = _rank_by_count_then_id(kept_count_p[kept_p], kept_p_ids)
    n, m = len(kept_c), len(kept_p)
    user_of_code = np.full(num_codes_c, -1, dtype=np.int32)
    user_of_code[kept_c[order_c]] = np.arange(n, dtype=np.int32)
    item_of_code = np.full(num_codes_p, -1, dtype=np.int32)
    item_of_code[kept_p[order_p]] = np.arange(m, dtype=np.int32)
    user, item = user_of_code[c_code], item_of_code[p_code]
    product_ids = kept_p_ids.take(pa.array(order_p))

    # Rows in (user, day, product id, rating) order: each customer's reviews in date order (the corpus's).
    product_id_rank = np.empty(m, dtype=np.int32)
    product_id_rank[pc.array_sort_indices(product_ids).to_numpy(zero_copy_only=False)] = np.arange(m)
    order = np.lexsort((rating, product_id_rank[item], day, user))
    user, item, rating, day = user[order], item[order], rating[order], day[order]
    per_user = np.bincount(user, minlength=n)
    first_review_day = day[np.cumsum(per_user) - per_user].astype(np.int32)
    customer_ids = [str(c) for c in kept_c_ids.take(pa.array(order_c)).to_pylist()]
    product_id_list = [str(p) for p in product_ids.to_pylist()]
    is_test, is_validation, is_train = split_rows(
        user=user,
        item=item,
        day=day,
        rating=rating,
        num_users=n,
        tie_rank=hash_rank(customer_ids, product_id_list, seed),
    )

    days_since_first = day - first_review_day[user]
    transform = TimeTransform(max(1, int(days_since_first.max())))
    return Prepared(
        num_customers=n,
        num_products=m,
        customer_ids=customer_ids,
        product_ids=product_id_list,
        product_titles=_title_per_product(reviews, kept_p[order_p]),
        first_review_day=first_review_day,
        user=user,
        item=item,
        rating=rating,
        day=day,
        time_value=time_features(days_since_first, transform),
        is_test=is_test,
        is_validation=is_validation,
        is_train=is_train,
        time_transform=transform,
    )
