"""The title-table exporter: vectors.txt (alone or in model.tar.gz) -> serving/titles.{txt,f32,json}."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from contract import index as contract_index
from contract.features import TimeTransform
from contract.index import held_out_title, title_token
from lambdas.serving.title_table import build_title_table, export_title_table, handler
from lambdas.serving.vectors import parse_title_table
from tests.lambdas.serving.support import trained_blazingtext, uri, word_vector, write_index

KNOWN_IN_VOCABULARY = {
    "sherlock-season-1",
    "sherlock-season-2",
    "sherlock-season-3",
    "the-imitation-game",
    "keeping-up-with-the-kardashians-season-1",
    "keeping-up-with-the-kardashians-season-2",
    "downton-abbey-season-1",
    "the-crown-season-1",
}


def _model_tar_gz(path: Path) -> Path:
    """A model.tar.gz as BlazingText writes it: vectors.bin and vectors.txt at the top."""
    source = trained_blazingtext()
    with tarfile.open(path, "w:gz") as archive:
        for name in ("vectors.bin", "vectors.txt"):
            archive.add(source / name, arcname=name)
    return path


def _read(folder: Path, stem: str = "titles") -> tuple[bytes, bytes, bytes]:
    return tuple((folder / f"{stem}.{ext}").read_bytes() for ext in ("txt", "f32", "json"))  # type: ignore[return-value]


def test_export_keeps_the_known_titles_as_unit_rows_and_round_trips(tmp_path: Path) -> None:
    write_index(tmp_path / "index")
    summary = export_title_table(
        uri(trained_blazingtext() / "vectors.txt"), uri(tmp_path / "index"), uri(tmp_path / "serving") + "/"
    )

    assert summary == {
        "title_table_uri": uri(tmp_path / "serving") + "/",
        "count": 8,
        "dim": 24,
        "vocabulary": 9,  # + the-real-housewives-season-1, not a known product
        "known_titles": 9,  # 10 products, two share the token sherlock-season-1
        "known_titles_without_vector": 1,  # an-obscure-film is not in the vocabulary
        "zero_vectors": 0,
        "held_out_titles": 1,  # the-crown-season-1 (contract.index.held_out_title)
        "held_out_with_vector": 0,  # vectors.txt alone has no n-grams
        "held_out_problem": f"{uri(trained_blazingtext() / 'vectors.txt')}: no vectors.bin",
    }
    assert json.loads((tmp_path / "serving" / "titles.json").read_text()) == {"dim": 24, "count": 8}
    table = parse_title_table(*_read(tmp_path / "serving"))
    assert set(table.tokens) == KNOWN_IN_VOCABULARY
    for token in table.tokens:
        expected = word_vector(token) / np.linalg.norm(word_vector(token))
        assert table.vector(token) == pytest.approx(expected, abs=1e-6)
    assert np.linalg.norm(table.matrix, axis=1) == pytest.approx(np.ones(8), abs=1e-6)


def test_a_model_tar_gz_and_a_folder_give_the_same_table_as_vectors_txt(tmp_path: Path) -> None:
    write_index(tmp_path / "index")
    index = uri(tmp_path / "index") + "/"
    archive = _model_tar_gz(tmp_path / "model.tar.gz")
    export_title_table(uri(trained_blazingtext() / "vectors.txt"), index, uri(tmp_path / "from-txt"))
    export_title_table(uri(archive), index, uri(tmp_path / "from-tar"))
    export_title_table(uri(trained_blazingtext()) + "/", index, uri(tmp_path / "from-folder"))

    assert _read(tmp_path / "from-tar") == _read(tmp_path / "from-txt")
    assert _read(tmp_path / "from-folder") == _read(tmp_path / "from-txt")
    assert _read(tmp_path / "from-tar", "held_out_titles") == _read(
        tmp_path / "from-folder", "held_out_titles"
    )


def test_the_held_out_titles_get_the_vectors_fasttext_gives_them(tmp_path: Path) -> None:
    """The held-out table holds each held-out known title with fastText's own vector for it (gensim's reader
    of the same vectors.bin): from its n-grams alone when the corpus never held it."""
    from gensim.models.fasttext import load_facebook_vectors  # noqa: PLC0415 (slow import)

    unseen = "Sherlock Season 23"  # held out, and in no corpus line: n-grams only
    assert held_out_title(title_token(unseen)) and not held_out_title("sherlock-season-1")
    contract_index.write_index(
        tmp_path / "index",
        customer_ids=["C1"],
        first_review_days=[16000],
        product_ids=["P-SH1", "P-CR1", "P-SH23", "P-BANG"],
        titles=["Sherlock Season 1", "The Crown Season 1", unseen, "!"],
        time_transform=TimeTransform(scale_days=100),
        global_mean=4.0,
    )
    summary = export_title_table(
        uri(_model_tar_gz(tmp_path / "model.tar.gz")), uri(tmp_path / "index"), uri(tmp_path / "s")
    )

    assert (summary["held_out_titles"], summary["held_out_with_vector"]) == (2, 2)
    assert "held_out_problem" not in summary
    held = parse_title_table(*_read(tmp_path / "s", "held_out_titles"))
    assert held.tokens == ["sherlock-season-23", "the-crown-season-1"]
    reference = load_facebook_vectors(str(trained_blazingtext() / "vectors.bin"))
    assert "sherlock-season-23" not in reference.key_to_index
    for token in held.tokens:
        expected = reference[token] / np.linalg.norm(reference[token])
        assert held.vector(token) == pytest.approx(expected, abs=1e-6)
    # The known table is unchanged by it: the held-out table is extra.
    assert sorted(parse_title_table(*_read(tmp_path / "s")).tokens) == [
        "sherlock-season-1",
        "the-crown-season-1",
    ]


def test_exact_bytes_of_a_hand_made_table() -> None:
    lines = io.BytesIO(
        b"5 2\n</s> 0.1 0.2\nsherlock-season-1 3 4 \nnot-a-title 1 1\nzero-title 0 0\nthe-crown -2 0\n"
    ).read()
    table = build_title_table(lines.splitlines(), {"sherlock-season-1", "zero-title", "the-crown", "unseen"})

    assert table.titles_txt == b"sherlock-season-1\nthe-crown\n"
    assert table.titles_f32 == np.array([0.6, 0.8, -1.0, 0.0], dtype="<f4").tobytes()
    assert json.loads(table.titles_json) == {"dim": 2, "count": 2}
    assert (table.vocabulary, table.zero_vectors) == (5, 1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"", "vectors.txt line 1: b'' is not '<count> <dim>'"),
        (b"3 two\n", "vectors.txt line 1: b'3 two' is not '<count> <dim>'"),
        (b"2 3\nknown 1 2 3\nother 1\nknown2 1 2\n", "vectors.txt line 4: 2 values for 'known2', expected 3"),
        (b"1 2\nknown 1 x\n", "vectors.txt line 2: a value of 'known' is not a number"),
        (b"1 2\nknown 1 inf\n", "vectors.txt line 2: the vector of 'known' is not finite"),
    ],
)
def test_malformed_vectors_txt_names_the_line(text: bytes, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        build_title_table(text.splitlines(), {"known", "known2"})
    assert str(raised.value) == message


def test_the_pipeline_handler_writes_the_table_and_checks_its_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_index(tmp_path / "index")
    archive = _model_tar_gz(tmp_path / "model.tar.gz")
    event = {
        "model_artifact_uri": uri(archive),
        "index_uri": uri(tmp_path / "index") + "/",
        "output_uri": uri(tmp_path / "run" / "serving") + "/",
    }

    summary = handler(event, None)

    assert summary["count"] == 8
    assert (tmp_path / "run" / "serving" / "titles.f32").stat().st_size == 8 * 24 * 4
    log = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert log["message"] == "exported the title table"
    assert log["counts"]["count"] == 8
    with pytest.raises(
        ValueError, match=r"event\.index_uri is None: a non-empty s3:// or file:// URI is required"
    ):
        handler({"model_artifact_uri": uri(archive), "output_uri": "file:///tmp/x/"}, None)


def test_an_archive_without_vectors_or_without_known_titles_is_an_error(tmp_path: Path) -> None:
    write_index(tmp_path / "index")
    index = uri(tmp_path / "index")
    empty = tmp_path / "empty.tar.gz"
    with tarfile.open(empty, "w:gz") as archive:
        archive.add(trained_blazingtext() / "vectors.bin", arcname="vectors.bin")
    with pytest.raises(ValueError, match=r"no vectors\.txt in the archive"):
        export_title_table(uri(empty), index, uri(tmp_path / "out"))

    other = tmp_path / "other.txt"
    other.write_text("1 2\nsomething-else 1 0\n")
    with pytest.raises(ValueError, match="none of the 1 vectors is the title of a known product"):
        export_title_table(uri(other), index, uri(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_a_vectors_bin_that_is_not_fasttexts_leaves_the_held_out_table_empty_and_says_why(
    tmp_path: Path,
) -> None:
    write_index(tmp_path / "index")
    archive = tmp_path / "model.tar.gz"
    (tmp_path / "vectors.bin").write_bytes(b"not a model")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "vectors.bin", arcname="vectors.bin")
        tar.add(trained_blazingtext() / "vectors.txt", arcname="vectors.txt")

    summary = export_title_table(uri(archive), uri(tmp_path / "index"), uri(tmp_path / "s"))

    assert summary["count"] == 8  # the title table is whole: the shims need nothing else
    assert summary["held_out_with_vector"] == 0
    assert (
        summary["held_out_problem"]
        == f"{uri(archive)}: vectors.bin: magic 544501614, not fastText's 793712314"
    )
    held = parse_title_table(*_read(tmp_path / "s", "held_out_titles"))
    assert (held.tokens, held.dim) == ([], 24)
