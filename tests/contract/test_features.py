"""The feature layout and the time transform: prep's formula, its vectorized form, its inverse."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from contract.features import FeatureLayout, TimeTransform
from jobs.prep.prepare import time_features


def test_the_feature_layout_puts_users_then_items_then_time() -> None:
    layout = FeatureLayout(num_customers=3, num_products=2)
    assert [layout.user_key(u) for u in range(3)] == [0, 1, 2]
    assert [layout.item_key(i) for i in range(2)] == [3, 4]
    assert layout.time_key == 5
    assert layout.feature_dim == 6
    assert layout.product_of_key(4) == 1


@pytest.mark.parametrize("scale", [1, 2, 60, 365, 3286, 12000])
def test_time_feature_pure_equals_vectorized(scale: int) -> None:
    transform = TimeTransform(scale)
    days = np.arange(-30, scale + 400)
    pure = np.array([transform(int(d)) for d in days], dtype=np.float32)
    assert np.array_equal(time_features(days, transform), pure)
    assert time_features(days, transform).dtype == np.float32


def test_time_feature_is_bounded_and_monotone() -> None:
    transform = TimeTransform(60)
    assert transform(-5) == 0.0
    assert transform(0) == 0.0
    assert transform(60) == 1.0
    assert transform(10_000) == 1.0  # a request later than any training row clips
    assert transform(2) == pytest.approx(np.log(3) / np.log(61))
    values = [transform(d) for d in range(100)]
    assert values == sorted(values)


def test_the_inverse_gives_back_the_days_below_the_scale() -> None:
    transform = TimeTransform(2704)
    for days in [0, 1, 2, 7, 30, 365, 1000, 2703]:
        assert transform.days(transform(days)) == days
        # As stored in a shard: float32.
        assert transform.days(float(np.float32(transform(days)))) == days
    assert transform.days(1.0) == 2704  # every later day clips to 1 too


def test_the_time_transform_of_index_json() -> None:
    transform = TimeTransform.from_json({"kind": "log1p_ratio", "scale_days": 99, "formula": "..."})
    assert transform(9) == pytest.approx(math.log(10) / math.log(100))
    assert transform(0) == transform(-5) == 0.0
    assert transform(99) == transform(5000) == 1.0
    assert TimeTransform.from_json(TimeTransform(7).to_json()) == TimeTransform(7)
    assert TimeTransform(7).to_json()["formula"] == "min(1, log1p(max(0, days)) / log1p(scale_days))"
    for bad, message in [
        ({"kind": "log1p"}, "time_transform.kind 'log1p' is not 'log1p_ratio'"),
        ({"kind": "linear", "scale_days": 10}, "time_transform.kind 'linear' is not 'log1p_ratio'"),
        ({"kind": "log1p_ratio", "scale_days": 0}, "time_transform.scale_days 0 is not an integer >= 1"),
        ({"kind": "log1p_ratio"}, "time_transform.scale_days None is not an integer >= 1"),
        ({"kind": "log1p_ratio", "scale_days": True}, "time_transform.scale_days True is not an integer"),
        ("log1p", "time_transform must be an object"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            TimeTransform.from_json(bad)
    with pytest.raises(ValueError, match="scale_days 0 is not an integer >= 1"):
        TimeTransform(0)
