"""A new product's rating from its title neighbours in FM's space, shrunk toward the user-bias prediction.

A product FM has never seen has no factors. Its title's nearest known titles do: their similarity-weighted
average item (factors, weight and time term) stands in for it. FM scores it once with the customer's factors,
and what that score differs from FM's score of the typical product (the review-weighted average of every
product) is the neighbours' evidence about this product. It is added, shrunk, to the user-bias prediction:

    score(u, t, x) = w0 + w_u + t (w_t + <v_u, v_t>) + w_x + <v_u, v_x> + t <v_x, v_t>   FM for an item x
    base(u)        = mu + b_u         the bias model's user side fitted on the train rows (fm.biases)
    item(u, t)     = score(u, t, neighbours' average) - score(u, t, typical)
    rating         = base + lambda * item,   lambda = S / (S + alpha)

where S is the similarity mass of the neighbours kept (similarity >= min_similarity). lambda = 0 gives the
user-bias prediction exactly (the prep job's "user-bias" baseline, once clipped): few or weak neighbours give
a small lambda and an answer near it; no neighbour at or above min_similarity, or alpha NEVER, gives it
exactly. alpha and min_similarity are chosen on validation rows (`choose_shrinkage`), never on test rows, and
recorded in the run (serving/cold_start.json): the user-bias answer (alpha NEVER) unless another shrinkage
beats it there by a paired interval wholly below 0.

Only the arithmetic lives here: the caller finds the neighbours (title vectors) and passes their product rows
and similarities.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from contract import layout
from fm.factors import LINEAR, TIME, ServingFactors
from fm.metrics import rmse

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

COLD_START_FILE = layout.COLD_START.removeprefix(layout.SERVING)
COLD_START_SCHEMA_VERSION = 2
NEVER = 1e9
"""alpha that never trusts the neighbours: lambda 0, the user-bias answer."""
ALPHAS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, NEVER)
"""The shrinkage grid: 0 trusts the neighbours fully, NEVER never (always `base`)."""
MIN_SIMILARITIES = (0.0, 0.2, 0.4, 0.6, 0.8)


class ColdStartFormatError(ValueError):
    """cold_start.json is not as `Shrinkage.to_json` writes it; the message names the field."""


@dataclass(frozen=True)
class Shrinkage:
    alpha: float
    min_similarity: float

    def weight(self, mass: F64) -> F64:
        """lambda = S / (S + alpha) per row; 0 where no neighbour is kept (S = 0), and everywhere for alpha
        NEVER (or above)."""
        mass = np.asarray(mass, np.float64)
        if self.alpha >= NEVER:
            return np.zeros(mass.shape, np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            weights: F64 = np.where(mass > 0, mass / (mass + self.alpha), 0.0)
        return weights

    def to_json(self, **evidence: Any) -> dict[str, Any]:
        return {
            "schema_version": COLD_START_SCHEMA_VERSION,
            "alpha": self.alpha,
            "min_similarity": self.min_similarity,
            **evidence,
        }

    @classmethod
    def from_json(cls, raw: bytes | str) -> Shrinkage:
        try:
            document = json.loads(raw)
        except ValueError as exc:
            raise ColdStartFormatError(f"{COLD_START_FILE}: not JSON ({exc})") from None
        if not isinstance(document, dict) or document.get("schema_version") != COLD_START_SCHEMA_VERSION:
            raise ColdStartFormatError(
                f"{COLD_START_FILE}: schema_version is not {COLD_START_SCHEMA_VERSION}"
            )
        values = []
        for name, low in (("alpha", 0.0), ("min_similarity", -1.0)):
            value = document.get(name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ColdStartFormatError(f"{COLD_START_FILE}: {name} is {value!r}, not a number")
            if value < low:
                raise ColdStartFormatError(f"{COLD_START_FILE}: {name} is {value!r}, below {low}")
            values.append(float(value))
        return cls(alpha=values[0], min_similarity=values[1])


@dataclass(frozen=True)
class Neighbourhood:
    """Per row: the neighbours kept, their weights (similarity over the mass), and the mass S."""

    rows: I64
    """(n, k) product rows; -1 pads a row with fewer than k neighbours."""
    weights: F64
    """(n, k) similarity / S for the kept neighbours, 0 elsewhere."""
    mass: F64
    """(n,) S: the sum of the kept neighbours' similarities."""


