"""bench/fm_ceiling.py's pieces: the expected rounded rating, the per-owner ridge, prep's rows as pairs, and
the generator's hidden model (synth_reviews.draw) being the one its file was written from."""

from __future__ import annotations

import csv
import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np

from bench.fm_ceiling import expected_rating, pairs, ridge
from bench.synth_reviews import clean_shape, draw, generate
from fm.recordio import SparseRecords


def test_expected_rating_is_symmetric_around_3_and_follows_the_score_when_the_noise_vanishes() -> None:
    # The steps 1.5, 2.5, 3.5, 4.5 sit symmetrically around 3: any noise leaves E = 3 there.
    assert np.allclose(expected_rating(np.array([3.0]), 0.8), [3.0])
    assert np.allclose(expected_rating(np.array([3.0]), 5.0), [3.0])
    # Almost no noise: rint then clip. 4.2 -> 4, 7 -> 5, -1 -> 1, 2.6 -> 3.
    assert np.allclose(expected_rating(np.array([4.2, 7.0, -1.0, 2.6]), 1e-6), [4.0, 5.0, 1.0, 3.0])
    # On a step the rating is either side with probability 1/2: 4.5 -> (4 + 5) / 2.
    assert np.allclose(expected_rating(np.array([4.5]), 1e-6), [4.5])


def test_ridge_solves_each_owner_on_its_own_rows() -> None:
    # Owner 0: x = 1, 1 with targets 2, 4 and reg 2: (2 + 4) / (1 + 1 + 2) = 1.5.
    # Owner 1: x = [1, 0], [0, 2] with targets 3, 4, reg 1 each: c0 = 3 / 2, c1 = 8 / 5.
    owner = np.array([0, 0, 1, 1])
    x = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    target = np.array([2.0, 4.0, 3.0, 4.0])
    reg = np.array([[2.0, 1.0], [1.0, 1.0]])
    solved = ridge(owner, x, target, 2, reg)
    assert np.allclose(solved, [[1.5, 0.0], [1.5, 1.6]])


def test_pairs_read_the_customer_and_product_keys_whatever_the_order_or_the_time_feature() -> None:
    # 2 customers (keys 0, 1), 3 products (keys 2..4), time key 5; the second row has no time value.
    records = SparseRecords(
        np.array([0, 3, 5], np.int64),
        np.array([0, 4, 5, 3, 1], np.int64),
        np.array([1, 1, 0.3, 1, 1], np.float32),
        np.array([5, 2], np.float32),
        6,
    )
    got = pairs(records, 2, 3)
    assert got.user.tolist() == [0, 1]
    assert got.item.tolist() == [2, 1]
    assert got.rating.tolist() == [5.0, 2.0]


def test_draw_is_the_model_the_file_was_written_from(tmp_path: Path) -> None:
    shape = dataclasses.replace(clean_shape(30_000, seed=3), signal=2)
    path = generate(tmp_path / "reviews.tsv", shape)
    with path.open(encoding="utf-8", newline="") as f:
        rows = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        written = Counter((r["customer_id"], r["product_id"], int(r["star_rating"])) for r in rows)
    drawn = draw(shape)
    rating = np.clip(np.rint(drawn.model.mean(drawn.cust, drawn.prod) + drawn.noise), 1, 5).astype(int)
    replayed = Counter(
        (drawn.catalog.customer_ids[c], drawn.catalog.product_ids[p], int(r))
        for c, p, r in zip(drawn.cust.tolist(), drawn.prod.tolist(), rating.tolist(), strict=True)
    )
    assert replayed == written
    assert drawn.model.users is not None and drawn.model.users.shape[1] == 2
