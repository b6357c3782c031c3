"""What every call answers from, and the shape of an answer: the deployed run in memory, the endpoints as a
callable, the outcome a handler turns into a response. No boto3 here: the handlers bind `Invoke` to the
SageMaker runtime (runtime.py), deployment.py loads the run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from contract.index import ServingIndex
from fm.coldstart import Shrinkage
from fm.factors import ServingFactors

from .vectors import TitleTable


class Invoke(Protocol):
    """Call one model ("fm" or "blazingtext") of the deployed run with a JSON payload; return its JSON."""

    def __call__(self, model: str, payload: object) -> Any: ...


@dataclass(frozen=True)
class DeployedRun:
    """The run that serves now: its record's identity and endpoints, its index, its title table, FM's
    factors (serving/fm/), the cold start's shrinkage (serving/cold_start.json) and the top-N ranking's
    popularity weight (serving/ranking.json)."""

    run_id: str
    endpoints: Mapping[str, str]
    index: ServingIndex
    titles: TitleTable
    factors: ServingFactors
    shrinkage: Shrinkage
    popularity_weight: float


@dataclass
class Outcome:
    """A 200 answer's body and the counts the handler logs."""

    body: dict[str, Any]
    counts: dict[str, int] = field(default_factory=dict)


def clip(score: float, rating_range: tuple[float, float]) -> float:
    """A score as the API answers it: inside the rating range."""
    return min(max(score, rating_range[0]), rating_range[1])
