"""Convert MovieLens ratings into the Amazon Customer Reviews TSV schema, so the same prep job reads both.

    python -m local.movielens --input data/movielens-latest-small --output reviews/movielens.tsv

Mapping: customer_id = userId, product_id = movieId, product_parent = movieId, product_title = the movie's
title, star_rating = the rating with half stars rounded up (0.5 -> 1, 1.5 -> 2, ..., 4.5 -> 5; whole stars
unchanged), review_date = the UTC date of the timestamp, review_id = "ML<userId>-<movieId>". MovieLens has
no review text: headline and body are empty, votes 0, vine and verified_purchase "N". Rows come out newest
first, as in the Amazon files.

Rounding half stars up keeps every rating inside the 1..5 scale and maps the ten MovieLens grades onto five
stars monotonically; it raises the mean rating by 0.25 on half-star ratings, which the baselines and FM see
alike.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import math
import sys
from collections.abc import Iterator
from pathlib import Path

AMAZON_COLUMNS = (
    "marketplace",
    "customer_id",
    "review_id",
    "product_id",
    "product_parent",
    "product_title",
    "product_category",
    "star_rating",
    "helpful_votes",
    "total_votes",
    "vine",
    "verified_purchase",
    "review_headline",
    "review_body",
    "review_date",
)
HALF_STARS = {x / 2 for x in range(1, 11)}


class ConversionError(ValueError):
    """The MovieLens files are missing or malformed; the message names the file and line."""


def stars(rating: float) -> int:
    """A MovieLens grade (0.5..5.0 in half stars) as Amazon stars 1..5: half stars round up."""
    if rating not in HALF_STARS:
        raise ValueError(f"rating {rating} is not a MovieLens grade (0.5 to 5.0 in half stars)")
    return math.ceil(rating)


def _clean(text: str) -> str:
    """TSV without quoting cannot hold tabs or line breaks inside a field."""
    return " ".join(text.split())


def read_titles(movies_csv: Path) -> dict[str, str]:
    titles: dict[str, str] = {}
    with movies_csv.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"movieId", "title"} <= set(reader.fieldnames):
            raise ConversionError(f"{movies_csv}: expected a header with movieId and title")
        for row in reader:
            titles[row["movieId"]] = _clean(row["title"])
    return titles


def convert_rows(ratings_csv: Path, titles: dict[str, str]) -> Iterator[tuple[int, list[str]]]:
    """(timestamp, Amazon row) for each rating, in file order."""
    with ratings_csv.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != ["userId", "movieId", "rating", "timestamp"]:
            raise ConversionError(
                f"{ratings_csv}: expected the header userId,movieId,rating,timestamp, got {header}"
            )
        for line, fields in enumerate(reader, start=2):
            try:
                user, movie, rating, timestamp = fields
                seconds = int(timestamp)
                star = stars(float(rating))
            except ValueError as error:
                raise ConversionError(f"{ratings_csv}:{line}: {error}") from None
            if movie not in titles:
                raise ConversionError(f"{ratings_csv}:{line}: movieId {movie} has no title in movies.csv")
            date = dt.datetime.fromtimestamp(seconds, dt.UTC).date().isoformat()
            yield (
                seconds,
                [
                    "US",
                    user,
                    f"ML{user}-{movie}",
                    movie,
                    movie,
                    titles[movie],
                    "Movies",
                    str(star),
                    "0",
                    "0",
                    "N",
                    "N",
                    "",
                    "",
                    date,
                ],
            )


def convert(movielens_dir: Path, output: Path) -> int:
    """Write the Amazon-schema TSV; returns the number of reviews written."""
    ratings_csv, movies_csv = movielens_dir / "ratings.csv", movielens_dir / "movies.csv"
    for path in (ratings_csv, movies_csv):
        if not path.is_file():
            raise ConversionError(
                f"{path} not found: expected a MovieLens folder with ratings.csv and movies.csv"
            )
    rows = sorted(convert_rows(ratings_csv, read_titles(movies_csv)), key=lambda item: -item[0])
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", encoding="utf-8", newline="") as f:
        f.write("\t".join(AMAZON_COLUMNS) + "\n")
        for _, row in rows:
            f.write("\t".join(row) + "\n")
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--input", type=Path, required=True, help="MovieLens folder (ratings.csv, movies.csv)"
    )
    parser.add_argument("--output", type=Path, required=True, help="TSV file to write")
    args = parser.parse_args(argv)
    try:
        count = convert(args.input, args.output)
    except ConversionError as error:
        print(f"loftrec: {error}", file=sys.stderr)
        return 2
    print(f"wrote {count} reviews to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
