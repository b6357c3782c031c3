"""The baselines' per-row predictions (prep/baselines/) against a direct plain-Python computation.

The job fits the global mean, the user + item bias model and its user side on the train shards and writes
what they predict for each validation and test row, in the shards' order. Here the same model is fitted
again from the shards with dictionaries and loops (Koren's alternating closed-form sweeps, written out
row by row), and every prediction and RMSE must agree.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from contract import layout
from contract.documents import BASELINE_COLUMNS, Manifest
from fm.recordio import read_sparse_records
from jobs.prep.baselines import BiasSettings
from jobs.prep.job import PrepConfig, run_prep
from jobs.prep.prepare import Thresholds
from tests.jobs.test_prep_support import many_rows, tsv_bytes, write_tsv

SETTINGS = BiasSettings(reg_user=3.0, reg_item=5.0, sweeps=4)
Row = tuple[int, int, float]  # user key, item key (from N), rating


def shard_rows(folder: Path) -> list[Row]:
    rows: list[Row] = []
    for path in sorted(folder.iterdir()):
        with path.open("rb") as f:
            records = read_sparse_records(f)
        keys = records.indices.reshape(-1, 3)
        rows += [(u, i, r) for (u, i, _), r in zip(keys.tolist(), records.labels.tolist(), strict=True)]
    return rows


def plain_biases(train: list[Row]) -> tuple[float, dict[int, float], dict[int, float]]:
    mu = sum(r for _, _, r in train) / len(train)
    b_user: dict[int, float] = defaultdict(float)
    b_item: dict[int, float] = defaultdict(float)
    for _ in range(SETTINGS.sweeps):
        sums: dict[int, float] = defaultdict(float)
        counts: dict[int, int] = defaultdict(int)
        for u, i, r in train:
            sums[u] += r - mu - b_item[i]
            counts[u] += 1
        b_user = defaultdict(float, {u: sums[u] / (SETTINGS.reg_user + counts[u]) for u in sums})
        sums, counts = defaultdict(float), defaultdict(int)
        for u, i, r in train:
            sums[i] += r - mu - b_user[u]
            counts[i] += 1
        b_item = defaultdict(float, {i: sums[i] / (SETTINGS.reg_item + counts[i]) for i in sums})
    return mu, b_user, b_item


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    root = tmp_path_factory.mktemp("baselines")
    write_tsv(root / "in" / "reviews.tsv", tsv_bytes(many_rows(4000, customers=300, products=40, seed=8)))
    config = PrepConfig(thresholds=Thresholds(3, 3), fm_instance_count=2, bias=SETTINGS)
    manifest = run_prep(root / "in", root / "out", config, log=lambda _: None)
    return root / "out", manifest


@pytest.mark.parametrize("channel", ["test", "validation"])
def test_each_rows_baselines_equal_a_direct_computation(run: tuple[Path, Manifest], channel: str) -> None:
    out, manifest = run
    mu, b_user, b_item = plain_biases(shard_rows(out / "train"))
    rows = shard_rows(out / channel)
    assert len(rows) > 200

    def clip(x: float) -> float:
        return min(5.0, max(1.0, x))

    expected = [[mu, clip(mu + b_user[u] + b_item[i]), clip(mu + b_user[u])] for u, i, _ in rows]
    predicted = np.load(out / "baselines" / f"{channel}.npy")
    assert predicted.dtype == np.float32
    assert predicted.shape == (len(rows), len(BASELINE_COLUMNS))
    np.testing.assert_allclose(predicted, np.array(expected, dtype=np.float32), rtol=0, atol=2e-6)
    assert any(row[1] != row[2] for row in expected)  # the item term matters on these rows

    baselines = manifest["baselines"]
    by_name: dict[str, Mapping[str, object]] = {
        "global_mean": baselines["global_mean"],
        "bias": baselines["bias"],
        "user_bias": baselines["user_bias"],
    }
    key = "rmse" if channel == "test" else "validation_rmse"
    for column, name in enumerate(BASELINE_COLUMNS):
        want = math.sqrt(
            sum((p[column] - r) ** 2 for p, (_, _, r) in zip(expected, rows, strict=True)) / len(rows)
        )
        assert by_name[name][key] == pytest.approx(want, rel=1e-9), name


def test_the_manifest_names_the_files_and_the_rows_they_follow(run: tuple[Path, Manifest]) -> None:
    out, manifest = run
    listed = manifest["baseline_predictions"]
    assert listed["columns"] == ["global_mean", "bias", "user_bias"]
    assert listed["format"].startswith("numpy .npy, float32, shape (rows, len(columns))")
    counts = manifest["counts"]
    for entry, path, shard, rows in (
        (listed["test"], layout.BASELINES_TEST, layout.TEST_SHARD, counts["test_rows"]),
        (
            listed["validation"],
            layout.BASELINES_VALIDATION,
            layout.VALIDATION_SHARD,
            counts["validation_rows"],
        ),
    ):
        assert entry == {"path": path, "shard": shard, "rows": rows}
        assert np.load(out / layout.in_prep(path)).shape == (rows, 3)
        assert len(shard_rows(out / layout.in_prep(shard).rsplit("/", 1)[0])) == rows
    assert manifest["baselines"]["fitted_on"] == "train"
