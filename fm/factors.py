"""FM's parameters laid out for top-N: what a shim or a batch job loads to score every product for a customer.

FM's score of customer u (key u), product i (key N + i) and time value t (key N + M) is, with x_u = x_i = 1
and x_t = t (contract.features),

    w0 + w_u + w_i + t w_t + <v_u, v_i> + t <v_u, v_t> + t <v_i, v_t>

so for one customer and every product at once it is one matrix-vector product,

    items @ [v_u, 1, t]  +  (w0 + w_u + t (w_t + <v_u, v_t>))

where row i of ``items`` is [v_i, w_i, <v_i, v_t>] and row u of ``customers`` is [v_u, w_u, <v_u, v_t>].

The files, in the run's serving/fm/ (contract.layout.SERVING_FACTORS), N customers, M products, K factors:

    items.npy             float32 (M, K + 2)  row i: v_i (K), w_i, <v_i, v_t>
    customers.npy         float32 (N, K + 2)  row u: v_u (K), w_u, <v_u, v_t>
    time_factor.npy       float32 (K,)        v_t
    reviewed_indptr.npy   int64   (N + 1,)    customer u reviewed the product rows
    reviewed_indices.npy  int32   (R,)          reviewed_indices[indptr[u]:indptr[u + 1]], ascending, distinct
    popularity.npy        int64   (M,)        reviews per product in the rows the factors were built from
    customer_base.npy     float32 (N,)        mu + b_u: the user-bias prediction, unclipped (fm.biases), the
                                              rating a cold start is shrunk toward
    factors.json          written last: {schema_version, num_customers, num_products, num_factors,
                          feature_dim, w0, time_weight (w_t), base_mean (mu: an unknown customer's base),
                          reviewed_pairs (R), reviewed_rows, files: {name: {shape, dtype}}}

Plain .npy (little-endian, C order) so that a reader maps them (np.load(mmap_mode="r")) or takes them from
bytes without a copy. The products of v_t are computed in float64 and stored as float32, the parameters'
own precision. The reviewed products and the popularity come from the prep shards given to the builder: the
train shards alone for an evaluation that ranks held-out reviews, train, validation and test for serving
(every review the run knows of); `combine_reviewed` joins the sets of several shard groups. The customer base
is the bias model fitted on the train rows (the prep job's user-bias baseline, before clipping).

One writer (factors_files: each file's bytes in turn, factors.json last; write_factors and build_and_write
put them in a folder) and one reader (load_factors, parse_factors); a missing, truncated or mismatched file
raises FactorsFormatError naming the file and the problem.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from contract.features import NONZEROS_PER_ROW, FeatureLayout
from fm.artifact import FmParameters, read_fm_artifact
from fm.biases import CustomerBase, customer_base
from fm.recordio import iter_sparse_record_chunks

__all__ = [
    "FACTORS_FILES",
    "FACTORS_MANIFEST",
    "FACTORS_SCHEMA_VERSION",
    "FactorsFormatError",
    "RatedPairs",
    "ReviewedProducts",
    "ServingFactors",
    "base_of",
    "build_and_write",
    "build_factors",
    "combine_reviewed",
    "factors_files",
    "load_factors",
    "parse_factors",
    "rated_pairs",
    "reviewed_of",
    "reviewed_products",
    "write_factors",
]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]

FACTORS_SCHEMA_VERSION = 2
FACTORS_MANIFEST = "factors.json"
# name -> dtype; shapes follow from N, M and K (see _expected_shapes).
_DTYPES: dict[str, np.dtype[Any]] = {
    "items.npy": np.dtype("<f4"),
    "customers.npy": np.dtype("<f4"),
    "time_factor.npy": np.dtype("<f4"),
    "reviewed_indptr.npy": np.dtype("<i8"),
    "reviewed_indices.npy": np.dtype("<i4"),
    "popularity.npy": np.dtype("<i8"),
    "customer_base.npy": np.dtype("<f4"),
}
FACTORS_FILES = (*_DTYPES, FACTORS_MANIFEST)
"""Every file of serving/fm/, factors.json last."""
# Column offsets in items.npy / customers.npy after the K factors.
LINEAR = 0
TIME = 1
EXTRA_COLUMNS = 2
_MAX_HEADER_BYTES = 10 + (1 << 16)  # a format 1.0 header: 10 bytes of preamble, at most 65,535 of text


class FactorsFormatError(ValueError):
    """A serving-factors file is missing, malformed or disagrees with the others or with the index."""


Source = Path | str | bytes | BinaryIO
Named = tuple[str, Source]
"""A source with the name its errors give it (e.g. its URI)."""


@dataclass(frozen=True)
class ReviewedProducts:
    """Who reviewed what in a set of prep rows: per customer the distinct product rows (CSR), per product
    the number of rows."""

    indptr: I64
    indices: I32
    popularity: I64
    rows: int


@dataclass(frozen=True)
class ServingFactors:
    """serving/fm/ in memory (arrays may be read-only maps of the files)."""

    w0: float
    time_weight: float
    time_factor: F32
    items: F32
    customers: F32
    reviewed_indptr: I64
    reviewed_indices: I32
    popularity: I64
    reviewed_rows: int
    base_mean: float = math.nan
    """mu of the bias model fitted on the train rows: the base of a customer the factors do not know."""
    customer_base: F32 = field(default_factory=lambda: np.zeros(0, np.float32))
    """(N,) mu + b_u per customer (fm.biases.customer_base)."""

    def __post_init__(self) -> None:
        """Factors made without a customer base (for top-N alone, e.g. a benchmark's): every customer's base
        is w0, FM's global bias."""
        if self.customer_base.shape[0] == 0 and self.customers.shape[0] > 0:
            object.__setattr__(self, "base_mean", float(self.w0))
            object.__setattr__(self, "customer_base", np.full(self.customers.shape[0], self.w0, np.float32))

    def with_reviewed(self, reviewed: ReviewedProducts) -> ServingFactors:
        """The same parameters with other reviewed products and popularity (e.g. the train rows' alone)."""
        return dataclasses.replace(
            self,
            reviewed_indptr=reviewed.indptr,
            reviewed_indices=reviewed.indices,
            popularity=reviewed.popularity,
            reviewed_rows=reviewed.rows,
        )

    def base(self, customers: npt.ArrayLike) -> F64:
        """The user-bias prediction (unclipped) per customer key; -1 (unknown) gets base_mean."""
        keys: I64 = np.asarray(customers, np.int64)
        known = keys >= 0
        values: F64 = np.full(keys.shape, self.base_mean, np.float64)
        values[known] = self.customer_base[keys[known]]
        return values

    @property
    def num_customers(self) -> int:
        return int(self.customers.shape[0])

    @property
    def num_products(self) -> int:
        return int(self.items.shape[0])

    @property
    def num_factors(self) -> int:
        return int(self.time_factor.shape[0])

    @property
    def features(self) -> FeatureLayout:
        return FeatureLayout(self.num_customers, self.num_products)

    def reviewed(self, customer: int) -> I32:
        """The product rows customer u reviewed, ascending."""
        return self.reviewed_indices[self.reviewed_indptr[customer] : self.reviewed_indptr[customer + 1]]

    @cached_property
    def popular_rows(self) -> I64:
        """Product rows by descending review count, ties by row."""
        order: I64 = np.lexsort((np.arange(self.num_products), -self.popularity))
        return order

    @cached_property
    def typical_item(self) -> F64:
        """The review-weighted average product (K + 2,: factors, weight, time term), in float64: what a
        customer's review is of on average, the product a new one is shrunk toward. Every product counts
        once when no product has a review."""
        weights = self.popularity.astype(np.float64)
        if weights.sum() <= 0:
            weights = np.ones(self.num_products, np.float64)
        total = np.zeros(self.items.shape[1], np.float64)
        for lo in range(0, self.num_products, 8192):  # float64 a block at a time, not a copy of every item
            total += weights[lo : lo + 8192] @ self.items[lo : lo + 8192].astype(np.float64)
        typical: F64 = total / weights.sum()
        return typical

    @cached_property
    def log_popularity(self) -> F32:
        """log(1 + review count) per product, the popularity term of a blended ranking."""
        values: F32 = np.log1p(self.popularity.astype(np.float64)).astype(np.float32)
        return values

    def check_index(self, features: FeatureLayout, where: str = FACTORS_MANIFEST) -> None:
        """FactorsFormatError unless the factors are for the index's customers and products."""
        if features != self.features:
            raise FactorsFormatError(
                f"{where}: the factors are for {self.num_customers:,} customers and {self.num_products:,} "
                f"products, the index has {features.num_customers:,} and {features.num_products:,}: "
                "they come from different runs"
            )


# ---------------------------------------------------------------------------------------------- building


def _open(source: Source) -> tuple[BinaryIO, bool]:
    """A binary stream and whether it is ours to close."""
    if isinstance(source, bytes | bytearray | memoryview):
        return io.BytesIO(source), True
    if isinstance(source, Path | str):
        return Path(source).open("rb"), True
    return source, False


def _prep_keys(indptr: I64, indices: I64, features: FeatureLayout, where: str) -> tuple[I64, I64]:
    """(customer, product row) of each row; FactorsFormatError names the first row that is not a prep row
    (`where` names the shard and the chunk's first row)."""
    n, m = features.num_customers, features.num_products
    counts = np.diff(indptr)
    keys = indices.reshape(-1, NONZEROS_PER_ROW) if bool((counts == NONZEROS_PER_ROW).all()) else None
    ok = None
    if keys is not None:
        ok = (keys[:, 0] < n) & (keys[:, 1] >= n) & (keys[:, 1] < n + m) & (keys[:, 2] == features.time_key)
    if keys is None or ok is None or not bool(ok.all()):
        bad = int(np.argmax(counts != NONZEROS_PER_ROW)) if ok is None else int(np.argmin(ok))
        raise FactorsFormatError(f"{where}{bad:,} is not a prep row (user key, item key, time key)")
    return keys[:, 0].copy(), keys[:, 1] - n


@dataclass(frozen=True)
class RatedPairs:
    """The rows of some prep shards: customer key, product row and rating of each."""

    customers: I64
    products: I64
    ratings: F32


def rated_pairs(shards: Iterable[Source | Named], features: FeatureLayout) -> RatedPairs:
    """The (customer, product, rating) rows of prep's RecordIO shards (paths, bytes or binary streams, each
    alone or as (name, source)). Shards are opened one at a time, in order (an iterator may open each as it
    is reached).

    Every row must be a prep row: exactly (user key, item key, time key) in that order, of the index's
    feature_dim; anything else raises FactorsFormatError naming the shard and the row."""
    users: list[I64] = []
    items: list[I64] = []
    labels: list[F32] = []
    for number, entry in enumerate(shards):
        if isinstance(entry, tuple):
            name, shard = entry
        else:
            shard = entry
            name = str(shard) if isinstance(shard, Path | str) else f"shard {number}"
        stream, ours = _open(shard)
        first = 0
        try:
            for chunk in iter_sparse_record_chunks(stream):
                if chunk.feature_dim != features.feature_dim:
                    raise FactorsFormatError(
                        f"{name}: feature_dim {chunk.feature_dim:,}, the index's is {features.feature_dim:,}"
                    )
                user, item = _prep_keys(chunk.indptr, chunk.indices, features, f"{name}: row {first:,} + ")
                users.append(user)
                items.append(item)
                labels.append(chunk.labels)
                first += user.shape[0]
        except ValueError as e:
            if isinstance(e, FactorsFormatError):
                raise
            raise FactorsFormatError(f"{name}: {e}") from None
        finally:
            if ours:
                stream.close()
    return RatedPairs(
        customers=np.concatenate(users) if users else np.empty(0, np.int64),
        products=np.concatenate(items) if items else np.empty(0, np.int64),
        ratings=np.concatenate(labels).astype(np.float32) if labels else np.empty(0, np.float32),
    )


def reviewed_of(pairs: RatedPairs, features: FeatureLayout) -> ReviewedProducts:
    """Who reviewed what in these rows."""
    user, item, m = pairs.customers, pairs.products, features.num_products
    return _reviewed(
        user * m + item, features, np.bincount(item, minlength=m).astype(np.int64), int(user.shape[0])
    )


def reviewed_products(shards: Iterable[Source | Named], features: FeatureLayout) -> ReviewedProducts:
    """The (customer, product) pairs of prep's RecordIO shards, read and checked as `rated_pairs` reads
    them."""
    return reviewed_of(rated_pairs(shards, features), features)


def base_of(pairs: RatedPairs, features: FeatureLayout) -> CustomerBase:
    """The customer base (fm.biases.customer_base, prep's BiasSettings) fitted on these rows (the train
    rows)."""
    return customer_base(
        pairs.customers,
        pairs.products,
        pairs.ratings,
        num_users=features.num_customers,
        num_items=features.num_products,
    )


def _reviewed(codes: I64, features: FeatureLayout, popularity: I64, rows: int) -> ReviewedProducts:
    """The CSR of the distinct pairs among codes (customer * M + product row)."""
    n, m = features.num_customers, features.num_products
    pairs = np.sort(codes)  # np.unique's hashing is several times slower on millions of pairs
    pairs = pairs[np.r_[True, pairs[1:] != pairs[:-1]]] if pairs.shape[0] else pairs
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(pairs // m, minlength=n), out=indptr[1:])
    return ReviewedProducts(
        indptr=indptr, indices=(pairs % m).astype(np.int32), popularity=popularity, rows=rows
    )


def combine_reviewed(parts: Sequence[ReviewedProducts], features: FeatureLayout) -> ReviewedProducts:
    """The reviewed products of several shard groups together (e.g. train, validation and test): the union
    of each customer's products, the review counts and rows summed."""
    n, m = features.num_customers, features.num_products
    for part in parts:
        if part.indptr.shape != (n + 1,) or part.popularity.shape != (m,):
            raise FactorsFormatError(
                f"reviewed products for {part.indptr.shape[0] - 1:,} customers and "
                f"{part.popularity.shape[0]:,} products cannot join the index's {n:,} and {m:,}"
            )
    codes = [
        np.repeat(np.arange(n, dtype=np.int64), np.diff(part.indptr)) * m + part.indices.astype(np.int64)
        for part in parts
    ]
    return _reviewed(
        np.concatenate(codes) if codes else np.empty(0, np.int64),
        features,
        np.sum([part.popularity for part in parts], axis=0, dtype=np.int64)
        if parts
        else np.zeros(m, np.int64),
        sum(part.rows for part in parts),
    )


def build_factors(
    params: FmParameters,
    features: FeatureLayout,
    reviewed: ReviewedProducts,
    base: CustomerBase | None = None,
) -> ServingFactors:
    """Lay FM's parameters out for top-N (see the module docstring), with the customer base of the train
    rows (`base_of`); without one (factors for top-N alone), every customer's base is w0."""
    if base is None:
        n = features.num_customers
        base = CustomerBase(mean=float(params.w0), values=np.full(n, params.w0, np.float32))
    if params.feature_dim != features.feature_dim:
        raise FactorsFormatError(
            f"the model has feature_dim {params.feature_dim:,}, the index {features.feature_dim:,} "
            f"({features.num_customers:,} customers + {features.num_products:,} products + 1): "
            "they come from different runs"
        )
    n, m = features.num_customers, features.num_products
    if reviewed.indptr.shape != (n + 1,) or reviewed.popularity.shape != (m,):
        raise FactorsFormatError(
            f"the reviewed products are for {reviewed.indptr.shape[0] - 1:,} customers and "
            f"{reviewed.popularity.shape[0]:,} products, the index has {n:,} and {m:,}"
        )
    for name, array in (("w", params.w), ("v", params.v)):
        if not bool(np.isfinite(array).all()):
            raise FactorsFormatError(f"the model's {name} holds a value that is not finite")
    if base.values.shape != (n,):
        raise FactorsFormatError(
            f"the customer base is for {base.values.shape[0]:,} customers, the index has {n:,}"
        )
    if not (math.isfinite(base.mean) and bool(np.isfinite(base.values).all())):
        raise FactorsFormatError("the customer base holds a value that is not finite")
    k = params.num_factors
    v_time = params.v[features.time_key].astype(np.float64)

    def block(rows: slice) -> F32:
        v = params.v[rows]
        out = np.empty((v.shape[0], k + EXTRA_COLUMNS), np.float32)
        out[:, :k] = v
        out[:, k + LINEAR] = params.w[rows]
        out[:, k + TIME] = v.astype(np.float64) @ v_time
        return out

    return ServingFactors(
        w0=float(params.w0),
        time_weight=float(params.w[features.time_key]),
        time_factor=params.v[features.time_key].astype(np.float32),
        items=block(slice(n, n + m)),
        customers=block(slice(0, n)),
        reviewed_indptr=reviewed.indptr,
        reviewed_indices=reviewed.indices,
        popularity=reviewed.popularity,
        reviewed_rows=reviewed.rows,
        base_mean=float(base.mean),
        customer_base=np.ascontiguousarray(base.values, np.float32),
    )


# ---------------------------------------------------------------------------------------------- writing


def _arrays(factors: ServingFactors) -> dict[str, npt.NDArray[Any]]:
    return {
        "items.npy": factors.items,
        "customers.npy": factors.customers,
        "time_factor.npy": factors.time_factor,
        "reviewed_indptr.npy": factors.reviewed_indptr,
        "reviewed_indices.npy": factors.reviewed_indices,
        "popularity.npy": factors.popularity,
        "customer_base.npy": factors.customer_base,
    }


def _manifest(factors: ServingFactors) -> dict[str, Any]:
    return {
        "schema_version": FACTORS_SCHEMA_VERSION,
        "num_customers": factors.num_customers,
        "num_products": factors.num_products,
        "num_factors": factors.num_factors,
        "feature_dim": factors.features.feature_dim,
        "w0": factors.w0,
        "time_weight": factors.time_weight,
        "base_mean": factors.base_mean,
        "reviewed_pairs": int(factors.reviewed_indices.shape[0]),
        "reviewed_rows": factors.reviewed_rows,
        "files": {
            name: {"shape": list(array.shape), "dtype": _DTYPES[name].str}
            for name, array in _arrays(factors).items()
        },
    }


def _npy(array: npt.NDArray[Any], dtype: np.dtype[Any]) -> bytearray:
    """The .npy file of an array (format 1.0, as np.save writes it) in one buffer: one copy of the data."""
    data = np.ascontiguousarray(array, dtype=dtype)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(data))
    head = header.getbuffer()
    out = bytearray(head.nbytes + data.nbytes)
    out[: head.nbytes] = head
    np.frombuffer(out, np.uint8, offset=head.nbytes)[:] = data.reshape(-1).view(np.uint8)
    return out


def factors_files(factors: ServingFactors) -> Iterator[tuple[str, bytes | bytearray]]:
    """serving/fm/'s files (name, contents), one at a time (the memory of one file's bytes at once), in the
    order they must be written: factors.json last, so that a reader who finds it finds the arrays complete."""
    for name, array in _arrays(factors).items():
        yield name, _npy(array, _DTYPES[name])
    yield FACTORS_MANIFEST, (json.dumps(_manifest(factors), indent=1) + "\n").encode("utf-8")


def write_factors(folder: Path, factors: ServingFactors) -> dict[str, Any]:
    """Write serving/fm/ into `folder` (created if missing) and return factors.json's content.

    factors.json goes first out and last in: a reader never pairs a new manifest with old arrays."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / FACTORS_MANIFEST).unlink(missing_ok=True)
    for name, data in factors_files(factors):
        partial = folder / f".{name}.partial"
        partial.write_bytes(data)
        os.replace(partial, folder / name)
    return _manifest(factors)


def build_and_write(
    *,
    model: Source,
    features: FeatureLayout,
    shards: Iterable[Source],
    output: Path,
) -> dict[str, Any]:
    """The serving factors alone: FM's model.tar.gz (or model_algo-1, path, bytes or stream), the index's
    feature layout and prep's shards in (the reviewed products, the popularity and the customer base all
    from these shards); serving/fm/ written into `output`. Returns factors.json's content with the step's
    timings under "timings_s" (not written). The caller fetches and uploads (no S3 here). The pipeline's
    step (lambdas/pipeline/export_factors.py) fits the base on the train shards alone."""
    started = time.perf_counter()
    params = read_fm_artifact(model)
    read_model = time.perf_counter()
    pairs = rated_pairs(shards, features)
    read_shards = time.perf_counter()
    factors = build_factors(params, features, reviewed_of(pairs, features), base_of(pairs, features))
    manifest = write_factors(output, factors)
    done = time.perf_counter()
    manifest["timings_s"] = {
        "read_model": round(read_model - started, 3),
        "read_shards": round(read_shards - read_model, 3),
        "build_and_write": round(done - read_shards, 3),
    }
    return manifest


# ---------------------------------------------------------------------------------------------- reading


def _count(meta: Mapping[str, Any], key: str, minimum: int) -> int:
    value = meta.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise FactorsFormatError(f"{FACTORS_MANIFEST}: {key} is {value!r}, not an integer >= {minimum}")
    return value


def _finite(meta: Mapping[str, Any], key: str) -> float:
    value = meta.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FactorsFormatError(f"{FACTORS_MANIFEST}: {key} is {value!r}, not a finite number")
    return float(value)


@dataclass(frozen=True)
class _Meta:
    num_customers: int
    num_products: int
    num_factors: int
    w0: float
    time_weight: float
    base_mean: float
    reviewed_pairs: int
    reviewed_rows: int

    def shapes(self) -> dict[str, tuple[int, ...]]:
        n, m, k = self.num_customers, self.num_products, self.num_factors
        return {
            "items.npy": (m, k + EXTRA_COLUMNS),
            "customers.npy": (n, k + EXTRA_COLUMNS),
            "time_factor.npy": (k,),
            "reviewed_indptr.npy": (n + 1,),
            "reviewed_indices.npy": (self.reviewed_pairs,),
            "popularity.npy": (m,),
            "customer_base.npy": (n,),
        }


def _parse_manifest(raw: bytes) -> _Meta:
    try:
        meta = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise FactorsFormatError(f"{FACTORS_MANIFEST}: not JSON ({e})") from None
    if not isinstance(meta, dict):
        raise FactorsFormatError(f"{FACTORS_MANIFEST}: not a JSON object")
    if meta.get("schema_version") != FACTORS_SCHEMA_VERSION:
        raise FactorsFormatError(
            f"{FACTORS_MANIFEST}: schema_version {meta.get('schema_version')!r}, "
            f"expected {FACTORS_SCHEMA_VERSION}"
        )
    parsed = _Meta(
        num_customers=_count(meta, "num_customers", 1),
        num_products=_count(meta, "num_products", 1),
        num_factors=_count(meta, "num_factors", 1),
        w0=_finite(meta, "w0"),
        time_weight=_finite(meta, "time_weight"),
        base_mean=_finite(meta, "base_mean"),
        reviewed_pairs=_count(meta, "reviewed_pairs", 0),
        reviewed_rows=_count(meta, "reviewed_rows", 0),
    )
    feature_dim = _count(meta, "feature_dim", 1)
    if feature_dim != parsed.num_customers + parsed.num_products + 1:
        raise FactorsFormatError(
            f"{FACTORS_MANIFEST}: feature_dim {feature_dim:,} is not num_customers + num_products + 1 "
            f"({parsed.num_customers + parsed.num_products + 1:,})"
        )
    files = meta.get("files")
    expected = {
        name: {"shape": list(shape), "dtype": _DTYPES[name].str} for name, shape in parsed.shapes().items()
    }
    if files != expected:
        raise FactorsFormatError(
            f"{FACTORS_MANIFEST}: files is {files!r}, expected {expected!r} for its counts"
        )
    return parsed


def _header(stream: BinaryIO, name: str) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(stream)
        if version == (2, 0):
            return np.lib.format.read_array_header_2_0(stream)
        raise FactorsFormatError(f"{name}: .npy format version {version} is not 1.0 or 2.0")
    except ValueError as e:
        if isinstance(e, FactorsFormatError):
            raise
        raise FactorsFormatError(f"{name}: not a .npy file ({e})") from None


def _size(shape: tuple[int, ...]) -> int:
    size = 1
    for n in shape:
        size *= n
    return size


def _check_header(
    name: str, header: tuple[tuple[int, ...], bool, np.dtype[Any]], shape: tuple[int, ...], data_bytes: int
) -> None:
    stored_shape, fortran, dtype = header
    expected = _DTYPES[name]
    if dtype != expected or fortran or tuple(stored_shape) != shape:
        raise FactorsFormatError(
            f"{name}: holds {dtype.str} {tuple(stored_shape)}{' (Fortran order)' if fortran else ''}, "
            f"{FACTORS_MANIFEST} says {expected.str} {shape} (C order)"
        )
    need = _size(shape) * expected.itemsize
    if data_bytes != need:
        raise FactorsFormatError(
            f"{name}: {data_bytes:,} bytes of data, {need:,} expected for {shape}: truncated or overwritten"
        )


def _check_arrays(meta: _Meta, arrays: Mapping[str, npt.NDArray[Any]]) -> None:
    indptr = arrays["reviewed_indptr.npy"]
    indices = arrays["reviewed_indices.npy"]
    if int(indptr[0]) != 0 or int(indptr[-1]) != meta.reviewed_pairs or bool((np.diff(indptr) < 0).any()):
        raise FactorsFormatError(
            f"reviewed_indptr.npy: must rise from 0 to reviewed_pairs ({meta.reviewed_pairs:,}) without "
            "decreasing"
        )
    if indices.shape[0] and (int(indices.min()) < 0 or int(indices.max()) >= meta.num_products):
        raise FactorsFormatError(
            f"reviewed_indices.npy: a product row is outside 0..{meta.num_products - 1:,}"
        )
    popularity = arrays["popularity.npy"]
    if popularity.shape[0] and int(popularity.min()) < 0:
        raise FactorsFormatError("popularity.npy: a review count is negative")
    if not bool(np.isfinite(arrays["customer_base.npy"]).all()):
        raise FactorsFormatError("customer_base.npy: a customer's base is not finite")


def _factors(meta: _Meta, arrays: Mapping[str, npt.NDArray[Any]]) -> ServingFactors:
    _check_arrays(meta, arrays)
    return ServingFactors(
        w0=meta.w0,
        time_weight=meta.time_weight,
        time_factor=arrays["time_factor.npy"],
        items=arrays["items.npy"],
        customers=arrays["customers.npy"],
        reviewed_indptr=arrays["reviewed_indptr.npy"],
        reviewed_indices=arrays["reviewed_indices.npy"],
        popularity=arrays["popularity.npy"],
        reviewed_rows=meta.reviewed_rows,
        base_mean=meta.base_mean,
        customer_base=arrays["customer_base.npy"],
    )


def load_factors(folder: Path, *, features: FeatureLayout | None = None, mmap: bool = True) -> ServingFactors:
    """serving/fm/ from a local folder, checked; with mmap the arrays are read-only maps of the files (pages
    load as they are used). With `features` (the index's), factors for another run are refused."""
    manifest = folder / FACTORS_MANIFEST
    if not manifest.is_file():
        raise FactorsFormatError(
            f"{manifest}: missing: the serving factors in {folder} are absent or were not completely written"
        )
    meta = _parse_manifest(manifest.read_bytes())
    arrays: dict[str, npt.NDArray[Any]] = {}
    for name, shape in meta.shapes().items():
        path = folder / name
        if not path.is_file():
            raise FactorsFormatError(f"{name}: missing from {folder}")
        with path.open("rb") as f:
            header = _header(f, name)
            offset = f.tell()
            _check_header(name, header, shape, path.stat().st_size - offset)
            size = _size(shape)
            if mmap and size:
                arrays[name] = np.memmap(f, dtype=_DTYPES[name], mode="r", offset=offset, shape=shape)
            else:
                arrays[name] = np.fromfile(f, dtype=_DTYPES[name], count=size).reshape(shape)
    factors = _factors(meta, arrays)
    if features is not None:
        factors.check_index(features)
    return factors


def parse_factors(
    files: Mapping[str, bytes | bytearray | memoryview], *, features: FeatureLayout | None = None
) -> ServingFactors:
    """serving/fm/ from the files' contents, by name (e.g. read from S3 into memory), checked as
    load_factors checks them; the arrays are read-only views of the bytes, not copies."""
    if FACTORS_MANIFEST not in files:
        raise FactorsFormatError(f"{FACTORS_MANIFEST}: missing")
    meta = _parse_manifest(bytes(files[FACTORS_MANIFEST]))
    arrays: dict[str, npt.NDArray[Any]] = {}
    for name, shape in meta.shapes().items():
        if name not in files:
            raise FactorsFormatError(f"{name}: missing")
        data = memoryview(files[name]).cast("B")
        stream = io.BytesIO(data[:_MAX_HEADER_BYTES].tobytes())  # the header only: the data is not copied
        header = _header(stream, name)
        offset = stream.tell()
        _check_header(name, header, shape, data.nbytes - offset)
        arrays[name] = np.frombuffer(
            data, dtype=_DTYPES[name], offset=offset, count=math.prod(shape)
        ).reshape(shape)
    factors = _factors(meta, arrays)
    if features is not None:
        factors.check_index(features)
    return factors
