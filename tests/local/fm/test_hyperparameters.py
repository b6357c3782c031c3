"""SageMaker Factorization Machines' hyperparameters as the local trainer reads them."""

from __future__ import annotations

import dataclasses

import pytest

from contract.algorithms import FM_ALL_HYPERPARAMETERS
from local.fm import FmHyperparameters, Initializer, fm_hyperparameters
from local.hyperparameters import HyperparameterError
from tests.local.fm.fm_support import REQUIRED


def test_defaults_are_the_sagemaker_algorithms() -> None:
    hp = fm_hyperparameters({"feature_dim": 178730, "num_factors": 256, "predictor_type": "regressor"})
    assert hp == FmHyperparameters(
        feature_dim=178730,
        num_factors=256,
        predictor_type="regressor",
        epochs=1,
        mini_batch_size=1000,
        clip_gradient=None,
        eps=1e-8,
        rescale_grad=None,
        bias_lr=0.1,
        linear_lr=0.001,
        factors_lr=0.0001,
        bias_wd=0.01,
        linear_wd=0.001,
        factors_wd=0.00001,
        bias_init=Initializer("normal", 0.01),
        linear_init=Initializer("normal", 0.01),
        factors_init=Initializer("normal", 0.001),
    )
    assert hp.as_dict()["factors_init_sigma"] == 0.001


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"num_factor": 4}, "unknown Factorization Machines hyperparameter 'num_factor'"),
        ({"feature_dim": None}, "'feature_dim' must be an integer, got None"),
        ({"num_factors": "64"}, "'num_factors' must be an integer, got '64' \\(str\\)"),
        ({"epochs": True}, "'epochs' must be an integer, got True \\(bool\\)"),
        ({"epochs": 0}, "'epochs' must be at least 1, got 0"),
        ({"mini_batch_size": 2.0}, "'mini_batch_size' must be an integer"),
        ({"bias_lr": -0.1}, "'bias_lr' must be at least 0.0, got -0.1"),
        ({"factors_wd": "0.1"}, "'factors_wd' must be a number, got '0.1'"),
        ({"linear_lr": float("nan")}, "'linear_lr' must be finite"),
        ({"eps": 0}, "'eps' must be greater than 0.0, got 0"),
        ({"clip_gradient": -1.0}, "'clip_gradient' must be greater than 0.0"),
        ({"predictor_type": "classifier"}, "'predictor_type' must be one of binary_classifier, regressor"),
        ({"factors_init_method": "xavier"}, "'factors_init_method' must be one of normal, uniform, constant"),
        ({"bias_init_method": "uniform"}, "bias_init_scale is required when bias_init_method is uniform"),
        (
            {"linear_init_method": "constant"},
            "linear_init_value is required when linear_init_method is constant",
        ),
    ],
)
def test_bad_hyperparameters_are_named(change: dict[str, object], message: str) -> None:
    with pytest.raises(HyperparameterError, match=message):
        fm_hyperparameters({**REQUIRED, **change})


@pytest.mark.parametrize("missing", ["feature_dim", "num_factors", "predictor_type"])
def test_required_hyperparameters(missing: str) -> None:
    with pytest.raises(HyperparameterError, match=f"'{missing}' is required"):
        fm_hyperparameters({k: v for k, v in REQUIRED.items() if k != missing})


def test_the_trainer_knows_every_name_of_the_contract_and_no_other() -> None:
    hp = fm_hyperparameters(REQUIRED)
    assert set(hp.as_dict()) == FM_ALL_HYPERPARAMETERS
    # Every field of the dataclass is written out under one or more of those names.
    fields = {f.name for f in dataclasses.fields(FmHyperparameters)}
    assert {
        name.rsplit("_init", 1)[0] + "_init" if "_init_" in name else name for name in hp.as_dict()
    } == fields
    for name in FM_ALL_HYPERPARAMETERS - {"feature_dim", "num_factors", "predictor_type"}:
        value: object = "normal" if name.endswith("_method") else 1
        fm_hyperparameters({**REQUIRED, name: value})  # accepted, not an unknown key
