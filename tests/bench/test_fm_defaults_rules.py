"""bench/fm_defaults.py's data-size rules: mini_batch_size from the run's train rows and a number of steps."""

from __future__ import annotations

from typing import Any

import pytest

from bench.fm_defaults import CANDIDATES, by_rows_per_customer, rules

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


def manifest(train_rows: int, customers: int) -> dict[str, Any]:
    return {"counts": {"train_rows": train_rows}, "num_customers": customers}


def test_by_rows_per_customer_picks_the_dense_table_from_25_train_rows_a_customer() -> None:
    # The bundled MovieLens slice: 79,896 rows for 610 customers (131 each); the notebook's scale: 901,721
    # for 141,390 (6.4 each); 25 each is the switch.
    assert by_rows_per_customer(manifest(79_896, 610)) == CANDIDATES["256-factors-10-epochs"]
    assert by_rows_per_customer(manifest(901_721, 141_390)) == CANDIDATES["bias-init-4-epochs"]
    assert by_rows_per_customer(manifest(2_500, 100)) == CANDIDATES["256-factors-10-epochs"]
    assert by_rows_per_customer(manifest(2_499, 100)) == CANDIDATES["bias-init-4-epochs"]
