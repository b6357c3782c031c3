"""Serving factors: built from the hand-made run, written, read back, and refused when malformed."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from contract import layout
from contract.features import FeatureLayout
from contract.index import load_index
from fm.artifact import FmParameters
from fm.biases import CustomerBase
from fm.factors import (
    FACTORS_FILES,
    FACTORS_MANIFEST,
    FactorsFormatError,
    ServingFactors,
    base_of,
    build_and_write,
    build_factors,
    combine_reviewed,
    factors_files,
    load_factors,
    parse_factors,
    rated_pairs,
    reviewed_products,
    write_factors,
)
from fm.recordio import write_sparse_records
from tests.fm.topn_support import FEATURES, factors, flat_base, parameters, shard, write_run


def test_the_manifest_and_folder_names_are_the_run_layouts() -> None:
    assert layout.SERVING_FACTORS + FACTORS_MANIFEST == layout.SERVING_FACTORS_MANIFEST
    assert FACTORS_FILES[-1] == FACTORS_MANIFEST


def test_items_and_customers_hold_factors_weight_and_time_product() -> None:
    f = factors()
    # Row i: v_i, w_i, <v_i, v_t> with v_t = (0.2, 0).
    np.testing.assert_allclose(
        f.items,
        [[0.5, 0, 0.1, 0.1], [0, 0.5, 0.2, 0], [0.25, 0.25, 0.3, 0.05], [1, -1, 0, 0.2]],
        rtol=1e-6,
    )
    np.testing.assert_allclose(f.customers, [[1, 0, 0.5, 0.2], [0, 1, -0.25, 0]], rtol=1e-6)
    np.testing.assert_allclose(f.time_factor, [0.2, 0])
    assert (f.w0, f.time_weight) == (3.0, 0.5)
    assert f.items.dtype == f.customers.dtype == np.float32


def test_reviewed_products_are_distinct_and_popularity_counts_rows() -> None:
    f = factors()
    assert f.reviewed(0).tolist() == [0, 3]
    assert f.reviewed(1).tolist() == [0, 1]  # (C2, P0) twice: once here
    assert f.reviewed_indptr.tolist() == [0, 2, 4]
    assert f.popularity.tolist() == [3, 1, 0, 1]
    assert f.reviewed_rows == 5
    assert f.popular_rows.tolist() == [0, 1, 3, 2]  # P1 and P3 tie: the lower row first
    np.testing.assert_allclose(f.log_popularity, np.log1p([3, 1, 0, 1]), rtol=1e-6)


def test_reviewed_products_reads_many_shards_from_paths_bytes_and_streams(tmp_path: Path) -> None:
    (tmp_path / "a.rio").write_bytes(shard([(0, 1, 0.0)]))
    reviewed = reviewed_products(
        [tmp_path / "a.rio", shard([(1, 2, 0.1)]), io.BytesIO(shard([(0, 1, 0.2), (0, 0, 0.3)]))], FEATURES
    )
    assert reviewed.indptr.tolist() == [0, 2, 3]
    assert reviewed.indices.tolist() == [0, 1, 2]
    assert reviewed.popularity.tolist() == [1, 2, 1, 0]
    assert reviewed.rows == 4


def test_a_customer_without_rows_has_no_reviewed_products() -> None:
    reviewed = reviewed_products([shard([(1, 2, 0.0)])], FEATURES)
    assert reviewed.indptr.tolist() == [0, 0, 1]
    assert reviewed_products([], FEATURES).indptr.tolist() == [0, 0, 0]


def _records(indptr: list[int], indices: list[int], feature_dim: int) -> bytes:
    out = io.BytesIO()
    n = len(indptr) - 1
    write_sparse_records(out, indptr, indices, [1.0] * len(indices), [4.0] * n, feature_dim)
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_records([0, 3], [0, 2, 6], 8), "shard 0: feature_dim 8, the index's is 7"),
        (_records([0, 3, 5], [0, 2, 6, 1, 3], 7), "shard 0: row 0 + 1 is not a prep row"),
        (_records([0, 3], [2, 3, 6], 7), "shard 0: row 0 + 0 is not a prep row"),  # item key as user key
        (_records([0, 3], [0, 1, 6], 7), "shard 0: row 0 + 0 is not a prep row"),  # user key as item key
        (_records([0, 3], [0, 2, 5], 7), "shard 0: row 0 + 0 is not a prep row"),  # no time key
        (b"\x00" * 16, "shard 0: bad RecordIO magic number at byte 0"),
    ],
)
def test_shards_that_are_not_prep_rows_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(FactorsFormatError, match=re.escape(message)):
        reviewed_products([data], FEATURES)


def test_a_shard_path_is_named_in_the_error(tmp_path: Path) -> None:
    (tmp_path / "bad.rio").write_bytes(b"\x00" * 16)
    with pytest.raises(FactorsFormatError, match=re.escape(f"{tmp_path / 'bad.rio'}: bad RecordIO magic")):
        reviewed_products([tmp_path / "bad.rio"], FEATURES)


def test_a_named_shard_is_named_in_the_error() -> None:
    with pytest.raises(FactorsFormatError, match=re.escape("s3://b/runs/r1/prep/train/p.rio: bad RecordIO")):
        reviewed_products([("s3://b/runs/r1/prep/train/p.rio", b"\x00" * 16)], FEATURES)


def test_reviewed_products_of_several_groups_combine_into_their_union() -> None:
    # Train: C1 P3, P0; C2 P1, P0, P0. Later rows: C1 P1 and P0 again, C2 P3.
    train = reviewed_products([shard()], FEATURES)
    later = reviewed_products([shard([(0, 1, 0.0), (0, 0, 0.9), (1, 3, 0.0)])], FEATURES)
    both = combine_reviewed([train, later], FEATURES)
    assert both.indptr.tolist() == [0, 3, 6]
    assert both.indices.tolist() == [0, 1, 3, 0, 1, 3]
    assert both.popularity.tolist() == [4, 2, 0, 2]
    assert both.rows == 8
    every = reviewed_products([shard(), shard([(0, 1, 0.0), (0, 0, 0.9), (1, 3, 0.0)])], FEATURES)
    assert (every.indptr.tolist(), every.indices.tolist()) == (both.indptr.tolist(), both.indices.tolist())
    assert combine_reviewed([], FEATURES).popularity.tolist() == [0, 0, 0, 0]
    with pytest.raises(FactorsFormatError, match=re.escape("for 3 customers and 4 products cannot join")):
        combine_reviewed([train, reviewed_products([], FeatureLayout(3, 4))], FEATURES)


def test_the_files_come_one_at_a_time_factors_json_last_as_write_factors_writes_them(tmp_path: Path) -> None:
    f = factors()
    write_factors(tmp_path, f)
    files = list(factors_files(f))
    assert [name for name, _ in files] == list(FACTORS_FILES)
    assert FACTORS_FILES[-1] == FACTORS_MANIFEST
    for name, data in files:
        assert (tmp_path / name).read_bytes() == data, name
    buffer = io.BytesIO()
    np.save(buffer, f.items)
    assert dict(files)["items.npy"] == buffer.getvalue()  # the bytes np.save writes


def test_a_model_of_another_run_is_refused() -> None:
    other = FeatureLayout(3, 4)
    with pytest.raises(FactorsFormatError, match=re.escape("the model has feature_dim 7, the index 8")):
        build_factors(parameters(), other, reviewed_products([], other), flat_base(other))


def test_a_model_with_a_non_finite_weight_is_refused() -> None:
    params = parameters()
    w = params.w.copy()
    w[3] = np.nan
    with pytest.raises(FactorsFormatError, match="the model's w holds a value that is not finite"):
        factors(FmParameters(params.w0, w, params.v))


def _same(a: ServingFactors, b: ServingFactors) -> None:
    for name in ("time_factor", "items", "customers", "reviewed_indptr", "reviewed_indices", "popularity"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    np.testing.assert_array_equal(a.customer_base, b.customer_base, err_msg="customer_base")
    assert (a.w0, a.time_weight, a.reviewed_rows, a.base_mean) == (
        b.w0,
        b.time_weight,
        b.reviewed_rows,
        b.base_mean,
    )


@pytest.mark.parametrize("mmap", [True, False])
def test_written_factors_read_back_the_same(tmp_path: Path, mmap: bool) -> None:
    f = factors()
    manifest = write_factors(tmp_path / "fm", f)
    assert sorted(p.name for p in (tmp_path / "fm").iterdir()) == sorted(FACTORS_FILES)
    assert json.loads((tmp_path / "fm" / FACTORS_MANIFEST).read_text()) == manifest
    assert manifest["files"]["items.npy"] == {"shape": [4, 4], "dtype": "<f4"}
    assert manifest["reviewed_pairs"] == 4
    loaded = load_factors(tmp_path / "fm", features=FEATURES, mmap=mmap)
    _same(loaded, f)
    assert isinstance(loaded.items, np.memmap) is mmap
    assert not loaded.items.flags.writeable if mmap else loaded.items.flags.writeable


def test_factors_parse_from_bytes_without_a_copy(tmp_path: Path) -> None:
    f = factors()
    write_factors(tmp_path, f)
    files = {name: (tmp_path / name).read_bytes() for name in FACTORS_FILES}
    parsed = parse_factors(files, features=FEATURES)
    _same(parsed, f)
    assert not parsed.items.flags.writeable  # a view of the bytes


def test_build_and_write_takes_the_artifact_and_shards(tmp_path: Path) -> None:
    index = write_run(tmp_path / "run")
    run = tmp_path / "run"
    manifest = build_and_write(
        model=(run / "fm" / "model.tar.gz").read_bytes(),
        features=index.features,
        shards=[run / "prep" / "train" / "part-00000.rio"],
        output=run / "serving" / "fm",
    )
    assert set(manifest["timings_s"]) == {"read_model", "read_shards", "build_and_write"}
    assert "timings_s" not in json.loads((run / layout.SERVING_FACTORS_MANIFEST).read_text())
    _same(
        load_factors(run / layout.SERVING_FACTORS, features=load_index(run / layout.INDEX).features),
        factors(),
    )


def test_a_write_that_fails_midway_leaves_no_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_factors(tmp_path, factors())
    saved = Path.write_bytes
    calls = []

    def failing_write(path: Path, data: Any) -> int:
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return saved(path, data)

    monkeypatch.setattr(Path, "write_bytes", failing_write)
    with pytest.raises(OSError, match="disk full"):
        write_factors(tmp_path, factors())
    with pytest.raises(
        FactorsFormatError, match=r"factors\.json: missing: the serving factors in .* were not"
    ):
        load_factors(tmp_path)


# ------------------------------------------------------------------------------------------- bad files


@pytest.fixture
def written(tmp_path: Path) -> Path:
    write_factors(tmp_path, factors())
    return tmp_path


def _edit_manifest(folder: Path, **changes: Any) -> None:
    path = folder / FACTORS_MANIFEST
    meta = json.loads(path.read_text())
    meta.update(changes)
    path.write_text(json.dumps(meta))


def _save(folder: Path, name: str, array: np.ndarray) -> None:
    with (folder / name).open("wb") as f:
        np.save(f, array)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schema_version": 1}, "factors.json: schema_version 1, expected 2"),
        ({"base_mean": float("nan")}, "factors.json: base_mean is nan, not a finite number"),
        ({"num_customers": 0}, "factors.json: num_customers is 0, not an integer >= 1"),
        ({"num_factors": "2"}, "factors.json: num_factors is '2', not an integer >= 1"),
        ({"w0": None}, "factors.json: w0 is None, not a finite number"),
        ({"feature_dim": 8}, "factors.json: feature_dim 8 is not num_customers + num_products + 1 (7)"),
        ({"num_products": 5, "feature_dim": 8}, "factors.json: files is"),
        ({"files": {}}, "factors.json: files is {}, expected"),
    ],
)
def test_a_bad_manifest_is_named(written: Path, change: dict[str, Any], message: str) -> None:
    _edit_manifest(written, **change)
    with pytest.raises(FactorsFormatError, match=re.escape(message)):
        load_factors(written)


def test_a_manifest_that_is_not_json_is_named(written: Path) -> None:
    (written / FACTORS_MANIFEST).write_text("{nope")
    with pytest.raises(FactorsFormatError, match=re.escape("factors.json: not JSON")):
        load_factors(written)


def test_a_missing_array_is_named(written: Path) -> None:
    (written / "popularity.npy").unlink()
    with pytest.raises(FactorsFormatError, match=re.escape(f"popularity.npy: missing from {written}")):
        load_factors(written)


@pytest.mark.parametrize("mmap", [True, False])
def test_a_truncated_array_is_named(written: Path, mmap: bool) -> None:
    data = (written / "items.npy").read_bytes()
    (written / "items.npy").write_bytes(data[:-4])
    message = "items.npy: 60 bytes of data, 64 expected for (4, 4): truncated or overwritten"
    with pytest.raises(FactorsFormatError, match=re.escape(message)):
        load_factors(written, mmap=mmap)
    files = {name: (written / name).read_bytes() for name in FACTORS_FILES}
    with pytest.raises(FactorsFormatError, match=re.escape(message)):
        parse_factors(files)


@pytest.mark.parametrize(
    ("name", "array", "message"),
    [
        (
            "items.npy",
            np.zeros((4, 4), np.float64),
            "items.npy: holds <f8 (4, 4), factors.json says <f4 (4, 4)",
        ),
        ("customers.npy", np.zeros((3, 4), np.float32), "customers.npy: holds <f4 (3, 4), factors.json says"),
        ("items.npy", np.asfortranarray(np.zeros((4, 4), np.float32)), "(4, 4) (Fortran order)"),
        ("reviewed_indptr.npy", np.array([0, 3, 2], np.int64), "reviewed_indptr.npy: must rise from 0 to"),
        ("reviewed_indptr.npy", np.array([1, 2, 4], np.int64), "reviewed_indptr.npy: must rise from 0 to"),
        ("reviewed_indices.npy", np.array([0, 3, 0, 4], np.int32), "reviewed_indices.npy: a product row is"),
        ("popularity.npy", np.array([3, -1, 0, 1], np.int64), "popularity.npy: a review count is negative"),
    ],
)
def test_an_array_that_disagrees_is_named(written: Path, name: str, array: np.ndarray, message: str) -> None:
    _save(written, name, array)
    with pytest.raises(FactorsFormatError, match=re.escape(message)):
        load_factors(written)


def test_a_file_that_is_not_npy_is_named(written: Path) -> None:
    (written / "time_factor.npy").write_bytes(b"not numpy at all")
    with pytest.raises(FactorsFormatError, match=re.escape("time_factor.npy: not a .npy file")):
        load_factors(written)


def test_factors_of_another_run_are_refused(written: Path) -> None:
    message = (
        "factors.json: the factors are for 2 customers and 4 products, the index has 3 and 4: "
        "they come from different runs"
    )
    with pytest.raises(FactorsFormatError, match=re.escape(message)):
        load_factors(written, features=FeatureLayout(3, 4))


def test_parsing_needs_every_file(written: Path) -> None:
    files = {name: (written / name).read_bytes() for name in FACTORS_FILES}
    del files["customers.npy"]
    with pytest.raises(FactorsFormatError, match=re.escape("customers.npy: missing")):
        parse_factors(files)
    with pytest.raises(FactorsFormatError, match=re.escape("factors.json: missing")):
        parse_factors({})


def test_the_customer_base_is_written_and_read_back_and_an_unknown_customer_gets_mu(tmp_path: Path) -> None:
    f = factors(base=CustomerBase(mean=3.25, values=np.array([4.5, 2.75], np.float32)))
    manifest = write_factors(tmp_path, f)
    assert manifest["base_mean"] == 3.25
    assert manifest["files"]["customer_base.npy"] == {"shape": [2], "dtype": "<f4"}
    loaded = load_factors(tmp_path, features=FEATURES)
    assert loaded.base([1, -1, 0]).tolist() == [2.75, 3.25, 4.5]


def test_a_customer_base_of_another_size_or_not_finite_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FactorsFormatError, match="the customer base is for 3 customers, the index has 2"):
        factors(base=CustomerBase(mean=3.0, values=np.zeros(3, np.float32)))
    with pytest.raises(FactorsFormatError, match="the customer base holds a value that is not finite"):
        factors(base=CustomerBase(mean=3.0, values=np.array([1.0, np.inf], np.float32)))
    write_factors(tmp_path, factors())
    _save(tmp_path, "customer_base.npy", np.array([4.0, np.nan], np.float32))
    with pytest.raises(
        FactorsFormatError, match=re.escape("customer_base.npy: a customer's base is not finite")
    ):
        load_factors(tmp_path)


def test_build_and_write_fits_the_base_on_its_shards(tmp_path: Path) -> None:
    index = write_run(tmp_path / "run")
    run = tmp_path / "run"
    rated = shard(ratings=[5.0, 3.0, 2.0, 4.0, 3.0])
    build_and_write(
        model=(run / "fm" / "model.tar.gz").read_bytes(),
        features=index.features,
        shards=[rated],
        output=run / "serving" / "fm",
    )
    loaded = load_factors(run / layout.SERVING_FACTORS)
    expected = base_of(rated_pairs([rated], FEATURES), FEATURES)
    assert loaded.base_mean == pytest.approx(3.4)
    np.testing.assert_array_equal(loaded.customer_base, expected.values)


def test_factors_built_without_a_base_give_every_customer_w0() -> None:
    f = build_factors(parameters(), FEATURES, reviewed_products([shard()], FEATURES))
    assert (f.base_mean, f.customer_base.tolist()) == (3.0, [3.0, 3.0])
    assert f.base([-1, 1]).tolist() == [3.0, 3.0]
