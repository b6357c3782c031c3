"""MovieLens 100k in the Amazon Customer Reviews TSV schema, for measuring on data the project never saw.

    pip download --no-deps recbole==1.2.1 -d /tmp/ml100k       # the wheel carries ml-100k's atomic files
    python bench/movielens100k.py --input /tmp/ml100k/recbole-1.2.1-py3-none-any.whl --output /tmp/ml100k/tsv

--input is the wheel or a folder holding ml-100k.inter and ml-100k.item (RecBole's atomic files: a typed
header line, then tab-separated fields). The mapping is local/movielens.py's: customer_id = user_id,
product_id = product_parent = item_id, product_title = "<movie_title> (<release_year>)", star_rating = the
rating (whole stars 1..5 in ml-100k), review_date = the UTC date of the timestamp. GroupLens's licence
forbids redistributing the data: it stays in a temporary folder, never in the repository.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from local.movielens import AMAZON_COLUMNS

MEMBER = "recbole/dataset_example/ml-100k/ml-100k.{}"
INTER_HEADER = ["user_id:token", "item_id:token", "rating:float", "timestamp:float"]


def _read(source: Path, kind: str) -> list[list[str]]:
    """The rows of ml-100k.<kind> after its header, checked against the expected first columns."""
    if source.is_dir():
        text = (source / f"ml-100k.{kind}").read_text(encoding="utf-8")
    else:
        with zipfile.ZipFile(source) as wheel:
            text = wheel.read(MEMBER.format(kind)).decode("utf-8")
    lines = text.split("\n")
    header = lines[0].split("\t")
    if kind == "inter" and header != INTER_HEADER:
        raise ValueError(f"ml-100k.inter: header {header}, expected {INTER_HEADER}")
    if kind == "item" and header[:3] != ["item_id:token", "movie_title:token_seq", "release_year:token"]:
        raise ValueError(f"ml-100k.item: header {header} does not start with item_id, title, release_year")
    return [line.split("\t") for line in lines[1:] if line]


def convert(source: Path, output: Path) -> int:
    """Write output (an Amazon-schema TSV file); return the number of reviews."""
    titles = {}
    for fields in _read(source, "item"):
        title = " ".join(fields[1].split())
        titles[fields[0]] = f"{title} ({fields[2]})" if fields[2] else title
    rows = []
    for line, (user, item, rating, timestamp) in enumerate(_read(source, "inter"), start=2):
        stars = float(rating)
        if stars not in {1.0, 2.0, 3.0, 4.0, 5.0} or item not in titles:
            raise ValueError(f"ml-100k.inter line {line}: rating {rating} or item {item} is not usable")
        seconds = int(float(timestamp))
        date = dt.datetime.fromtimestamp(seconds, dt.UTC).date().isoformat()
        row = ["US", user, f"ML100K{user}-{item}", item, item, titles[item], "Movies", str(int(stars))]
        rows.append((seconds, [*row, "0", "0", "N", "N", "", "", date]))
    rows.sort(key=lambda r: -r[0])
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", encoding="utf-8", newline="") as f:
        f.write("\t".join(AMAZON_COLUMNS) + "\n")
        for _, row in rows:
            f.write("\t".join(row) + "\n")
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--input", type=Path, required=True, help="recbole-1.2.1 wheel or ml-100k folder")
    parser.add_argument("--output", type=Path, required=True, help="a folder: writes ml-100k.tsv there")
    args = parser.parse_args(argv)
    try:
        count = convert(args.input, args.output / "ml-100k.tsv")
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        print(f"movielens100k: {e}", file=sys.stderr)
        return 2
    print(f"wrote {count:,} reviews to {args.output / 'ml-100k.tsv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
