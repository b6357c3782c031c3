"""The cold start of /predictions: a product the deployed model does not know, rated from its title
(fm/coldstart.py has the arithmetic).

The title's nearest known titles (cosine of title vectors: the title table's for known titles, BlazingText's
for the others) stand in for the product: their similarity-weighted average item (factors, linear weight,
time term) is scored once with the customer's own FM factors, and its difference from FM's score of the
typical product (the review-weighted average of every product) is added to the user-bias prediction, shrunk
by the similarity mass S of the neighbours kept (similarity >= min_similarity):

    rating = clip(customer_side + shrinkage * neighbour_item),   shrinkage = S / (S + alpha)

customer_side is the user-bias prediction mu + b_u (the bias model fitted on the run's train rows:
serving/fm/customer_base.npy; an unknown customer's is mu), neighbour_item what FM's rating of the
neighbours' average item differs from its rating of the typical product; alpha and min_similarity are the
run's (serving/cold_start.json, chosen on validation rows: alpha 1e9, shrinkage 0, unless the neighbours
beat the user-bias prediction there by a paired interval wholly below 0). An unknown customer is FM's
customer -1 as in fm/topn: no customer factors, at day 0. No FM endpoint row is sent for a cold item: the
factors are the model's.

A title whose neighbours do not move the answer gets customer_side alone, flagged answered_from
"customer_only" with a reason: its token holds no letter or digit (BlazingText's subwords of "!!!" are
noise), it has no vector (no subword the model knows), no known title is at or above min_similarity, or the
run's shrinkage trusts no neighbour (alpha 1e9: the neighbours did not beat the user-bias prediction on
validation; the neighbours and their mass are still listed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fm.coldstart import neighbourhood, parts

from .deployed import DeployedRun, Invoke, clip
from .endpoints import title_vectors

TITLE_NEIGHBOURS = "title_neighbours"
CUSTOMER_ONLY = "customer_only"
NO_LETTER_OR_DIGIT = "title_has_no_letter_or_digit"
NO_VECTOR = "title_has_no_vector"
NO_NEIGHBOUR = "no_neighbour_at_min_similarity"
NOT_TRUSTED = "shrinkage_trusts_no_neighbour"


@dataclass(frozen=True)
class ColdItem:
    """An item of an unknown product that came with a title."""

    customer_key: int | None
    """None: the customer is unknown too."""
    title_token: str
    time_value: float
    """The time feature of the request (fm.topn.time_value)."""


def meaningful(token: str) -> bool:
    """Whether a title token can have meaningful neighbours: it holds a letter or a digit."""
    return any(character.isalnum() for character in token)


def _reason(code: str, min_similarity: float) -> dict[str, str]:
    messages = {
        NO_LETTER_OR_DIGIT: "the title holds no letter or digit: no title is meaningfully similar to it",
        NO_VECTOR: "the title has no vector: BlazingText knows none of its subwords",
        NO_NEIGHBOUR: f"no known title has a similarity of at least min_similarity {min_similarity:g}",
        NOT_TRUSTED: (
            "the run's shrinkage trusts no neighbour: on validation the title neighbours did not beat the "
            "user-bias prediction"
        ),
    }
    return {"code": code, "message": messages[code]}


def answer_cold_starts(
    run: DeployedRun, items: Sequence[ColdItem], invoke: Invoke, *, neighbours: int
) -> tuple[list[dict[str, Any]], int]:
    """The answer fields of each cold item (rating, how it was made, the neighbours with their similarities
    and weights), and how many words BlazingText was sent (at most one call, for the unseen titles)."""
    index, table, shrinkage = run.index, run.titles, run.shrinkage
    tokens = [item.title_token for item in items if meaningful(item.title_token)]
    vectors, sent_words = title_vectors(table, tokens, invoke)
    queries = [(token, vector) for token in dict.fromkeys(tokens) if (vector := vectors[token]) is not None]
    found = table.nearest([vector for _, vector in queries], neighbours)
    nearest = {token: pairs for (token, _), pairs in zip(queries, found, strict=True)}

    rows = np.full((len(items), neighbours), -1, np.int64)
    similarities = np.zeros((len(items), neighbours), np.float64)
    listed: list[list[tuple[str, float, int]]] = []
    for n, item in enumerate(items):
        chosen = [
            (title, similarity, index.title_rows[title])
            for title, similarity in nearest.get(item.title_token, [])
            if similarity > 0 and title in index.title_rows
        ]
        listed.append(chosen)
        for place, (_, similarity, row) in enumerate(chosen):
            rows[n, place], similarities[n, place] = row, similarity
    around = neighbourhood(rows, similarities, shrinkage.min_similarity)
    customers = [-1 if item.customer_key is None else item.customer_key for item in items]
    terms = parts(run.factors, customers, [item.time_value for item in items], around)
    lambdas = shrinkage.weight(terms.mass)
    ratings = terms.ratings(shrinkage)

    answers: list[dict[str, Any]] = []
    for n, item in enumerate(items):
        answer: dict[str, Any] = {"rating": clip(float(ratings[n]), index.rating_range)}
        if lambdas[n] > 0:
            answer["answered_from"] = TITLE_NEIGHBOURS
        else:
            if not meaningful(item.title_token):
                code = NO_LETTER_OR_DIGIT
            elif vectors[item.title_token] is None:
                code = NO_VECTOR
            elif terms.mass[n] > 0:
                code = NOT_TRUSTED
            else:
                code = NO_NEIGHBOUR
            answer["answered_from"] = CUSTOMER_ONLY
            answer["reason"] = _reason(code, shrinkage.min_similarity)
        answer |= {
            "similarity_mass": float(terms.mass[n]),
            "shrinkage": float(lambdas[n]),
            "alpha": shrinkage.alpha,
            "min_similarity": shrinkage.min_similarity,
            "customer_side": float(terms.base[n]),
            "neighbour_item": float(terms.item[n]),
            "neighbours": [
                {
                    "title": title,
                    "product_id": index.product_ids[row],
                    "similarity": similarity,
                    "weight": float(around.weights[n, place]),
                }
                for place, (title, similarity, row) in enumerate(listed[n])
            ],
        }
        answers.append(answer)
    return answers, sent_words
