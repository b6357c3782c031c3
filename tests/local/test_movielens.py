"""The MovieLens converter: Amazon schema, half stars, dates, order, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from local.movielens import AMAZON_COLUMNS, convert, main, stars

ROOT = Path(__file__).resolve().parents[2]


def write(folder: Path, ratings: str, movies: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.csv").write_text(ratings)
    (folder / "movies.csv").write_text(movies)
    return folder


MOVIES = 'movieId,title,genres\n1,Toy Story (1995),Animation\n2,"American President, The (1995)",Comedy\n'


@pytest.mark.parametrize(
    ("rating", "expected"),
    [(0.5, 1), (1.0, 1), (1.5, 2), (2.0, 2), (2.5, 3), (3.0, 3), (3.5, 4), (4.0, 4), (4.5, 5), (5.0, 5)],
)
def test_half_stars_round_up(rating: float, expected: int) -> None:
    assert stars(rating) == expected


@pytest.mark.parametrize("rating", [0.0, 5.5, 3.3, -1.0])
def test_other_grades_are_refused(rating: float) -> None:
    with pytest.raises(ValueError, match="is not a MovieLens grade"):
        stars(rating)


def test_rows_in_amazon_schema_newest_first(tmp_path: Path) -> None:
    folder = write(
        tmp_path / "ml",
        "userId,movieId,rating,timestamp\n7,1,4.5,964982703\n7,2,0.5,1537000000\n",
        MOVIES,
    )
    out = tmp_path / "out" / "reviews.tsv"
    assert convert(folder, out) == 2
    lines = out.read_text().splitlines()
    assert lines[0].split("\t") == list(AMAZON_COLUMNS)
    first = dict(zip(AMAZON_COLUMNS, lines[1].split("\t"), strict=True))
    second = dict(zip(AMAZON_COLUMNS, lines[2].split("\t"), strict=True))
    assert first["review_date"] == "2018-09-15"  # 1537000000 s, UTC
    assert first["product_title"] == "American President, The (1995)"
    assert first["star_rating"] == "1"
    assert second == {
        "marketplace": "US",
        "customer_id": "7",
        "review_id": "ML7-1",
        "product_id": "1",
        "product_parent": "1",
        "product_title": "Toy Story (1995)",
        "product_category": "Movies",
        "star_rating": "5",
        "helpful_votes": "0",
        "total_votes": "0",
        "vine": "N",
        "verified_purchase": "N",
        "review_headline": "",
        "review_body": "",
        "review_date": "2000-07-30",
    }


def test_unknown_movie_names_the_line(tmp_path: Path) -> None:
    folder = write(tmp_path, "userId,movieId,rating,timestamp\n1,1,4.0,1\n1,99,3.0,2\n", MOVIES)
    assert main(["--input", str(folder), "--output", str(tmp_path / "x.tsv")]) == 2


def test_bad_rating_names_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = write(tmp_path, "userId,movieId,rating,timestamp\n1,1,4.0,1\n1,2,six,2\n", MOVIES)
    assert main(["--input", str(folder), "--output", str(tmp_path / "x.tsv")]) == 2
    assert "ratings.csv:3: could not convert string to float: 'six'" in capsys.readouterr().err


def test_missing_folder_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--input", str(tmp_path / "nowhere"), "--output", str(tmp_path / "x.tsv")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("loftrec: ") and "ratings.csv not found" in err and "\n" not in err


def test_bundled_data_converts_whole(tmp_path: Path) -> None:
    out = tmp_path / "movielens.tsv"
    assert convert(ROOT / "data" / "movielens-latest-small", out) == 100_836
    rows = out.read_text().splitlines()[1:]
    assert {row.split("\t")[7] for row in rows} == {"1", "2", "3", "4", "5"}
    assert all(len(row.split("\t")) == 15 for row in rows)
