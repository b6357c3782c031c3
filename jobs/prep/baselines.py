"""The baselines the quality gate holds FM against, on the same rows.

- global mean: predict the mean training rating for everyone.
- bias: rating ~ mu + b_user + b_item, the biases fitted on train (fm.biases.fit_biases: alternating
  regularized least squares; a user or item absent from train keeps a bias of 0). Predictions are clipped
  to the rating range, as any sensible model's would be.
- user bias: mu + b_user of that same fit, without the item term, clipped: what the bias model says of a
  product it never saw, the baseline of the cold start and the base it is shrunk toward (the "Export FM
  factors" step fits the same model on the same train rows with the same settings: fm.biases.customer_base).

All three are fitted once, on the train rows: the validation rows' predictions and the test rows' come
from the same fit, as the candidate FM is trained on the train rows only (refitting the baselines on train
+ validation for the test rows would hand them rows FM never saw). The job writes every prediction, row by
row in the shards' order (layout.BASELINES_TEST, BASELINES_VALIDATION, columns BASELINE_COLUMNS), so that
the gate and the report compare models on the same rows.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from contract.documents import BASELINE_COLUMNS, Baselines
from contract.features import RATING_RANGE
from fm.biases import PREP_BIAS_SETTINGS, BiasSettings, fit_biases
from fm.metrics import rmse

__all__ = ["BiasSettings", "Rows", "compute_baselines", "fit_biases", "predict_baselines"]


class Rows(NamedTuple):
    """Some rows' user keys 0..N-1, item keys 0..M-1 and ratings."""

    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray


def _rmse_or_none(predicted: np.ndarray, actual: np.ndarray) -> float | None:
    return rmse(predicted, actual) if len(actual) else None


def predict_baselines(
    mu: float, b_user: np.ndarray, b_item: np.ndarray, user: np.ndarray, item: np.ndarray
) -> np.ndarray:
    """(rows, 3) float64: each row's global mean, bias and user-bias predictions (BASELINE_COLUMNS)."""
    low, high = RATING_RANGE
    predicted = np.empty((len(user), len(BASELINE_COLUMNS)), dtype=np.float64)
    predicted[:, 0] = mu
    predicted[:, 1] = np.clip(mu + b_user[user] + b_item[item], low, high)
    predicted[:, 2] = np.clip(mu + b_user[user], low, high)
    return predicted


def compute_baselines(
    *,
    train: Rows,
    test: Rows,
    validation: Rows,
    num_users: int,
    num_items: int,
    settings: BiasSettings = PREP_BIAS_SETTINGS,
) -> tuple[Baselines, np.ndarray, np.ndarray]:
    """The baselines fitted on train: their test and validation RMSE and parameters, as the manifest
    records them, and their predictions for the test and the validation rows (predict_baselines)."""
    mu, b_user, b_item = fit_biases(
        train.user, train.item, train.rating, num_users=num_users, num_items=num_items, settings=settings
    )
    on_test = predict_baselines(mu, b_user, b_item, test.user, test.item)
    on_validation = predict_baselines(mu, b_user, b_item, validation.user, validation.item)

    def scores(column: int) -> tuple[float, float | None]:
        return (
            rmse(on_test[:, column], test.rating),
            _rmse_or_none(on_validation[:, column], validation.rating),
        )

    (mean_rmse, mean_validation), (bias_rmse, bias_validation), (user_rmse, user_validation) = (
        scores(c) for c in range(len(BASELINE_COLUMNS))
    )
    baselines: Baselines = {
        "global_mean": {"value": mu, "rmse": mean_rmse, "validation_rmse": mean_validation},
        "bias": {
            "rmse": bias_rmse,
            "validation_rmse": bias_validation,
            "reg_user": settings.reg_user,
            "reg_item": settings.reg_item,
            "sweeps": settings.sweeps,
            "clipped_to": list(RATING_RANGE),
        },
        "user_bias": {"rmse": user_rmse, "validation_rmse": user_validation},
        "fitted_on": "train",
    }
    return baselines, on_test, on_validation
