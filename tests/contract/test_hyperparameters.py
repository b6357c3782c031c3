"""One set of hyperparameter checks for synth and run time, and the strings SageMaker gets."""

from __future__ import annotations

import re

import pytest

from contract.hyperparameters import (
    HyperparameterError,
    check_blazingtext,
    check_blazingtext_instance_count,
    check_fm,
    sagemaker_strings,
)


def test_valid_tables_pass_and_booleans_are_sent_as_the_sdk_sends_them() -> None:
    fm = check_fm({"num_factors": 64, "epochs": "5", "factors_lr": 0.001, "bias_init_method": "normal"})
    assert sagemaker_strings(fm) == {
        "num_factors": "64",
        "epochs": "5",
        "factors_lr": "0.001",
        "bias_init_method": "normal",
    }
    bt = check_blazingtext({"mode": "skipgram", "subwords": "true", "evaluation": False, "min_count": 0})
    assert bt["subwords"] is True
    assert sagemaker_strings(bt) == {
        "mode": "skipgram",
        "subwords": "True",
        "evaluation": "False",
        "min_count": "0",
    }


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"feature_dim": 10},
            "fm_hyperparameters.feature_dim=10 is not allowed: nothing: the pipeline sets it",
        ),
        ({"predictor_type": "binary_classifier"}, "fm_hyperparameters.predictor_type='binary_classifier'"),
        ({"num_factor": 8}, "fm_hyperparameters.num_factor=8 is not allowed: one of bias_init_method"),
        ({"epochs": 0}, "fm_hyperparameters.epochs=0 is not allowed: an integer >= 1"),
        ({"epochs": 2.5}, "fm_hyperparameters.epochs=2.5 is not allowed: an integer >= 1"),
        ({"mini_batch_size": True}, "fm_hyperparameters.mini_batch_size=True is not allowed: an integer"),
        ({"factors_lr": -0.1}, "fm_hyperparameters.factors_lr=-0.1 is not allowed: a number >= 0"),
        ({"linear_lr": "fast"}, "fm_hyperparameters.linear_lr='fast' is not allowed: a number >= 0"),
        ({"eps": 0}, "fm_hyperparameters.eps=0 is not allowed: a number > 0"),
        ({"bias_init_method": "zeros"}, "fm_hyperparameters.bias_init_method='zeros' is not allowed: one of"),
        ({"bias_init_method": "uniform"}, "is not allowed: uniform only with bias_init_scale"),
        ({"epochs": [3]}, "fm_hyperparameters.epochs=[3] is not allowed: a string, number or boolean"),
    ],
)
def test_fm_refusals_name_the_entry(table: dict[str, object], message: str) -> None:
    with pytest.raises(HyperparameterError, match=re.escape(message)):
        check_fm(table)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"mode": "supervised"}, "blazingtext_hyperparameters.mode='supervised' is not allowed: one of"),
        ({"word_ngrams": 2}, "blazingtext_hyperparameters.word_ngrams=2 is not allowed: one of batch_size"),
        ({"early_stopping": True}, "blazingtext_hyperparameters.early_stopping=True is not allowed"),
        ({"vector_dim": 1001}, "blazingtext_hyperparameters.vector_dim=1001 is not allowed: an integer >= 1"),
        ({"min_count": -1}, "blazingtext_hyperparameters.min_count=-1 is not allowed: an integer >= 0"),
        ({"sampling_threshold": 1.5}, "sampling_threshold=1.5 is not allowed: a fraction in (0, 1)"),
        ({"learning_rate": 0}, "blazingtext_hyperparameters.learning_rate=0 is not allowed: a number > 0"),
        ({"batch_size": 11}, "batch_size=11 is not allowed: only with mode batch_skipgram"),
        ({"mode": "batch_skipgram", "batch_size": 30}, "batch_size=30 is not allowed: an integer >= 10"),
        ({"subwords": "yes"}, "blazingtext_hyperparameters.subwords='yes' is not allowed: true or false"),
        ({"min_char": 7}, "blazingtext_hyperparameters.min_char=7 is not allowed: at most max_char"),
        ({"mode": "batch_skipgram", "subwords": True}, "subwords=True is not allowed: false with mode batch"),
    ],
)
def test_blazingtext_refusals_name_the_entry(table: dict[str, object], message: str) -> None:
    with pytest.raises(HyperparameterError, match=re.escape(message)):
        check_blazingtext(table)


def test_the_table_name_is_the_callers() -> None:
    with pytest.raises(HyperparameterError, match=re.escape("overrides.epochs=0 is not allowed")):
        check_fm({"epochs": 0}, table="overrides")


@pytest.mark.parametrize(
    ("count", "mode", "expected"),
    [(1, "skipgram", 1), ("1", "cbow", 1), (8, "batch_skipgram", 8), (" 64 ", "batch_skipgram", 64)],
)
def test_blazingtext_distributes_only_in_batch_skipgram(count: object, mode: str, expected: int) -> None:
    assert check_blazingtext_instance_count(count, mode) == expected


@pytest.mark.parametrize(
    ("count", "mode", "message"),
    [
        (2, "skipgram", "blazingtext_instance_count=2 is not allowed: an integer >= 1 and <= 1"),
        (0, "batch_skipgram", "blazingtext_instance_count=0 is not allowed: an integer >= 1 and <= 64"),
        (65, "batch_skipgram", "blazingtext_instance_count=65 is not allowed: an integer >= 1 and <= 64"),
        (True, "skipgram", "blazingtext_instance_count=True is not allowed: an integer >= 1 and <= 1"),
        ("+-2", "skipgram", "blazingtext_instance_count='+-2' is not allowed: an integer >= 1 and <= 1"),
    ],
)
def test_other_instance_counts_are_refused_naming_the_limit(count: object, mode: str, message: str) -> None:
    with pytest.raises(HyperparameterError, match=re.escape(message)):
        check_blazingtext_instance_count(count, mode)
