"""Synthetic Amazon Customer Reviews TSV files at the shape of the Digital Video Download file.

The real file cannot be fetched any more (its bucket answers 403) and its rows may not be copied, so the
prep job's benchmark and tests run on files made here, in the same 15-column schema, with:
- the published per-customer (median 1, p90 4, p95 5, p99 13, max 2,704) and per-product (median 3, p75 9,
  p95 73, p99 387, max 32,790) review-count quantiles, customers and products paired at random;
- about 365 bytes a row, review_body dominating, so that gzip sees a file of the real size;
- newest-first row order, as the official files;
- the two kinds of dirt that matter to a parser: a few lines of 22 fields (review text holding tabs) and
  reviews whose text opens a quotation and never closes it (harmless without quoting, but a CSV parser
  with quoting on swallows the following lines).

Ratings follow a user bias + item bias + noise model, so that a bias baseline has something to find. With
`--signal K` they also hold a rank-K interaction <p_u, q_i>, the structure a factorization machine can find
and a bias model cannot; each product's latent vector then comes from a "series" (its cluster), and the
series names the first word of the title, so that titles carry signal for a cold start as well.

Usage: python -m bench.synth_reviews OUT.tsv[.gz] [--rows N] [--seed S] [--clean] [--signal K]
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

FULL_ROWS = 4_057_147
HEADER = (
    "marketplace\tcustomer_id\treview_id\tproduct_id\tproduct_parent\tproduct_title\tproduct_category\t"
    "star_rating\thelpful_votes\ttotal_votes\tvine\tverified_purchase\treview_headline\treview_body\t"
    "review_date"
)
# (cumulative probability, count) knots of the published quantiles; between knots the count is
# interpolated log-linearly against log(1 - p), a power-law tail.
CUSTOMER_QUANTILES = ((0.0, 1.0), (0.5, 1.0), (0.9, 4.0), (0.95, 5.0), (0.99, 13.0), (1.0, 2704.0))
PRODUCT_QUANTILES = ((0.0, 1.0), (0.5, 3.0), (0.75, 9.0), (0.95, 73.0), (0.99, 387.0), (1.0, 32790.0))
FIRST_DAY = 13392  # 2006-09-01, Amazon Unbox
LAST_DAY = 16678  # 2015-08-31, the newest review in the real file

_WORD_TEXT = (
    "the a and of to is it this was movie film show season episode great good love loved watch watched "
    "story acting actors character characters plot series best really very not but just like one time "
    "all would enjoyed well funny first more much can see even some also if only end ending well-made "
    "family kids fun amazing boring slow wonderful excellent beautiful classic drama comedy action thriller "
    "recommend highly bad worst ever could been will again picture quality sound streaming hd price "
    "amazon prime rent rental buy bought instant video download worth money waste minutes hours long "
    "short interesting entertaining predictable cast director scenes music script characters real life "
    "true history documentary british english season's next wait cannot favorite favourite old new"
)
_TITLE_WORD_TEXT = (
    "Sherlock Downton Abbey Breaking Bad Walking Dead Doctor Who House Cards Game Thrones Mad Men Lost "
    "Office Parks Recreation Justified Vikings Borgen Fargo Wire Sopranos Dexter Homeland Scandal Castle "
    "Bones Monk Psych Numbers Grimm Arrow Flash Gotham Constantine Outlander Poldark Broadchurch Luther "
    "Midsomer Murders Inspector Lewis Foyle's War Endeavour Shetland Vera Hinterland Wallander Frozen "
    "Gravity Interstellar Inception Avatar Titanic Rocky Alien Predator Matrix Heat Ronin Drive Her Up"
)
_WORDS = _WORD_TEXT.split()
_TITLE_WORDS = _TITLE_WORD_TEXT.split()


@dataclass(frozen=True)
class Shape:
    """What varies between the benchmark's file and a test's small file."""

    rows: int = FULL_ROWS
    seed: int = 7
    # Fractions of rows: review text with 7 tabs (22 fields), an unclosed opening quote, inner quotes.
    wide_rows: float = 10 / FULL_ROWS
    unclosed_quotes: float = 0.00045
    inner_quotes: float = 0.03
    # Fraction of products sold under a second title on some of their rows.
    title_variants: float = 0.05
    # Rows oldest-first with distinct dates within each customer, so that "last in file order" (the
    # notebook's test row) and "latest by date" (ours) pick the same row.
    ascending_distinct_dates: bool = False
    # Latent dimensions of the customer x product interaction (0: biases only), and its standard deviation.
    signal: int = 0
    signal_strength: float = 0.7


def _counts(quantiles: tuple[tuple[float, float], ...], total: int, rng: np.random.Generator) -> np.ndarray:
    """Per-entity review counts whose quantiles follow `quantiles` and whose sum is `total`."""
    p_knots = np.array([p for p, _ in quantiles])
    k_knots = np.log(np.array([k for _, k in quantiles]))
    tail = -np.log(np.maximum(1.0 - p_knots, 1.0 / (total + 1)))
    mean = float(np.exp(np.interp(-np.log(1.0 - rng.random(100_000) * 0.999999), tail, k_knots)).mean())
    n = max(1, int(total / mean * 1.05) + 10)
    u = rng.random(n)
    counts = np.floor(np.exp(np.interp(-np.log(1.0 - u * (1.0 - 1.0 / (n + 1))), tail, k_knots)) + 0.5)
    counts = counts.astype(np.int64)
    counts[np.argmax(counts)] = min(int(quantiles[-1][1]), total)  # the published maximum, once
    cum = np.cumsum(counts)
    last = int(np.searchsorted(cum, total))
    counts = counts[: last + 1]
    counts[-1] -= int(cum[last]) - total
    kept: np.ndarray = counts[counts > 0]
    return kept


def _sentences(rng: np.random.Generator, n: int, mean_words: float) -> list[str]:
    zipf = 1.0 / np.arange(1, len(_WORDS) + 1) ** 0.8
    zipf /= zipf.sum()
    lengths = np.maximum(1, rng.lognormal(np.log(mean_words), 0.7, n).astype(np.int64))
    words = rng.choice(len(_WORDS), size=int(lengths.sum()), p=zipf)
    out: list[str] = []
    pos = 0
    for length in lengths.tolist():
        text = " ".join(_WORDS[w] for w in words[pos : pos + length])
        pos += length
        out.append(text[:1].upper() + text[1:] + ".")
    return out


@dataclass(frozen=True)
class _Catalog:
    customer_ids: list[str]
    product_ids: list[str]
    parents: list[str]
    titles: list[str]
    variant: np.ndarray  # bool per product: sold under a second title on some rows


def _catalog(
    rng: np.random.Generator, n_cust: int, n_prod: int, shape: Shape, series: np.ndarray | None = None
) -> _Catalog:
    cust_ids = rng.choice(np.arange(10_000, 53_100_000), size=n_cust, replace=False)
    prod_num = rng.choice(36**7, size=n_prod, replace=False)
    prod_ids = ["B00" + np.base_repr(int(x), 36).rjust(7, "0") for x in prod_num]
    parents = rng.integers(100_000_000, 999_999_999, n_prod)
    tw = rng.integers(0, len(_TITLE_WORDS), (n_prod, 3))
    if series is not None:  # the first word of the title names the product's series
        tw[:, 0] = series
    kinds = rng.integers(0, 4, n_prod)
    seasons = rng.integers(1, 12, n_prod)
    titles = []
    for p in range(n_prod):
        a, b, c = (_TITLE_WORDS[i] for i in tw[p])
        kind = kinds[p]
        titles.append(
            f"{a} {b}: Season {seasons[p]}"
            if kind == 0
            else f"The {a} of {b} {c}"
            if kind == 1
            else f"{a} - Season {seasons[p]}, Episode {p % 24 + 1}"
            if kind == 2
            else f"{a}  {b} {c}"  # a double space: the notebook replaces each space, so "--"
        )
    variant = rng.random(n_prod) < shape.title_variants
    return _Catalog(
        customer_ids=[str(int(x)) for x in cust_ids],
        product_ids=prod_ids,
        parents=[str(int(x)) for x in parents],
        titles=titles,
        variant=variant,
    )


GLOBAL_MEAN = 4.2
USER_BIAS_SD = 0.6
ITEM_BIAS_SD = 0.5
NOISE_SD = 0.8


@dataclass(frozen=True)
class RatingModel:
    """The generator's hidden rating model, by its own customer and product numbers (catalog order):
    rating = clip(rint(mean + N(0, NOISE_SD)), 1, 5), mean = GLOBAL_MEAN + user_bias[c] + item_bias[p]
    (+ <users[c], items[p]> with a signal)."""

    user_bias: np.ndarray
    item_bias: np.ndarray
    users: np.ndarray | None  # (customers, signal), None without a signal
    items: np.ndarray | None  # (products, signal)

    def mean(self, cust: np.ndarray, prod: np.ndarray, *, interaction: bool = True) -> np.ndarray:
        """The noiseless score of (customer, product) pairs, before rounding."""
        out: np.ndarray = GLOBAL_MEAN + self.user_bias[cust] + self.item_bias[prod]
        if interaction and self.users is not None and self.items is not None:
            for lo in range(0, len(cust), 1 << 20):  # bounded temporaries at 4M rows
                hi = lo + (1 << 20)
                out[lo:hi] += np.einsum("rk,rk->r", self.users[cust[lo:hi]], self.items[prod[lo:hi]])
        return out


def _rating_model(
    rng: np.random.Generator, *, n_cust: int, n_prod: int, shape: Shape, series: np.ndarray | None
) -> tuple[RatingModel, np.ndarray]:
    """The hidden model and the rows' noise, drawn in the generator's order."""
    user_bias = rng.normal(0.0, USER_BIAS_SD, n_cust)
    item_bias = rng.normal(0.0, ITEM_BIAS_SD, n_prod)
    noise = rng.normal(0.0, NOISE_SD, shape.rows)
    if shape.signal <= 0 or series is None:
        return RatingModel(user_bias, item_bias, None, None), noise
    k = shape.signal
    # q_i: its series' centre plus a little of its own; <p_u, q_i> then has about signal_strength's
    # standard deviation.
    centres = rng.normal(0.0, 1.0, (len(_TITLE_WORDS), k))
    items = (centres[series] + rng.normal(0.0, 0.3, (n_prod, k))) / np.sqrt(1.09 * k)
    users = rng.normal(0.0, shape.signal_strength, (n_cust, k))
    return RatingModel(user_bias, item_bias, users, items), noise


def _ratings(model: RatingModel, noise: np.ndarray, cust: np.ndarray, prod: np.ndarray) -> np.ndarray:
    """Global mean + user bias + item bias (+ <p_u, q_i>) + noise, rounded into 1..5."""
    score = model.mean(cust, prod)
    score += noise
    rating: np.ndarray = np.clip(np.rint(score), 1, 5).astype(np.int64)
    return rating


def _dates(rng: np.random.Generator, cust: np.ndarray, shape: Shape) -> tuple[np.ndarray, np.ndarray]:
    """(day per row, file order): days skewed to recent years, as the category grew."""
    rows = len(cust)
    day = LAST_DAY - np.minimum(rng.exponential(700.0, rows), LAST_DAY - FIRST_DAY).astype(np.int64)
    if not shape.ascending_distinct_dates:
        return day, np.argsort(-day, kind="stable")  # newest first
    # Within a customer, make dates strictly increasing: d'_k = k + cummax(d_k - k).
    order = np.lexsort((day, cust))
    c_sorted, d_sorted = cust[order], day[order]
    starts = np.r_[0, np.flatnonzero(np.diff(c_sorted)) + 1]
    sizes = np.diff(np.r_[starts, rows])
    k = np.arange(rows) - np.repeat(starts, sizes)
    # A running max restarted at each customer: offset the groups so that no maximum leaks across.
    big = (np.repeat(np.arange(len(starts)), sizes) * 10**7).astype(np.int64)
    running = np.maximum.accumulate(d_sorted - k + big) - big
    day = np.empty_like(day)
    day[order] = running + k
    return day, np.argsort(day, kind="stable")


@dataclass(frozen=True)
class Drawn:
    """What a shape's rows are made of, up to the ratings: each row's customer and product numbers, the
    catalog (ids by those numbers) and the hidden rating model."""

    cust: np.ndarray
    prod: np.ndarray
    catalog: _Catalog
    model: RatingModel
    noise: np.ndarray


def draw(shape: Shape, rng: np.random.Generator | None = None) -> Drawn:
    """The first draws of a file (rng: a Generator seeded with shape.seed; the rows continue from it)."""
    rng = np.random.default_rng(shape.seed) if rng is None else rng
    rows = shape.rows
    cust_counts = _counts(CUSTOMER_QUANTILES, rows, rng)
    prod_counts = _counts(PRODUCT_QUANTILES, rows, rng)
    n_cust, n_prod = len(cust_counts), len(prod_counts)
    cust = rng.permutation(np.repeat(np.arange(n_cust), cust_counts))
    prod = rng.permutation(np.repeat(np.arange(n_prod), prod_counts))
    series = rng.integers(0, len(_TITLE_WORDS), n_prod) if shape.signal > 0 else None
    catalog = _catalog(rng, n_cust, n_prod, shape, series)
    model, noise = _rating_model(rng, n_cust=n_cust, n_prod=n_prod, shape=shape, series=series)
    return Drawn(cust, prod, catalog, model, noise)


def _rows(shape: Shape) -> Iterator[str]:
    rng = np.random.default_rng(shape.seed)
    rows = shape.rows
    drawn = draw(shape, rng)
    cust, prod, catalog = drawn.cust, drawn.prod, drawn.catalog
    rating = _ratings(drawn.model, drawn.noise, cust, prod)
    del drawn
    day, file_order = _dates(rng, cust, shape)

    bodies = _sentences(rng, 20_000, 17.0)
    heads = _sentences(rng, 5_000, 3.0)
    body_pick = rng.integers(0, len(bodies), (rows, 2))
    body_len = rng.integers(1, 4, rows)
    head_pick = rng.integers(0, len(heads), rows)
    votes = np.minimum(rng.geometric(0.5, (rows, 2)) - 1, 50)
    verified = rng.random(rows) < 0.85
    dirt = rng.random(rows)
    wide = dirt < shape.wide_rows
    unclosed = (dirt >= shape.wide_rows) & (dirt < shape.wide_rows + shape.unclosed_quotes)
    inner = rng.random(rows) < shape.inner_quotes
    variant_row = rng.random(rows) < 0.3
    review_ids = rng.integers(36**11, 36**12, rows, dtype=np.int64)
    epoch = np.datetime64("1970-01-01", "D")
    date_text = {int(d): str(epoch + int(d)) for d in np.unique(day).tolist()}
    cust_text, prod_ids, parent_text, titles = (
        catalog.customer_ids,
        catalog.product_ids,
        catalog.parents,
        catalog.titles,
    )

    for r in file_order.tolist():
        c, p = int(cust[r]), int(prod[r])
        b0, b1 = body_pick[r]
        n_body = body_len[r]
        body = bodies[b0] if n_body == 1 else bodies[b0] + " " + bodies[b1]
        if n_body == 3:
            body = body + " " + bodies[(b0 + b1) % len(bodies)]
        if inner[r]:
            body = 'My wife said "' + heads[head_pick[r]] + '" and ' + body
        if unclosed[r]:
            body = '"' + body
        if wide[r]:
            body = "\t".join(body.split(" ", 7))
        title = titles[p] + " [HD]" if catalog.variant[p] and variant_row[r] else titles[p]
        hv, tv = votes[r]
        yield (
            f"US\t{cust_text[c]}\tR{np.base_repr(int(review_ids[r]), 36)}\t{prod_ids[p]}\t{parent_text[p]}\t"
            f"{title}\tDigital_Video_Download\t{rating[r]}\t{hv}\t{hv + tv}\tN\t"
            f"{'Y' if verified[r] else 'N'}\t{heads[head_pick[r]]}\t{body}\t{date_text[int(day[r])]}"
        )


def write_reviews(out: IO[str], shape: Shape) -> None:
    """Write the header and shape.rows rows to a text stream."""
    out.write(HEADER + "\n")
    batch: list[str] = []
    for line in _rows(shape):
        batch.append(line)
        if len(batch) >= 10_000:
            out.write("\n".join(batch) + "\n")
            batch.clear()
    if batch:
        out.write("\n".join(batch) + "\n")


def generate(path: Path, shape: Shape) -> Path:
    """Write a synthetic file to `path` (gzip-compressed if it ends with .gz), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    if path.suffix == ".gz":
        gzip_bin = shutil.which("gzip")
        if gzip_bin is None:  # pragma: no cover - gzip is on every machine this runs on
            with gzip.open(tmp, "wt", encoding="utf-8", newline="\n") as out:
                write_reviews(out, shape)
        else:
            # A gzip process compresses while Python writes: the two cores overlap.
            with tmp.open("wb") as raw:
                proc = subprocess.Popen([gzip_bin, "-6", "-c"], stdin=subprocess.PIPE, stdout=raw)
                assert proc.stdin is not None
                with open(proc.stdin.fileno(), "w", encoding="utf-8", newline="\n", closefd=False) as out:
                    write_reviews(out, shape)
                proc.stdin.close()
                if proc.wait() != 0:
                    raise RuntimeError(f"gzip failed with exit code {proc.returncode}")
    else:
        with tmp.open("w", encoding="utf-8", newline="\n") as out:
            write_reviews(out, shape)
    tmp.replace(path)
    return path


def clean_shape(rows: int, seed: int = 7) -> Shape:
    """A file without quote characters or wide lines, in oldest-first order with distinct dates per
    customer: the notebook's code and the prep job must agree on it exactly."""
    return Shape(
        rows=rows,
        seed=seed,
        wide_rows=0.0,
        unclosed_quotes=0.0,
        inner_quotes=0.0,
        title_variants=0.0,
        ascending_distinct_dates=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--rows", type=int, default=FULL_ROWS)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--clean", action="store_true", help="no quotes, no wide lines (see clean_shape)")
    parser.add_argument(
        "--signal", type=int, default=0, help="latent dimensions of a customer x product interaction (0)"
    )
    args = parser.parse_args()
    shape = clean_shape(args.rows, args.seed) if args.clean else Shape(rows=args.rows, seed=args.seed)
    shape = dataclasses.replace(shape, signal=args.signal)
    generate(args.out, shape)


if __name__ == "__main__":
    main()
