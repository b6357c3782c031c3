"""The prep job's semantics on a 9-row hand-made input: every expected value below is worked out by hand.

The input (tests/jobs/test_prep_support.py ROWS), thresholds 2 customers / 2 products:
- raw counts: customers 7:3, 20:3, 100:2, 55:1; products B1:5, B2:3, B3:1 -> customer 55 and product B3
  drop out, 7 rows are kept.
- kept counts: 7:3, 100:2, 20:2 -> keys 7 -> 0, then the tie 100/20 by byte order ("100" < "20") ->
  100 -> 1, 20 -> 2; products B1:4 -> key 3, B2:3 -> key 4; the time feature is key 5; feature_dim 6.
- first reviews: 7 on 2015-01-01 (day 16436), 100 on 2014-12-31 (16435), 20 on 2015-02-01 (16467);
  largest days-since-first: 100's 2015-03-01, 60 days -> scale_days 60, feature = log1p(d) / log1p(60).
- test: 7's latest is 2015-01-10 (B1, 3 stars, day 9); 100's is 2015-03-01 (B1, 5 stars, day 60); 20 has
  two reviews on 2015-02-01: the smaller split hash wins (seed 42: blake2b of "20\tB1" 9626c8b05dfaa47a,
  of "20\tB2" cc66983f76c88f31), B1 (2 stars, day 0), where the greatest product id would take B2.
- validation: none: every customer has one product outside its test pair, fewer than two.
- train: the rest minus each test row's (customer, product) pair: 7's B2 (4 stars, day 2), 100's B2
  (4 stars, day 0), 20's B2 (1 star, day 0).
- B2's titles "Beta  Film", "beta film", "Beta Film" occur once each: the smallest, "Beta  Film", wins.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import math
import typing
from pathlib import Path

import numpy as np
import pytest

from contract.documents import Manifest
from contract.index import HELD_OUT_TITLE_SHARE, held_out_title, load_index
from fm.recordio import read_sparse_records
from jobs.prep.baselines import BiasSettings, Rows, compute_baselines
from jobs.prep.job import PrepConfig, run_prep
from jobs.prep.prepare import Thresholds
from tests.jobs.test_prep_support import ROWS, tsv_bytes, write_tsv

LN61 = math.log(61.0)
CONFIG = PrepConfig(
    thresholds=Thresholds(min_customer_reviews=2, min_product_reviews=2),
    fm_instance_count=1,
    shards_per_instance=1,
    bias=BiasSettings(reg_user=1.0, reg_item=1.0, sweeps=1),
)
# (keys, values, label), one per row.
EXPECTED_TEST = [
    ([0, 3, 5], [1.0, 1.0, math.log(10.0) / LN61], 3.0),
    ([1, 3, 5], [1.0, 1.0, 1.0], 5.0),
    ([2, 3, 5], [1.0, 1.0, 0.0], 2.0),
]
EXPECTED_TRAIN = [
    ([0, 4, 5], [1.0, 1.0, math.log(3.0) / LN61], 4.0),
    ([1, 4, 5], [1.0, 1.0, 0.0], 4.0),
    ([2, 4, 5], [1.0, 1.0, 0.0], 1.0),
]


def _quiet(_: str) -> None:
    pass


def rows_of(path: Path) -> list[tuple[list[int], list[float], float]]:
    with path.open("rb") as f:
        rec = read_sparse_records(f)
    assert rec.feature_dim == 6
    return [
        (
            rec.indices[rec.indptr[i] : rec.indptr[i + 1]].tolist(),
            rec.values[rec.indptr[i] : rec.indptr[i + 1]].tolist(),
            float(rec.labels[i]),
        )
        for i in range(len(rec.labels))
    ]


def assert_rows(
    actual: list[tuple[list[int], list[float], float]], expected: list[tuple[list[int], list[float], float]]
) -> None:
    assert [(k, lab) for k, _, lab in actual] == [(k, lab) for k, _, lab in expected]
    for (_, got, _), (_, want, _) in zip(actual, expected, strict=True):
        assert got == [np.float32(v) for v in want]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    root = tmp_path_factory.mktemp("semantics")
    write_tsv(root / "in" / "reviews.tsv", tsv_bytes(ROWS))
    manifest = run_prep(root / "in", root / "out", CONFIG, log=_quiet)
    return root / "out", manifest


def test_keys_and_feature_dim(run: tuple[Path, Manifest]) -> None:
    out, manifest = run
    assert (manifest["num_customers"], manifest["num_products"], manifest["feature_dim"]) == (3, 2, 6)
    index = load_index(out / "index")
    assert index.customer_keys == {"7": 0, "100": 1, "20": 2}
    assert {p: index.product_key(r) for p, r in index.product_rows.items()} == {"B1": 3, "B2": 4}
    assert list(index.first_review_day) == [16436, 16435, 16467]
    assert index.product_titles == ["Alpha Show", "Beta  Film"]
    assert (out / "index" / "customers.tsv").read_text() == "7\t16436\n100\t16435\n20\t16467\n"
    assert (out / "index" / "products.tsv").read_text() == "B1\tAlpha Show\nB2\tBeta  Film\n"
    assert index.time_transform.scale_days == 60
    assert index.global_mean == pytest.approx(3.0)


def test_test_rows_are_the_latest_review_per_customer(run: tuple[Path, Manifest]) -> None:
    out, _ = run
    assert_rows(rows_of(out / "test" / "part-00000.rio"), EXPECTED_TEST)


def test_train_rows_drop_the_test_pair(run: tuple[Path, Manifest]) -> None:
    out, manifest = run
    assert sorted(p.name for p in (out / "train").iterdir()) == ["part-00000.rio"]
    assert_rows(sorted(rows_of(out / "train" / "part-00000.rio")), EXPECTED_TRAIN)
    counts = manifest["counts"]
    assert counts == {
        "rows_read": 9,
        "bad_rows": {},
        "rows_usable": 9,
        "rows_kept": 7,
        "train_rows": 3,
        "validation_rows": 0,
        "test_rows": 3,
        "corpus_lines": 3,
        "empty_files": 0,
    }


def test_corpus_lists_titles_in_date_order(run: tuple[Path, Manifest]) -> None:
    out, _ = run
    assert (out / "corpus" / "corpus.txt").read_text() == (
        "alpha-show beta--film alpha-show\nbeta--film alpha-show\nalpha-show beta--film\n"
    )


def test_a_held_out_title_is_left_out_of_the_corpus_and_counted(tmp_path: Path) -> None:
    """ "Alpha Show 22" is a held-out title (contract.index.held_out_title): its reviews stay FM rows, its
    token leaves every corpus line; the manifest counts the titles and products left out."""
    assert held_out_title("alpha-show-22") and not held_out_title("beta--film")
    rows = [(c, p, "Alpha Show 22" if p == "B1" else t, r, d) for c, p, t, r, d in ROWS]
    write_tsv(tmp_path / "in" / "reviews.tsv", tsv_bytes(rows))
    manifest = run_prep(tmp_path / "in", tmp_path / "out", CONFIG, log=_quiet)

    assert (tmp_path / "out" / "corpus" / "corpus.txt").read_text() == "beta--film\nbeta--film\nbeta--film\n"
    assert manifest["counts"]["train_rows"] + manifest["counts"]["test_rows"] == 6  # as with the show's title
    held = manifest["held_out_titles"]
    assert (held["titles"], held["products"], held["share"]) == (1, 1, HELD_OUT_TITLE_SHARE)


def test_baselines_by_hand(run: tuple[Path, Manifest]) -> None:
    # train (u0,B2,4) (u1,B2,4) (u2,B2,1): mu = 3; test (u0,B1,3) (u1,B1,5) (u2,B1,2) -> global mean RMSE
    # sqrt((0 + 4 + 1) / 3). One sweep, reg 1: b_u = (1/2, 1/2, -1); b_B1 = 0 (no train row),
    # b_B2 = (1/2 + 1/2 - 1) / 4 = 0; test predictions 7/2, 7/2, 2 -> errors 1/2, -3/2, 0 -> sqrt(5/6), the
    # user bias alike (b_B1 = 0). No validation row: no validation RMSE.
    out, manifest = run
    baselines = manifest["baselines"]
    assert baselines["global_mean"] == {
        "value": 3.0,
        "rmse": pytest.approx(math.sqrt(5 / 3)),
        "validation_rmse": None,
    }
    assert baselines["bias"]["rmse"] == pytest.approx(math.sqrt(5 / 6))
    assert baselines["user_bias"]["rmse"] == pytest.approx(math.sqrt(5 / 6))
    assert baselines["user_bias"]["validation_rmse"] is None
    assert baselines["bias"]["validation_rmse"] is None
    assert (baselines["bias"]["reg_user"], baselines["bias"]["sweeps"]) == (1.0, 1)
    assert baselines["fitted_on"] == "train"
    test = np.load(out / "baselines" / "test.npy")
    assert test.dtype == np.float32
    assert test.tolist() == [[3.0, 3.5, 3.5], [3.0, 3.5, 3.5], [3.0, 2.0, 2.0]]
    assert np.load(out / "baselines" / "validation.npy").shape == (0, 3)


def test_manifest_records_inputs_and_settings(run: tuple[Path, Manifest]) -> None:
    out, manifest = run
    data = tsv_bytes(ROWS)
    assert manifest["inputs"] == [
        {
            "name": "reviews.tsv",
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "rows_read": 9,
            "bad_rows": {},
        }
    ]
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert manifest["empty_inputs"] == []
    # 3 train rows: fewer than 1,000, and as many as the 3 customers (not fewer); no validation row.
    assert [w.split(":")[0] for w in manifest["warnings"]] == ["small training set", "no validation rows"]
    assert manifest["time_transform"] == {
        "kind": "log1p_ratio",
        "scale_days": 60,
        "formula": "min(1, log1p(max(0, days)) / log1p(scale_days))",
        "days": "request date minus the customer's first_review_day, in whole days",
    }
    assert manifest["thresholds"] == {
        "min_customer_reviews": 2,
        "min_product_reviews": 2,
        "max_bad_row_fraction": 0.01,
    }
    assert manifest["shards"] == {
        "train": 1,
        "validation": 1,
        "test": 1,
        "fm_instance_count": 1,
        "shards_per_instance": 1,
        "train_rows_per_shard": [3],
    }
    assert manifest["rating_range"] == [1, 5]
    assert set(manifest["timings_s"]) >= {"read", "prepare", "write_train", "total"}


def test_split_across_files_gives_the_same_output(run: tuple[Path, Manifest], tmp_path: Path) -> None:
    """The result depends on the rows, not on their order or on how they are split into files."""
    out, _ = run
    shuffled = [ROWS[i] for i in (8, 3, 6, 0, 5, 1, 7, 2, 4)]
    write_tsv(tmp_path / "in" / "a.tsv", tsv_bytes(shuffled[:4]))
    write_tsv(tmp_path / "in" / "more" / "b.tsv.gz", tsv_bytes(shuffled[4:]))
    manifest = run_prep(tmp_path / "in", tmp_path / "out", CONFIG, log=_quiet)
    assert [f["name"] for f in manifest["inputs"]] == ["a.tsv", "more/b.tsv.gz"]
    gz = (tmp_path / "in" / "more" / "b.tsv.gz").read_bytes()
    assert manifest["inputs"][1]["bytes"] == len(gz)
    assert manifest["inputs"][1]["sha256"] == hashlib.sha256(gz).hexdigest()
    assert gzip.decompress(gz) == tsv_bytes(shuffled[4:])
    for rel in (
        "train/part-00000.rio",
        "validation/part-00000.rio",
        "test/part-00000.rio",
        "baselines/test.npy",
        "baselines/validation.npy",
        "corpus/corpus.txt",
        "index/customers.tsv",
    ):
        assert (tmp_path / "out" / rel).read_bytes() == (out / rel).read_bytes(), rel


def test_shards_are_equal_within_one_row_and_cover_train(tmp_path: Path) -> None:
    write_tsv(tmp_path / "in" / "reviews.tsv", tsv_bytes(ROWS))
    config = PrepConfig(
        thresholds=CONFIG.thresholds, fm_instance_count=2, shards_per_instance=1, bias=CONFIG.bias
    )
    manifest = run_prep(tmp_path / "in", tmp_path / "out", config, log=_quiet)
    shards = sorted((tmp_path / "out" / "train").iterdir())
    assert [p.name for p in shards] == ["part-00000.rio", "part-00001.rio"]
    per_shard = [rows_of(p) for p in shards]
    assert sorted(len(rows) for rows in per_shard) == [1, 2]
    assert manifest["shards"]["train_rows_per_shard"] == [len(r) for r in per_shard]
    assert_rows(sorted(per_shard[0] + per_shard[1]), EXPECTED_TRAIN)


def test_bias_baseline_predictions_are_clipped_to_the_rating_range() -> None:
    # Train (u0,i0,5) (u1,i1,1) (u1,i0,3), no regularization, one sweep: mu 3, b_u = (2, -1),
    # b_i = (0.5, -1): (u0,i0) predicts 5.5 -> 5 and (u1,i1) predicts 1, both exact once clipped; without
    # the item term 5 and 2. Validation (u0,i1,4): 4, and 5 without the item term.
    result, on_test, on_validation = compute_baselines(
        train=Rows(np.array([0, 1, 1]), np.array([0, 1, 0]), np.array([5, 1, 3], dtype=np.int8)),
        test=Rows(np.array([0, 1]), np.array([0, 1]), np.array([5, 1], dtype=np.int8)),
        validation=Rows(np.array([0]), np.array([1]), np.array([4], dtype=np.int8)),
        num_users=2,
        num_items=2,
        settings=BiasSettings(reg_user=0.0, reg_item=0.0, sweeps=1),
    )
    assert (result["bias"]["rmse"], result["bias"]["validation_rmse"]) == (0.0, 0.0)
    assert result["global_mean"] == {"value": 3.0, "rmse": 2.0, "validation_rmse": 1.0}
    assert result["user_bias"]["rmse"] == pytest.approx(math.sqrt(1 / 2))
    assert result["user_bias"]["validation_rmse"] == 1.0
    assert on_test.tolist() == [[3.0, 5.0, 5.0], [3.0, 1.0, 2.0]]
    assert on_validation.tolist() == [[3.0, 4.0, 5.0]]


def test_bias_baseline_gives_unseen_users_and_items_zero_bias() -> None:
    result, on_test, _ = compute_baselines(
        train=Rows(np.array([0]), np.array([0]), np.array([4], dtype=np.int8)),
        test=Rows(np.array([1]), np.array([1]), np.array([2], dtype=np.int8)),
        validation=Rows(np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.int8)),
        num_users=2,
        num_items=2,
        settings=BiasSettings(reg_user=0.0, reg_item=0.0, sweeps=3),
    )
    assert result["bias"]["rmse"] == 2.0  # predicts mu = 4 for the unseen pair
    assert on_test.tolist() == [[4.0, 4.0, 4.0]]
    assert result["bias"]["validation_rmse"] is None


def test_whitespace_around_an_id_is_not_part_of_it(tmp_path: Path) -> None:
    """The rule the shims apply to requests (contract.index.normalize_id), applied to the raw rows."""
    padded = [
        (f" {c}\u3000", f"{p} ", title, rating, date) if n % 2 else (c, p, title, rating, date)
        for n, (c, p, title, rating, date) in enumerate(ROWS)
    ]
    write_tsv(tmp_path / "in" / "reviews.tsv", tsv_bytes([*padded, (" \u00a0 ", *ROWS[0][1:])]))
    lenient = dataclasses.replace(CONFIG, max_bad_row_fraction=0.2)
    manifest = run_prep(tmp_path / "in", tmp_path / "out", lenient, log=_quiet)
    write_tsv(tmp_path / "plain" / "reviews.tsv", tsv_bytes(ROWS))
    run_prep(tmp_path / "plain", tmp_path / "out-plain", CONFIG, log=_quiet)
    assert manifest["counts"]["bad_rows"] == {"empty_id": 1}
    for name in ("index/customers.tsv", "index/products.tsv", "train/part-00000.rio", "test/part-00000.rio"):
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "out-plain" / name).read_bytes(), name


def typed_keys(document: type) -> dict[str, object]:
    """The fields of a TypedDict, nested TypedDicts as their own field tables."""
    hints = typing.get_type_hints(document)
    return {name: typed_keys(hint) if typing.is_typeddict(hint) else None for name, hint in hints.items()}


def written_keys(value: object, shape: object) -> object:
    if isinstance(shape, dict):
        assert isinstance(value, dict)
        return {k: written_keys(value[k], shape[k]) if k in shape else "extra" for k in value}
    return None


def test_the_manifest_has_exactly_the_fields_of_contract_documents(run: tuple[Path, Manifest]) -> None:
    out, _ = run
    written = json.loads((out / "manifest.json").read_text())
    assert written_keys(written, typed_keys(Manifest)) == typed_keys(Manifest)
