"""The hyperparameter names of the SageMaker built-in algorithms that loftrec trains.

Shared by the CDK configuration (stacks/config.py), the run's input validation and the local trainers, so
that a name means the same thing everywhere.
"""

from __future__ import annotations

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
# Set by the pipeline, never by configuration: feature_dim comes from the run's manifest, and loftrec
# predicts ratings.
FM_RESERVED = frozenset({"feature_dim", "predictor_type"})

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
        "word_ngrams",
        "buckets",
    }
)
BLAZINGTEXT_MODES = frozenset({"skipgram", "cbow", "batch_skipgram"})