def neighbourhood(rows: npt.ArrayLike, similarities: npt.ArrayLike, min_similarity: float) -> Neighbourhood:
    """Keep the neighbours at or above min_similarity (and above 0); rows of -1 are padding."""
    product_rows: I64 = np.asarray(rows, np.int64)
    sims: F64 = np.asarray(similarities, np.float64)
    if product_rows.shape != sims.shape or product_rows.ndim != 2:
        raise ValueError(f"neighbour rows {product_rows.shape} and similarities {sims.shape} must be (n, k)")
    kept = (product_rows >= 0) & (sims > 0) & (sims >= min_similarity)
    kept_sims = np.where(kept, sims, 0.0)
    mass: F64 = kept_sims.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        weights: F64 = np.where(mass[:, None] > 0, kept_sims / mass[:, None], 0.0)
    return Neighbourhood(rows=np.where(kept, product_rows, -1), weights=weights, mass=mass)


@dataclass(frozen=True)
class ColdStartParts:
    """The two terms of a cold-start rating, per row, before shrinkage."""

    base: F64
    """The user-bias prediction mu + b_u, unclipped (the answer with no meaningful neighbour)."""
    item: F64
    """FM's rating of the neighbours' average item minus its rating of the typical product: 0 where no
    neighbour is kept."""
    mass: F64

    def ratings(self, shrinkage: Shrinkage) -> F64:
        ratings: F64 = self.base + shrinkage.weight(self.mass) * self.item
        return ratings


PARTS_CHUNK_ROWS = 4096
"""Rows whose neighbours' items are gathered at once: 4,096 x 10 neighbours x 258 float64 columns, 85 MB."""


def parts(
    factors: ServingFactors,
    customers: npt.ArrayLike,
    times: npt.ArrayLike,
    around: Neighbourhood,
    *,
    chunk_rows: int = PARTS_CHUNK_ROWS,
) -> ColdStartParts:
    """base and item per row, in float64; a customer of -1 is unknown (base mu; the item difference from FM's
    item side only). The neighbours' items are gathered `chunk_rows` rows at a time (the memory of one
    chunk)."""
    k = factors.num_factors
    keys: I64 = np.asarray(customers, np.int64)
    t: F64 = np.asarray(times, np.float64)
    known = keys >= 0
    user = np.zeros((keys.shape[0], k + 2), np.float64)
    user[known] = factors.customers[keys[known]]
    typical = factors.typical_item

    def item_side(items: F64, lo: int, hi: int) -> F64:
        """w_x + <v_u, v_x> + t <v_x, v_t> for each row's item x (items: (n, K + 2))."""
        side: F64 = (
            items[:, k + LINEAR]
            + np.einsum("nf,nf->n", items[:, :k], user[lo:hi, :k])
            + t[lo:hi] * items[:, k + TIME]
        )
        return side

    typical_side = item_side(np.broadcast_to(typical, (keys.shape[0], k + 2)), 0, keys.shape[0])
    item: F64 = np.zeros(keys.shape[0], np.float64)
    for lo in range(0, keys.shape[0], chunk_rows):
        hi = min(lo + chunk_rows, keys.shape[0])
        rows = around.rows[lo:hi]
        neighbours = factors.items[np.where(rows >= 0, rows, 0)].astype(np.float64)  # (n, k_nb, K + 2)
        average = np.einsum("nj,njf->nf", around.weights[lo:hi], neighbours)  # padding has weight 0
        kept = around.mass[lo:hi] > 0
        item[lo:hi] = np.where(kept, item_side(average, lo, hi) - typical_side[lo:hi], 0.0)
    return ColdStartParts(base=factors.base(keys), item=item, mass=around.mass)


class Paired(Protocol):
    """A paired comparison of two models on the same rows (lambdas.pipeline.paired.PairedDifference)."""

    @property
    def relative(self) -> float: ...
    @property
    def low(self) -> float: ...
    @property
    def high(self) -> float: ...


