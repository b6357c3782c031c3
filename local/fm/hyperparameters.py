"""SageMaker Factorization Machines' hyperparameters, as the local trainer reads them: the algorithm's names
(contract.algorithms), defaults and ranges."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from contract.algorithms import FM_ALL_HYPERPARAMETERS
from local.hyperparameters import HyperparameterError, HyperparameterReader

__all__ = [
    "ADAM_EPS",
    "ALGORITHM",
    "BINARY_CLASSIFIER",
    "PREDICTOR_TYPES",
    "REGRESSOR",
    "FmHyperparameters",
    "Initializer",
    "fm_hyperparameters",
]

Floats = npt.NDArray[np.floating[Any]]

ALGORITHM = "Factorization Machines"
ADAM_EPS = 1e-8  # MXNet's Adam default, used when eps is not set
GROUPS = ("bias", "linear", "factors")
BINARY_CLASSIFIER = "binary_classifier"
REGRESSOR = "regressor"
PREDICTOR_TYPES = (BINARY_CLASSIFIER, REGRESSOR)
"""regressor: squared loss on real labels; binary_classifier: logistic loss on labels 0 and 1, scored by
the sigmoid (https://docs.aws.amazon.com/sagemaker/latest/dg/fact-machines-howitworks.html)."""


@dataclass(frozen=True)
class Initializer:
    """How one parameter group starts: normal(0, sigma), uniform(-scale, scale) or the constant value."""

    method: str
    sigma: float
    scale: float | None = None
    value: float | None = None

    def sample(
        self, rng: np.random.Generator, shape: tuple[int, ...], dtype: type[np.floating[Any]]
    ) -> Floats:
        if self.method == "normal":
            out: Floats = rng.standard_normal(shape, dtype=dtype)
            out *= self.sigma
            return out
        if self.method == "uniform":
            assert self.scale is not None  # fm_hyperparameters requires it
            uniform: Floats = rng.random(shape, dtype=dtype)
            uniform *= 2 * self.scale
            uniform -= self.scale
            return uniform
        assert self.value is not None  # fm_hyperparameters requires it
        return np.full(shape, self.value, dtype=dtype)


@dataclass(frozen=True)
class FmHyperparameters:
    """The algorithm's hyperparameters, checked and with its defaults filled in."""

    feature_dim: int
    num_factors: int
    predictor_type: str = REGRESSOR
    epochs: int = 1
    mini_batch_size: int = 1000
    clip_gradient: float | None = None
    eps: float = ADAM_EPS
    rescale_grad: float | None = None  # None: 1 / mini_batch_size
    bias_lr: float = 0.1
    linear_lr: float = 0.001
    factors_lr: float = 0.0001
    bias_wd: float = 0.01
    linear_wd: float = 0.001
    factors_wd: float = 0.00001
    bias_init: Initializer = field(default_factory=lambda: Initializer("normal", 0.01))
    linear_init: Initializer = field(default_factory=lambda: Initializer("normal", 0.01))
    factors_init: Initializer = field(default_factory=lambda: Initializer("normal", 0.001))

    def as_dict(self) -> dict[str, object]:
        """Under the algorithm's names (every one of contract.algorithms.FM_ALL_HYPERPARAMETERS), with every
        default written out (None: not set)."""
        out: dict[str, object] = {
            "feature_dim": self.feature_dim,
            "num_factors": self.num_factors,
            "predictor_type": self.predictor_type,
            "epochs": self.epochs,
            "mini_batch_size": self.mini_batch_size,
            "clip_gradient": self.clip_gradient,
            "eps": self.eps,
            "rescale_grad": self.rescale_grad,
        }
        for group in GROUPS:
            out[f"{group}_lr"] = getattr(self, f"{group}_lr")
            out[f"{group}_wd"] = getattr(self, f"{group}_wd")
            init: Initializer = getattr(self, f"{group}_init")
            out[f"{group}_init_method"] = init.method
            out[f"{group}_init_sigma"] = init.sigma
            out[f"{group}_init_scale"] = init.scale
            out[f"{group}_init_value"] = init.value
        return out


_DEFAULTS = FmHyperparameters(feature_dim=1, num_factors=1)


def _initializer(reader: HyperparameterReader, group: str, default_sigma: float) -> Initializer:
    method = reader.choice(f"{group}_init_method", "normal", ("normal", "uniform", "constant"))
    sigma = reader.number(f"{group}_init_sigma", default_sigma, minimum=0.0)
    scale = reader.optional_number(f"{group}_init_scale", minimum=0.0)
    value = reader.optional_number(f"{group}_init_value")
    if method == "uniform" and scale is None:
        raise HyperparameterError(
            f"{ALGORITHM} hyperparameter {group}_init_scale is required when {group}_init_method is uniform"
        )
    if method == "constant" and value is None:
        raise HyperparameterError(
            f"{ALGORITHM} hyperparameter {group}_init_value is required when {group}_init_method is constant"
        )
    return Initializer(method, sigma, scale, value)


def fm_hyperparameters(values: Mapping[str, object]) -> FmHyperparameters:
    """Check a SageMaker Factorization Machines hyperparameter dictionary and fill in the defaults.

    feature_dim, num_factors and predictor_type (regressor or binary_classifier) are required, as in
    SageMaker. Types are JSON types (int for
    integers, int or float for numbers, str for choices); learning rates, weight decays, sigmas and scales
    must be non-negative; eps, clip_gradient and rescale_grad positive. Raises HyperparameterError naming
    the key.
    """
    r = HyperparameterReader(ALGORITHM, values, FM_ALL_HYPERPARAMETERS)
    predictor_type = r.choice("predictor_type", None, PREDICTOR_TYPES)
    d = _DEFAULTS
    return FmHyperparameters(
        feature_dim=r.integer("feature_dim", None, minimum=1),
        num_factors=r.integer("num_factors", None, minimum=1),
        predictor_type=predictor_type,
        epochs=r.integer("epochs", d.epochs, minimum=1),
        mini_batch_size=r.integer("mini_batch_size", d.mini_batch_size, minimum=1),
        clip_gradient=r.optional_number("clip_gradient", above=0.0),
        eps=r.number("eps", d.eps, above=0.0),
        rescale_grad=r.optional_number("rescale_grad", above=0.0),
        bias_lr=r.number("bias_lr", d.bias_lr, minimum=0.0),
        linear_lr=r.number("linear_lr", d.linear_lr, minimum=0.0),
        factors_lr=r.number("factors_lr", d.factors_lr, minimum=0.0),
        bias_wd=r.number("bias_wd", d.bias_wd, minimum=0.0),
        linear_wd=r.number("linear_wd", d.linear_wd, minimum=0.0),
        factors_wd=r.number("factors_wd", d.factors_wd, minimum=0.0),
        bias_init=_initializer(r, "bias", d.bias_init.sigma),
        linear_init=_initializer(r, "linear", d.linear_init.sigma),
        factors_init=_initializer(r, "factors", d.factors_init.sigma),
    )
