"""The FM feature layout and the time feature, as prep writes them and serving rebuilds them.

Every training row has exactly three nonzero features, in ascending key order: the customer's one-hot key
u (0..N-1), the product's one-hot key N + i (i = 0..M-1), and the time feature at key N + M, the last one;
feature_dim = N + M + 1. Customer u is line u of the index's customers.tsv, product i line i of products.tsv.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

RATING_RANGE = (1, 5)
"""Star ratings: predictions are clipped to this range where they are served."""
NONZEROS_PER_ROW = 3
"""user one-hot, item one-hot, time feature."""


def rating_range_of(value: object) -> tuple[float, float] | None:
    """A rating range as JSON writes it, [lowest, highest] (two numbers, lowest first), or None."""
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        and value[0] < value[1]
    ):
        return float(value[0]), float(value[1])
    return None


@dataclass(frozen=True)
class FeatureLayout:
    num_customers: int
    num_products: int

    @property
    def feature_dim(self) -> int:
        return self.num_customers + self.num_products + 1

    @property
    def time_key(self) -> int:
        return self.num_customers + self.num_products

    def user_key(self, customer: int) -> int:
        return customer

    def item_key(self, product: int) -> int:
        return self.num_customers + product

    def product_of_key(self, key: int) -> int:
        """The product row i of item key N + i."""
        return key - self.num_customers


# ---------------------------------------------------------------------------------------------------------
# The time feature.
#
# The notebook put the raw days since the customer's first review (0 to ~3,000) into the last feature
# column. FM multiplies that value into its linear weight and into every pairwise interaction with the
# user and item columns, so a few hundred days scale the learnt terms by a few hundred; the test rows are
# each customer's latest review, that is the largest day counts, and the published test RMSE is about 50.
# loftrec uses  min(1, log1p(max(0, days)) / log1p(scale_days))  instead:
# - bounded to [0, 1] like the one-hot columns, so no term is scaled beyond what training saw, and a
#   request on a date later than any training row clips to 1 instead of extrapolating;
# - logarithmic, because the distribution is heavy-tailed (most reviews are a customer's first or come
#   within weeks of it) and the early days are where a customer's ratings drift most; a linear scale would
#   squeeze all of them near 0;
# - scale_days = the largest days-since-first among the kept rows (at least 1), recorded in the manifest
#   and the index, so that serving applies the very same formula.


@dataclass(frozen=True)
class TimeTransform:
    """How the days since the customer's first review become the time feature."""

    scale_days: int

    KIND = "log1p_ratio"
    FORMULA = "min(1, log1p(max(0, days)) / log1p(scale_days))"

    def __post_init__(self) -> None:
        if isinstance(self.scale_days, bool) or not isinstance(self.scale_days, int) or self.scale_days < 1:
            raise ValueError(f"time_transform.scale_days {self.scale_days!r} is not an integer >= 1")

    def __call__(self, days: int) -> float:
        """The feature of a review `days` after the customer's first (a negative count is day 0)."""
        return min(1.0, math.log1p(max(0, days)) / math.log1p(self.scale_days))

    def days(self, value: float) -> int:
        """The whole days that give `value`: exact below 1; a value of 1 gives scale_days (any later day
        clips to 1 as well)."""
        return round(math.expm1(min(1.0, max(0.0, value)) * math.log1p(self.scale_days)))

    def to_json(self) -> dict[str, Any]:
        """As the manifest and index.json record it."""
        return {
            "kind": self.KIND,
            "scale_days": self.scale_days,
            "formula": self.FORMULA,
            "days": "request date minus the customer's first_review_day, in whole days",
        }

    @classmethod
    def from_json(cls, spec: object) -> TimeTransform:
        """ValueError names the field that is not as to_json writes it."""
        if not isinstance(spec, Mapping):
            raise ValueError(f"time_transform must be an object, got {spec!r}")
        if spec.get("kind") != cls.KIND:
            raise ValueError(f"time_transform.kind {spec.get('kind')!r} is not {cls.KIND!r}")
        return cls(scale_days=spec.get("scale_days"))  # type: ignore[arg-type]  # checked in __post_init__
