"""The local stand-in for SageMaker's Factorization Machines (regressor and binary classifier): numpy/scipy,
one process.

    python -m local.fm --prep runs/x/prep --output runs/x/fm \\
        --hyperparameters '{"feature_dim": 178730, "num_factors": 256, "predictor_type": "regressor"}'

The model is the algorithm's: y = w0 + sum_i w_i x_i + sum_{i<j} <v_i, v_j> x_i x_j, trained on the RecordIO
shards prep wrote (prep/train/, prep/test/) with the algorithm's hyperparameter names, defaults and meanings;
the output is fm/model.tar.gz in the algorithm's own layout (fm.artifact) and fm/metrics.json.

- hyperparameters: the algorithm's hyperparameters, checked, with its defaults.
- model: the parameters (fm.artifact.FmParameters), the model file, the scores.
- training: gradients, lazy Adam, the training loop, the prep channels in and the artifact out.
- cli: ``python -m local.fm``.
"""

from local.fm.hyperparameters import FmHyperparameters, Initializer, fm_hyperparameters
from local.fm.model import MODEL_FILE, FmParameters, binary_outputs, load_model, predict, save_model
from local.fm.training import (
    METRICS_FILE,
    FmGradients,
    FmProgress,
    FmResult,
    binary_metrics,
    fm_display,
    fm_gradients,
    read_shards,
    records_binary_metrics,
    records_rmse,
    train_fm,
    train_from_prep,
)

__all__ = [
    "METRICS_FILE",
    "MODEL_FILE",
    "FmGradients",
    "FmHyperparameters",
    "FmParameters",
    "FmProgress",
    "FmResult",
    "Initializer",
    "binary_metrics",
    "binary_outputs",
    "fm_display",
    "fm_gradients",
    "fm_hyperparameters",
    "load_model",
    "predict",
    "read_shards",
    "records_binary_metrics",
    "records_rmse",
    "save_model",
    "train_fm",
    "train_from_prep",
]
