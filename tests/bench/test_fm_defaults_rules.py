"""bench/fm_defaults.py's data-size rules: mini_batch_size from the run's train rows and a number of steps."""

from __future__ import annotations

import pytest

from bench.fm_defaults import rules

BASE = {"num_factors": 64, "epochs": 3, "mini_batch_size": 1000, "linear_lr": 0.01}


def test_a_rule_sets_the_batch_from_the_train_rows_and_keeps_the_rest() -> None:
    # 80,000 rows: 800 steps an epoch -> batches of 100, 100 steps -> 800; 3 rows in 800 steps -> at least 1.
    got = rules(BASE, ["steps=800,100", "epochs=4,6"], 80_000, scale_lr=False)
    assert got["steps 800, epochs 4"] == {**BASE, "mini_batch_size": 100, "epochs": 4}
    assert got["steps 100, epochs 6"] == {**BASE, "mini_batch_size": 800, "epochs": 6}
    assert len(got) == 4
    assert rules(BASE, ["steps=800"], 3, scale_lr=False)["steps 800, epochs 3"]["mini_batch_size"] == 1


def test_a_scaled_rule_scales_every_learning_rate_with_the_batch_sagemakers_defaults_included() -> None:
    # Batches of 100 instead of 1000: linear_lr 0.01 -> 0.001, bias_lr 0.1 -> 0.01, factors_lr 1e-4 -> 1e-5.
    table = rules(BASE, ["steps=800"], 80_000, scale_lr=True)["steps 800, epochs 3, lr scaled"]
    assert table["mini_batch_size"] == 100
    assert table["linear_lr"] == pytest.approx(0.001)
    assert table["bias_lr"] == pytest.approx(0.01)
    assert table["factors_lr"] == pytest.approx(1e-5)


def test_a_rule_without_steps_or_with_an_unknown_key_is_refused() -> None:
    with pytest.raises(SystemExit, match="needs steps"):
        rules(BASE, ["epochs=4"], 80_000, scale_lr=False)
    with pytest.raises(SystemExit, match="'batch=4'"):
        rules(BASE, ["batch=4"], 80_000, scale_lr=False)
