"""POST /recommendations: the k products a customer is most likely to choose, from FM's factors (fm/topn.py),
without an endpoint call: the factors are the deployed model's own parameters.

Each product comes with FM's predicted rating (the score the FM endpoint gives the same customer, product and
date, clipped to the rating range as /predictions clips it) and the ranking key,

    score = FM's score + popularity_weight * log(1 + reviews)

with the run's popularity_weight (serving/ranking.json, chosen on validation rows) and the product's review
count in the run (`reviews`): a rating-trained FM ranks by the rating a customer would give, the popularity
term by how likely the customer is to choose the product. Products are listed best first by score.

A customer the index does not know gets the most reviewed products instead, flagged "fallback" (ordered by
review count, scored as FM scores an unknown customer: the item side only, at day 0).
"""

from __future__ import annotations

import math

from fm import topn

from .deployed import DeployedRun, Outcome, clip
from .parsing import RecommendationsRequest


def recommendations(run: DeployedRun, request: RecommendationsRequest) -> Outcome:
    """The answer to one request: {"run_id", "customer_id", "customer_known", "fallback", "date",
    "exclude_reviewed", "popularity_weight", "recommendations": [{"product_id", "title", "rating", "score",
    "reviews"}]}."""
    index, factors, weight = run.index, run.factors, run.popularity_weight
    found = topn.recommend(
        factors,
        index,
        request.customer_id,
        request.date,
        k=request.k,
        exclude_reviewed=request.exclude_reviewed,
        popularity_weight=weight,
    )
    listed = []
    for row, score in zip(found.rows.tolist(), found.scores.tolist(), strict=True):
        reviews = int(factors.popularity[row])
        listed.append(
            {
                "product_id": index.product_ids[row],
                "title": index.product_titles[row],
                "rating": clip(score, index.rating_range),
                "score": score + weight * math.log1p(reviews),
                "reviews": reviews,
            }
        )
    body = {
        "run_id": run.run_id,
        "customer_id": request.customer_id,
        "customer_known": not found.fallback,
        "fallback": found.fallback,
        "date": request.date.isoformat(),
        "exclude_reviewed": request.exclude_reviewed,
        "popularity_weight": weight,
        "recommendations": listed,
    }
    counts = {"k": request.k, "returned": len(listed), "fallback": int(found.fallback)}
    return Outcome(body=body, counts=counts)
