"""Equality with the notebook's own code (../shared/bench/seed_reference_prep.py) where the notebook is right.

On a generated file without quote characters (pandas' default quoting then loses nothing) and with rows
oldest-first with distinct dates per customer (the notebook's "last row in file order" is then our "latest
by date", and no date holds a tie for the split hash to break), both must keep the same customers and
products and make the same test split: same N, M, feature_dim, test rows, the same ratings in the test
set, and the same corpus lines. The notebook has no validation set: its train rows are ours plus every row
of our validation pairs (each validation row, and any other review of the same pair, leaves train), the
same count and the same ratings.
"""

from __future__ import annotations

import csv
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
from contract.index import held_out_title, load_index
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


def validation_pair_ratings(data: Path, out: Path) -> list[float]:
    """The ratings of every input row of a validation pair (customer id, product id), read with csv."""
    index = load_index(out / "index")
    with (out / "validation" / "part-00000.rio").open("rb") as f:
        keys = read_sparse_records(f).indices.reshape(-1, 3)
    pairs = {(index.customer_ids[u], index.product_ids[i - index.num_customers]) for u, i, _ in keys.tolist()}
    with data.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [
            float(row["star_rating"]) for row in reader if (row["customer_id"], row["product_id"]) in pairs
        ]


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
    assert labels(sorted((tmp_path / "ref" / "test").iterdir())) == labels(
        [tmp_path / "out" / "test" / "part-00000.rio"]
    )
    left_train = validation_pair_ratings(data, tmp_path / "out")
    assert counts["validation_rows"] > 100
    assert len(left_train) > counts["validation_rows"]  # some pairs were reviewed more than once
    assert ref["train_rows"] == counts["train_rows"] + len(left_train)
    assert labels(sorted((tmp_path / "ref" / "train").iterdir())) == sorted(
        labels(sorted((tmp_path / "out" / "train").iterdir())) + left_train
    )
    # The same customers with the same titles in the same order (line order differs: we order by key), but
    # for the held-out titles, which our corpus leaves out.
    ref_lines = (tmp_path / "ref" / "customer_purchases.txt").read_text(encoding="utf-8").split("\n")
    our_lines = (tmp_path / "out" / "corpus" / "corpus.txt").read_text(encoding="utf-8").split("\n")
    assert our_lines[-1] == ""
    held = {token for line in ref_lines for token in line.split() if held_out_title(token)}
    assert held and len(held) == ours["held_out_titles"]["titles"]
    assert sorted(" ".join(t for t in line.split() if t not in held) for line in ref_lines) == sorted(
        our_lines[:-1]
    )
    # And the bounded time feature instead of raw days.
    with (tmp_path / "out" / "test" / "part-00000.rio").open("rb") as f:
        test = read_sparse_records(f)
    time_values = test.values[2::3]
    assert np.all((time_values >= 0) & (time_values <= 1)) and time_values.max() > 0
