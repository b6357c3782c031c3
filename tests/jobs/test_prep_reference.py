"""Equality with the notebook's own code (../shared/bench/seed_reference_prep.py) where the notebook is right.

On a generated file without quote characters (pandas' default quoting then loses nothing) and with rows
oldest-first with distinct dates per customer (the notebook's "last row in file order" is then our "latest
by date"), both must keep the same customers and products and make the same split: same N, M,
feature_dim, train and test row counts, the same ratings in each set, and the same corpus lines.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
from contextlib import redirect_stdout
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from bench.synth_reviews import clean_shape, generate
from fm.recordio import read_sparse_records
from jobs.prep.job import PrepConfig, run_prep

REFERENCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "bench" / "seed_reference_prep.py"
pytestmark = pytest.mark.skipif(
    not REFERENCE.is_file(), reason=f"the notebook's reference code is not at {REFERENCE}"
)


def load_reference() -> ModuleType:
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    spec = importlib.util.spec_from_file_location("seed_reference_prep", REFERENCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def labels(files: list[Path]) -> list[float]:
    out: list[float] = []
    for path in files:
        with path.open("rb") as f:
            out += read_sparse_records(f).labels.tolist()
    return sorted(out)


def test_same_kept_customers_products_and_split_as_the_notebook(tmp_path: Path) -> None:
    data = generate(tmp_path / "in" / "reviews.tsv", clean_shape(30_000, seed=3))
    assert '"' not in data.read_text(encoding="utf-8")
    with redirect_stdout(io.StringIO()):
        load_reference().main(str(data), str(tmp_path / "ref"))
    ref = json.loads((tmp_path / "ref" / "summary.json").read_text())
    ours = run_prep(tmp_path / "in", tmp_path / "out", PrepConfig(), log=lambda _: None)
    counts = ours["counts"]
    assert isinstance(counts, dict)

    assert ref["rows_read"] == counts["rows_usable"] == 30_000
    assert ref["customers"] == ours["num_customers"] > 100
    assert ref["products"] == ours["num_products"] > 10
    assert ref["feature_dim"] == ours["feature_dim"]
    assert ref["test_rows"] == counts["test_rows"]
    assert ref["train_rows"] == counts["train_rows"]
    assert labels(sorted((tmp_path / "ref" / "test").iterdir())) == labels(
        [tmp_path / "out" / "test" / "part-00000.rio"]
    )
    assert labels(sorted((tmp_path / "ref" / "train").iterdir())) == labels(
        sorted((tmp_path / "out" / "train").iterdir())
    )
    # The same customers with the same titles in the same order (line order differs: we order by key).
    ref_lines = (tmp_path / "ref" / "customer_purchases.txt").read_text(encoding="utf-8").split("\n")
    our_lines = (tmp_path / "out" / "corpus" / "corpus.txt").read_text(encoding="utf-8").split("\n")
    assert our_lines[-1] == ""
    assert sorted(ref_lines) == sorted(our_lines[:-1])
    # And the bounded time feature instead of raw days.
    with (tmp_path / "out" / "test" / "part-00000.rio").open("rb") as f:
        test = read_sparse_records(f)
    time_values = test.values[2::3]
    assert np.all((time_values >= 0) & (time_values <= 1)) and time_values.max() > 0
