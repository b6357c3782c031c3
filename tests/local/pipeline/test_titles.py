"""What the title space encodes, measured on hand-made vectors whose nearest neighbours are known."""

from __future__ import annotations

import numpy as np
import pytest

from local.pipeline.titles import title_space, year_of


def test_the_year_is_read_from_the_end_of_a_title() -> None:
    assert year_of("Toy Story (1995)") == 1995
    assert year_of("Toy Story (1995) ") == 1995
    assert year_of("1984 (1956)") == 1956
    assert year_of("Untitled") is None


def test_nearest_neighbours_that_share_the_year_are_counted_against_random_pairs() -> None:
    titles = ["Alpha (1990)", "Bravo (1990)", "Charlie (2005)", "Delta (2005)", "Echo Alpha (1970)", "Fox"]
    # Pairs of near-identical vectors: 0-1 (same year), 2-3 (same year), 4-5 (4 has no shared year: 5 has
    # none); 4's nearest is 5 and 5's nearest is 4.
    matrix = np.array(
        [[1, 0, 0], [1, 0.1, 0], [0, 1, 0], [0.1, 1, 0], [0, 0, 1], [0, 0.1, 1]], dtype=np.float64
    )
    space = title_space(titles, matrix, seed=0)
    near = space["nearest_neighbours"]
    assert (near["pairs"], near["dated_pairs"]) == (6, 4)  # pairs with Fox have no year on one side
    assert near["same_year"] == 1.0
    assert near["same_decade"] == 1.0
    assert near["mean_year_gap"] == 0.0
    assert near["shared_word"] == 0.0  # "Echo Alpha" is nearest to "Fox", not to "Alpha"
    chance = space["random_pairs"]
    # Random distinct pairs among the five dated titles: 2 of the 10 unordered pairs share a year.
    assert chance["same_year"] == pytest.approx(0.2, abs=0.02)
    assert chance["shared_word"] == pytest.approx(2 / 30, abs=0.02)  # Alpha with Echo Alpha, either order


def test_the_same_seed_gives_the_same_chance_figures() -> None:
    titles = [f"T{n} ({1990 + n % 7})" for n in range(50)]
    matrix = np.random.default_rng(1).normal(size=(50, 4))
    assert title_space(titles, matrix, seed=3) == title_space(titles, matrix, seed=3)
