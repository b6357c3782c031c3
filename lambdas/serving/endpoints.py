"""The endpoints' JSON formats: the FM regressor's sparse instances and scores, BlazingText's word vectors.

An answer of the wrong shape is a ModelRejectedError that names the model (the endpoint serves another run's
model, or another algorithm).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from contract.algorithms import BLAZINGTEXT
from contract.index import ServingIndex
from lambdas.kit.errors import ModelRejectedError

from .deployed import Invoke
from .parsing import json_kind
from .vectors import FloatMatrix, TitleTable, unit_vector


def fm_instance(
    index: ServingIndex, customer_key: int | None, product_row: int, feature: float
) -> dict[str, Any]:
    """One FM JSON instance; keys ascending (the container requires it for sparse input): user, item, time.
    Without a customer (unknown customer): the item side only, [item, time]."""
    keys = [index.product_key(product_row), index.time_key]
    values = [1.0, feature]
    if customer_key is not None:
        keys.insert(0, customer_key)
        values.insert(0, 1.0)
    return {"data": {"features": {"keys": keys, "shape": [index.feature_dim], "values": values}}}


def fm_scores(answer: object, expected: int) -> list[float]:
    """{"predictions": [{"score": x}, ...]} -> scores, checked against the number of instances sent."""
    predictions = answer.get("predictions") if isinstance(answer, dict) else None
    if not isinstance(predictions, list) or len(predictions) != expected:
        got = len(predictions) if isinstance(predictions, list) else json_kind(predictions)
        raise ModelRejectedError(f"the fm model answered {got} predictions for {expected} instances")
    scores: list[float] = []
    for prediction in predictions:
        score = prediction.get("score") if isinstance(prediction, dict) else None
        if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
            raise ModelRejectedError(
                f"the fm model answered a prediction without a numeric score: {prediction!r}"
            )
        scores.append(float(score))
    return scores


def title_vectors(
    table: TitleTable, tokens: Sequence[str], invoke: Invoke
) -> tuple[dict[str, FloatMatrix | None], int]:
    """Unit vector per token (None: no direction), known titles from the table, the rest from BlazingText
    in one call (subwords give unseen titles a vector). Returns the vectors and how many tokens were sent.
    """
    vectors: dict[str, FloatMatrix | None] = {}
    unseen: list[str] = []
    for token in tokens:
        if token in vectors or token in unseen:
            continue
        known = table.vector(token)
        if known is not None:
            vectors[token] = known
        else:
            unseen.append(token)
    if unseen:
        answer = invoke(BLAZINGTEXT, {"instances": unseen})
        if not isinstance(answer, list) or len(answer) != len(unseen):
            got = len(answer) if isinstance(answer, list) else json_kind(answer)
            raise ModelRejectedError(f"the blazingtext model answered {got} vectors for {len(unseen)} words")
        for token, entry in zip(unseen, answer, strict=True):
            vector = entry.get("vector") if isinstance(entry, dict) else None
            if (
                not isinstance(vector, list)
                or len(vector) != table.dim
                or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in vector)
            ):
                raise ModelRejectedError(
                    f"the blazingtext model answered no {table.dim}-dimensional vector for {token!r} "
                    "(is the endpoint serving the deployed run's model?)"
                )
            vectors[token] = unit_vector(vector)
    return vectors, len(unseen)
