"""The baselines the quality gate holds FM against, on the same test rows.

- global mean: predict the mean training rating for everyone.
- bias: rating ~ mu + b_user + b_item, the biases fitted on train by alternating regularized least squares
  (each sweep solves every user bias given the item biases, then every item bias given the user biases,
  in closed form: b_u = sum(r - mu - b_i) / (reg_user + n_u)). A user or item absent from train keeps a
  bias of 0. Predictions are clipped to the rating range, as any sensible model's would be.
Default regularization as in Koren's baseline predictors (reg_item 25, reg_user 10).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contract.documents import Baselines
from contract.features import RATING_RANGE


@dataclass(frozen=True)
class BiasSettings:
    reg_user: float = 10.0
    reg_item: float = 25.0
    sweeps: int = 5


def rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    diff = predicted.astype(np.float64) - actual.astype(np.float64)
    return float(np.sqrt(np.mean(diff * diff)))


def fit_biases(
    user: np.ndarray,
    item: np.ndarray,
    rating: np.ndarray,
    *,
    num_users: int,
    num_items: int,
    settings: BiasSettings,
) -> tuple[float, np.ndarray, np.ndarray]:
    """(mu, user biases, item biases) fitted on the given rows."""
    r = rating.astype(np.float64)
    mu = float(r.mean())
    n_user = np.bincount(user, minlength=num_users)
    n_item = np.bincount(item, minlength=num_items)
    b_user = np.zeros(num_users)
    b_item = np.zeros(num_items)
    user_den = settings.reg_user + n_user
    item_den = settings.reg_item + n_item
    for _ in range(settings.sweeps):
        user_sum = np.bincount(user, weights=r - mu - b_item[item], minlength=num_users)
        b_user = np.divide(user_sum, user_den, out=np.zeros(num_users), where=user_den > 0)
        item_sum = np.bincount(item, weights=r - mu - b_user[user], minlength=num_items)
        b_item = np.divide(item_sum, item_den, out=np.zeros(num_items), where=item_den > 0)
    return mu, b_user, b_item


def compute_baselines(
    *,
    train_user: np.ndarray,
    train_item: np.ndarray,
    train_rating: np.ndarray,
    test_user: np.ndarray,
    test_item: np.ndarray,
    test_rating: np.ndarray,
    num_users: int,
    num_items: int,
    settings: BiasSettings = BiasSettings(),
) -> Baselines:
    """Both baselines' test RMSE and parameters, as the manifest records them."""
    low, high = RATING_RANGE
    mu, b_user, b_item = fit_biases(
        train_user, train_item, train_rating, num_users=num_users, num_items=num_items, settings=settings
    )
    predicted = np.clip(mu + b_user[test_user] + b_item[test_item], low, high)
    return {
        "global_mean": {"value": mu, "rmse": rmse(np.full(len(test_rating), mu), test_rating)},
        "bias": {
            "rmse": rmse(predicted, test_rating),
            "reg_user": settings.reg_user,
            "reg_item": settings.reg_item,
            "sweeps": settings.sweeps,
            "clipped_to": [low, high],
        },
    }
