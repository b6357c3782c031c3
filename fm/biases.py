"""The regularized bias model, rating ~ mu + b_user + b_item: prep's baselines and the cold start's base.

The biases are fitted by alternating regularized least squares: each sweep solves every user bias given the
item biases, then every item bias given the user biases, in closed form, b_u = sum(r - mu - b_i) / (reg_user
+ n_u). A user or item without rows keeps a bias of 0. Default regularization as in Koren's baseline
predictors (reg_item 25, reg_user 10).

`customer_base` is that fit's user-bias prediction without clipping, mu + b_u per customer: what the bias
model says of a product it never saw, the rating a cold start is shrunk toward (fm/coldstart.py). The prep
job's "user-bias" baseline is the same number clipped to the rating range.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["PREP_BIAS_SETTINGS", "BiasSettings", "CustomerBase", "customer_base", "fit_biases"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class BiasSettings:
    reg_user: float = 10.0
    reg_item: float = 25.0
    sweeps: int = 5


PREP_BIAS_SETTINGS = BiasSettings()
"""The settings the prep job fits its baselines with, and the export step its customer base."""


def fit_biases(
    user: npt.ArrayLike,
    item: npt.ArrayLike,
    rating: npt.ArrayLike,
    *,
    num_users: int,
    num_items: int,
    settings: BiasSettings,
) -> tuple[float, F64, F64]:
    """(mu, user biases, item biases) fitted on the given rows (user keys 0..N-1, item keys 0..M-1)."""
    users = np.asarray(user, np.int64)
    items = np.asarray(item, np.int64)
    r = np.asarray(rating, np.float64)
    mu = float(r.mean())
    n_user = np.bincount(users, minlength=num_users)
    n_item = np.bincount(items, minlength=num_items)
    b_user: F64 = np.zeros(num_users)
    b_item: F64 = np.zeros(num_items)
    user_den = settings.reg_user + n_user
    item_den = settings.reg_item + n_item
    for _ in range(settings.sweeps):
        user_sum = np.bincount(users, weights=r - mu - b_item[items], minlength=num_users)
        b_user = np.divide(user_sum, user_den, out=np.zeros(num_users), where=user_den > 0)
        item_sum = np.bincount(items, weights=r - mu - b_user[users], minlength=num_items)
        b_item = np.divide(item_sum, item_den, out=np.zeros(num_items), where=item_den > 0)
    return mu, b_user, b_item


@dataclass(frozen=True)
class CustomerBase:
    """The user-bias prediction per customer, unclipped: values[u] = mu + b_u; an unknown customer's is mu."""

    mean: float
    """mu: the mean train rating."""
    values: F32
    """(N,) mu + b_u, float32 (serving/fm/customer_base.npy)."""


def customer_base(
    user: npt.ArrayLike,
    item: npt.ArrayLike,
    rating: npt.ArrayLike,
    *,
    num_users: int,
    num_items: int,
    settings: BiasSettings = PREP_BIAS_SETTINGS,
) -> CustomerBase:
    """The bias model fitted on these rows (the train rows), its user side kept: mu + b_u. ValueError when
    there is no row (no mean rating to start from)."""
    if np.asarray(rating).shape[0] == 0:
        raise ValueError("no train rows to fit the user-bias base on")
    mu, b_user, _ = fit_biases(
        user, item, rating, num_users=num_users, num_items=num_items, settings=settings
    )
    return CustomerBase(mean=mu, values=(mu + b_user).astype(np.float32))
