"""The cold-start experiment's own prep/: the index without the held-out products, the corpus without their
titles."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from contract.features import TimeTransform
from contract.index import load_index, write_index
from local.pipeline.cold_start import COLD_ENDPOINTS, corpus_without, held_out_index


def test_held_out_products_lose_their_ids_and_titles_and_every_key_stays(tmp_path: Path) -> None:
    write_index(
        tmp_path / "run",
        customer_ids=["C1", "C2"],
        first_review_days=[16000, 16100],
        product_ids=["P1", "P2", "P3"],
        titles=["Sherlock Season 1", "Sherlock Season 2", "The Crown"],
        time_transform=TimeTransform(scale_days=1000),
        global_mean=3.5,
    )
    index = load_index(tmp_path / "run")

    held_out_index(index, np.array([1], np.int64), tmp_path / "experiment")

    assert (tmp_path / "experiment" / "products.tsv").read_text() == (
        "P1\tSherlock Season 1\nheld-out-1\theld-out-1\nP3\tThe Crown\n"
    )
    for name in ("index.json", "customers.tsv"):
        assert (tmp_path / "experiment" / name).read_bytes() == (tmp_path / "run" / name).read_bytes()
    experiment = load_index(tmp_path / "experiment")
    assert experiment.product_rows == {"P1": 0, "held-out-1": 1, "P3": 2}
    assert "sherlock-season-2" not in experiment.title_rows


def test_the_corpus_loses_the_held_out_titles_on_every_line(tmp_path: Path) -> None:
    (tmp_path / "corpus.txt").write_text("a b c\nb d\nb\n", encoding="utf-8")
    corpus_without(tmp_path / "corpus.txt", tmp_path / "out" / "corpus.txt", {"b"})
    assert (tmp_path / "out" / "corpus.txt").read_text(encoding="utf-8") == "a c\nd\n\n"


def test_the_experiments_endpoints_are_its_own() -> None:
    assert COLD_ENDPOINTS == {"fm": "loftrec-cold-start-fm", "blazingtext": "loftrec-cold-start-blazingtext"}
