"""The bias model and the cold start's base: fitted by hand-checkable sweeps, and the prep job's user bias."""

from __future__ import annotations

import numpy as np
import pytest

from fm.biases import PREP_BIAS_SETTINGS, BiasSettings, customer_base, fit_biases
from fm.factors import base_of, rated_pairs
from jobs.prep.baselines import Rows, compute_baselines
from tests.fm.topn_support import FEATURES, TRAIN_ROWS, shard

# TRAIN_ROWS: C1 rated P3 5 and P0 3; C2 rated P1 2 and P0 4 and 3. mu = 17 / 5 = 3.4.
RATINGS = [5.0, 3.0, 2.0, 4.0, 3.0]
USERS = [u for u, _, _ in TRAIN_ROWS]
ITEMS = [i for _, i, _ in TRAIN_ROWS]


def test_one_unregularized_sweep_gives_each_users_mean_offset() -> None:
    # b_C1 = mean(5, 3) - 3.4 = 0.6, b_C2 = mean(2, 4, 3) - 3.4 = -0.4; the items then: P0 (3 - 4, 4 - 3,
    # 3 - 3) / 3 = 0, P1 2 - 3 = -1, P2 none (0), P3 5 - 4 = 1.
    settings = BiasSettings(reg_user=0.0, reg_item=0.0, sweeps=1)
    mu, b_user, b_item = fit_biases(USERS, ITEMS, RATINGS, num_users=2, num_items=4, settings=settings)
    assert mu == pytest.approx(3.4)
    assert b_user.tolist() == pytest.approx([0.6, -0.4])
    assert b_item.tolist() == pytest.approx([0.0, -1.0, 0.0, 1.0])
    base = customer_base(USERS, ITEMS, RATINGS, num_users=2, num_items=4, settings=settings)
    assert base.mean == pytest.approx(3.4)
    assert base.values.dtype == np.float32 and base.values.tolist() == pytest.approx([4.0, 3.0])


def test_the_base_is_the_prep_jobs_user_bias_prediction_before_clipping() -> None:
    pairs = rated_pairs([shard(ratings=RATINGS)], FEATURES)
    base = base_of(pairs, FEATURES)
    train = Rows(np.array(USERS), np.array(ITEMS), np.array(RATINGS))
    asked = Rows(np.array([0, 1]), np.array([2, 2]), np.array([4.0, 4.0]))
    _, on_test, _ = compute_baselines(
        train=train, test=asked, validation=asked, num_users=2, num_items=4, settings=PREP_BIAS_SETTINGS
    )
    assert base.mean == pytest.approx(3.4)
    np.testing.assert_allclose(base.values, on_test[:, 2], rtol=0, atol=1e-6)  # column 2: user bias


def test_no_train_row_has_no_base() -> None:
    with pytest.raises(ValueError, match="no train rows to fit the user-bias base on"):
        customer_base([], [], [], num_users=2, num_items=4)