PairedComparison = Callable[[F64, F64, F64], Paired]
"""(actual, candidate, other) -> the candidate's RMSE relative to the other's with its paired interval."""


@dataclass(frozen=True)
class ShrinkageChoice:
    chosen: Shrinkage
    rmse: float
    base_rmse: float
    """RMSE of `base` alone (the user-bias prediction) on the same rows: what the choice must beat."""
    rows: int
    table: list[dict[str, Any]]
    """Every (alpha, min_similarity) tried, with its RMSE; those whose RMSE is below base_rmse also with
    their relative difference from base and its paired 95 % interval."""
    versus_base: dict[str, Any] | None
    """The chosen shrinkage vs base: relative difference and interval; None when the choice is base."""

    def to_json(self) -> dict[str, Any]:
        return self.chosen.to_json(
            chosen_on="validation",
            rule=(
                "the user-bias prediction (alpha NEVER) unless a shrinkage's RMSE beats it on the validation "
                "rows by a paired 95 % interval wholly below 0; among those, the lowest RMSE"
            ),
            rows=self.rows,
            rmse=self.rmse,
            base_rmse=self.base_rmse,
            versus_base=self.versus_base,
            grid=self.table,
        )


def choose_shrinkage(
    factors: ServingFactors,
    *,
    customers: npt.ArrayLike,
    times: npt.ArrayLike,
    neighbour_rows: npt.ArrayLike,
    similarities: npt.ArrayLike,
    actual: npt.ArrayLike,
    rating_range: tuple[float, float],
    compare: PairedComparison,
    alphas: Sequence[float] = ALPHAS,
    min_similarities: Sequence[float] = MIN_SIMILARITIES,
) -> ShrinkageChoice:
    """The shrinkage of the grid that these (validation) rows support: the base (alpha NEVER, the user-bias
    prediction) unless some (alpha, min_similarity) has a clipped-rating RMSE below the base's with a paired
    interval of the difference wholly below 0 (`compare`); among those, the lowest RMSE, ties to the larger
    alpha and the larger min_similarity (the more cautious). It cannot lose to the base on these rows. With
    no such shrinkage the choice is (NEVER, the smallest min_similarity): answers still list the neighbours
    and their mass, with lambda 0."""
    y: F64 = np.asarray(actual, np.float64)
    if y.shape[0] == 0:
        raise ValueError("no rows to choose a shrinkage on")
    low, high = rating_range
    table: list[dict[str, Any]] = []
    best: tuple[float, float, float] | None = None  # (rmse, -alpha, -min_similarity)
    best_versus: dict[str, Any] | None = None
    base = np.clip(factors.base(customers), low, high)
    base_rmse = rmse(base, y)
    for min_similarity in min_similarities:
        terms = parts(factors, customers, times, neighbourhood(neighbour_rows, similarities, min_similarity))
        for alpha in alphas:
            shrinkage = Shrinkage(alpha=float(alpha), min_similarity=float(min_similarity))
            predicted = np.clip(terms.ratings(shrinkage), low, high)
            score = rmse(predicted, y)
            entry: dict[str, Any] = {
                "alpha": float(alpha),
                "min_similarity": float(min_similarity),
                "rmse": score,
            }
            if score < base_rmse:
                difference = compare(y, predicted, base)
                entry |= {"relative": difference.relative, "interval": [difference.low, difference.high]}
                key = (score, -float(alpha), -float(min_similarity))
                if difference.high < 0 and (best is None or key < best):
                    best = key
                    best_versus = {
                        "relative": difference.relative,
                        "interval": [difference.low, difference.high],
                    }
            table.append(entry)
    if best is None:
        chosen = Shrinkage(alpha=NEVER, min_similarity=float(min(min_similarities)))
        return ShrinkageChoice(
            chosen=chosen,
            rmse=base_rmse,
            base_rmse=base_rmse,
            rows=int(y.shape[0]),
            table=table,
            versus_base=None,
        )
    return ShrinkageChoice(
        chosen=Shrinkage(alpha=-best[1], min_similarity=-best[2]),
        rmse=best[0],
        base_rmse=base_rmse,
        rows=int(y.shape[0]),
        table=table,
        versus_base=best_versus,
    )
