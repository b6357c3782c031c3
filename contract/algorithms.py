"""The two models loftrec trains and serves: their keys, the names of their SageMaker resources, and the
hyperparameter names of the built-in algorithms (the CDK configuration, the run's input validation and the
local trainers all read these lists).
"""

from __future__ import annotations

import hashlib
from typing import Final, Literal, TypedDict

ModelKey = Literal["fm", "blazingtext"]
FM: Final = "fm"
BLAZINGTEXT: Final = "blazingtext"
MODELS: tuple[ModelKey, ...] = (FM, BLAZINGTEXT)
LABELS: dict[str, str] = {FM: "FM", BLAZINGTEXT: "BlazingText"}
"""How the console and the notifications name each model."""

RESOURCE_PREFIX = "loftrec"
ENDPOINT_NAMES: dict[str, str] = {FM: "loftrec-fm", BLAZINGTEXT: "loftrec-blazingtext"}
"""Fixed endpoint names: the pipeline creates and updates them blue/green; the record names them too."""
VARIANT_NAME = "AllTraffic"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"


def scalable_resource_id(endpoint_name: str) -> str:
    """Application Auto Scaling's resource id of an endpoint's variant."""
    return f"endpoint/{endpoint_name}/variant/{VARIANT_NAME}"


class ResourceNames(TypedDict):
    prep: str
    fm: str
    blazingtext: str
    fm_model: str
    blazingtext_model: str
    fm_config: str
    blazingtext_config: str
    fm_test_predictions: str
    """The Batch Transform job that predicts the test rows with the candidate FM (the quality gate's)."""
    recommend: str
    """The Processing job that writes the batch recommendations."""
    fm_tuning: str
    """The hyperparameter tuning job of FM (at most 32 characters: TUNING_JOB_NAME_MAX)."""


TUNING_JOB_NAME_MAX = 32
"""SageMaker's limit on a hyperparameter tuning job's name (API_CreateHyperParameterTuningJob.html)."""


def resource_names(run_id: str) -> ResourceNames:
    """The SageMaker resources one run creates (each within SageMaker's 63 characters for a run id of at
    most 40): the prep job, the two training jobs, the two models, the two endpoint configurations, the
    test rows' Batch Transform job, the batch recommendations' Processing job, and FM's tuning job (32)."""
    prefix = f"{RESOURCE_PREFIX}-{run_id}"
    return {
        "prep": f"{prefix}-prep",
        "fm": f"{prefix}-fm",
        "blazingtext": f"{prefix}-bt",
        "fm_model": f"{prefix}-fm",
        "blazingtext_model": f"{prefix}-bt",
        "fm_config": f"{prefix}-fm-config",
        "blazingtext_config": f"{prefix}-bt-config",
        "fm_test_predictions": f"{prefix}-fm-test",
        "recommend": f"{prefix}-recommend",
        "fm_tuning": tuning_job_name(run_id),
    }


def tuning_job_name(run_id: str) -> str:
    """loftrec-<the run id's first 15 characters (its start time)>-<6 hex digits of its hash>: unique per
    run within SageMaker's 32 characters; its training jobs are named after it (<name>-NNN-<hash>)."""
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:6]
    return f"{RESOURCE_PREFIX}-{run_id[:15].rstrip('-')}-{digest}"


def resource_pattern() -> str:
    """The name pattern of every SageMaker resource a run creates, as IAM grants name it."""
    return f"{RESOURCE_PREFIX}-*"


# SageMaker Factorization Machines (fact-machines-hyperparameters).
FM_HYPERPARAMETERS = frozenset(
    {
        "num_factors",
        "epochs",
        "mini_batch_size",
        "bias_lr",
        "linear_lr",
        "factors_lr",
        "bias_wd",
        "linear_wd",
        "factors_wd",
        "bias_init_method",
        "bias_init_sigma",
        "bias_init_scale",
        "bias_init_value",
        "linear_init_method",
        "linear_init_sigma",
        "linear_init_scale",
        "linear_init_value",
        "factors_init_method",
        "factors_init_sigma",
        "factors_init_scale",
        "factors_init_value",
        "clip_gradient",
        "eps",
        "rescale_grad",
    }
)
FM_RESERVED = frozenset({"feature_dim", "predictor_type"})
"""Set by the pipeline, never by configuration: feature_dim comes from the run's manifest, and loftrec
predicts ratings (predictor_type regressor)."""
FM_ALL_HYPERPARAMETERS = FM_HYPERPARAMETERS | FM_RESERVED

# SageMaker BlazingText in Word2Vec mode (blazingtext_hyperparameters: Word2Vec Hyperparameters); the
# supervised mode (text classification, with word_ngrams and early_stopping) trains a classifier, which gives
# no word vectors to serve.
BLAZINGTEXT_HYPERPARAMETERS = frozenset(
    {
        "mode",
        "epochs",
        "min_count",
        "sampling_threshold",
        "learning_rate",
        "window_size",
        "vector_dim",
        "negative_samples",
        "min_char",
        "max_char",
        "subwords",
        "evaluation",
        "batch_size",
        "buckets",
    }
)
BLAZINGTEXT_MODES = frozenset({"skipgram", "cbow", "batch_skipgram"})
