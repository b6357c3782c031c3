"""--tune: the search space read and checked, values drawn on their scales from a seed, and the search scored
on the validation rows alone, the best trial taken."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from local.pipeline import PipelineError
from local.pipeline.cli import run_arguments
from local.pipeline.records import write_channel
from local.pipeline.start import load_defaults
from local.pipeline.tuning import DEFAULT_RANGES, DEFAULT_TRIALS, check_ranges, draw, tune, tuning_space
from tests.local.pipeline.pipeline_support import rows

RANGES = {
    "factors_lr": {"type": "continuous", "min": 1e-4, "max": 1.0, "scaling": "Logarithmic"},
    "epochs": {"type": "integer", "min": 1, "max": 3, "scaling": "Linear"},
}


def test_the_space_is_cdk_jsons_fm_tuning_ranges_when_present() -> None:
    context = {"fm_tuning": {"enabled": False, "max_jobs": 5, "max_parallel_jobs": 2, "ranges": RANGES}}
    assert tuning_space(context) == (RANGES, 5, "cdk.json fm_tuning.ranges")
    ranges, trials, source = tuning_space({})
    assert (ranges, trials) == (DEFAULT_RANGES, DEFAULT_TRIALS) and "built-in" in source


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "float", "min": 0.1, "max": 1, "scaling": "Linear"}, r"x\.type is 'float'"),
        ({"type": "continuous", "min": 1, "max": 0.1, "scaling": "Linear"}, r"x: min 1 and max 0\.1"),
        ({"type": "continuous", "min": 0, "max": 1, "scaling": "Logarithmic"}, r"x: Logarithmic .* min > 0"),
        ({"type": "integer", "min": 1, "max": 3, "scaling": "Sideways"}, r"x\.scaling is 'Sideways'"),
    ],
)
def test_a_bad_range_is_one_error_naming_it(spec: dict[str, object], message: str) -> None:
    with pytest.raises(PipelineError, match=r"^ranges\." + message):
        check_ranges({"x": spec}, "ranges")


def test_values_are_drawn_on_their_scale_inside_the_range() -> None:
    rng = np.random.default_rng(0)
    drawn = [draw(RANGES, rng) for _ in range(2000)]
    rates = np.array([d["factors_lr"] for d in drawn])
    assert rates.min() >= 1e-4 and rates.max() <= 1.0
    # Log-uniform over four decades: about a quarter of the draws in each decade.
    assert np.mean(rates < 1e-3) == pytest.approx(0.25, abs=0.04)
    assert {d["epochs"] for d in drawn} == {1, 2, 3}
    assert all(isinstance(d["epochs"], int) for d in drawn)
    assert draw(RANGES, np.random.default_rng(5)) == draw(RANGES, np.random.default_rng(5))


def test_the_search_is_scored_on_validation_alone_and_takes_the_best(tmp_path: Path) -> None:
    train = rows(
        [[0, 2, 5], [0, 3, 5], [1, 2, 5], [1, 4, 5], [0, 4, 5], [1, 3, 5]],
        [0.1, 0.2, 0.1, 0.3, 0.4, 0.5],
        [5, 1, 2, 4, 3, 3],
    )
    validation = rows([[0, 2, 5], [1, 4, 5]], [0.6, 0.6], [5, 4])
    write_channel(tmp_path / "prep" / "train", train)
    write_channel(tmp_path / "prep" / "validation", validation)
    # No prep/test/: the search never reads the test rows.
    hyperparameters = {
        "feature_dim": 6,
        "num_factors": 2,
        "predictor_type": "regressor",
        "mini_batch_size": 2,
    }
    found = tune(tmp_path, hyperparameters, RANGES, trials=4, seed=3, fm_seed=0)
    scores = [t["validation_rmse"] for t in found["trials"]]
    assert len(scores) == 4 and all(s is None or math.isfinite(s) for s in scores)
    best = min((s, n) for n, s in enumerate(scores) if s is not None)
    assert found["best"] == found["trials"][best[1]]
    assert tune(tmp_path, hyperparameters, RANGES, trials=4, seed=3, fm_seed=0) == found


def test_the_command_line_turns_tuning_on_only_when_asked(tmp_path: Path) -> None:
    config = load_defaults()
    assert run_arguments([], config)["tune_trials"] is None
    assert run_arguments(["--tune"], config)["tune_trials"] == 0  # fm_tuning.max_jobs, else the default
    assert run_arguments(["--tune", "3"], config)["tune_trials"] == 3
