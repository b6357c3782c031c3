"""POST /predictions: a rating for each (customer, product[, date][, title]) of a batch, and how it was made.

- known: FM scored the pair on its endpoint (user key, item key, the time feature as prep computes it);
- unknown_customer: the item side of the model only (no user key, day 0), on the endpoint;
- cold_start: the product is new; its title's nearest known titles rate it in FM's own space from the run's
  factors, without an endpoint row (coldstart.py);
- error: e.g. title_required for an unknown product without a title.

One FM call for the batch's known products (identical rows sent once), at most one BlazingText call for the
titles of unknown products, made first: the FM call waits for the cold starts' answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from contract.algorithms import FM
from contract.index import ServingIndex, title_token
from fm.topn import epoch_day, time_value

from .coldstart import CUSTOMER_ONLY, ColdItem, answer_cold_starts
from .deployed import DeployedRun, Invoke, Outcome, clip
from .endpoints import fm_instance, fm_scores
from .parsing import PredictItem

STATUSES = ("known", "unknown_customer", "cold_start", "error")


class _FmBatch:
    """The one FM request of a predict call; identical rows (same customer, product, time) are sent once."""

    def __init__(self, index: ServingIndex) -> None:
        self.index = index
        self.instances: list[dict[str, Any]] = []
        self._rows: dict[tuple[int | None, int, float], int] = {}

    def row(self, customer_key: int | None, product_row: int, feature: float) -> int:
        key = (customer_key, product_row, feature)
        if key not in self._rows:
            self._rows[key] = len(self.instances)
            self.instances.append(fm_instance(self.index, customer_key, product_row, feature))
        return self._rows[key]


def _item_error(answer: dict[str, Any], code: str, message: str) -> None:
    for key in ("customer_known", "title_token"):
        answer.pop(key, None)
    answer["status"] = "error"
    answer["error"] = {"code": code, "message": message}


def predict(run: DeployedRun, items: Sequence[PredictItem], invoke: Invoke, *, neighbours: int) -> Outcome:
    """Ratings for a batch, in its order; `neighbours` is how many known titles a cold start looks at."""
    index = run.index
    batch = _FmBatch(index)
    answers: list[dict[str, Any]] = []
    fm_rows: list[int | None] = []  # the FM row of each item of a known product
    cold: list[tuple[int, ColdItem]] = []  # items of unknown products that came with a title
    for n, item in enumerate(items):
        customer_key = index.customer_keys.get(item.customer_id)
        product_row = index.product_rows.get(item.product_id)
        feature = time_value(index, customer_key, epoch_day(item.date))
        answer: dict[str, Any] = {
            "customer_id": item.customer_id,
            "product_id": item.product_id,
            "date": item.date.isoformat(),
            "status": "known" if customer_key is not None else "unknown_customer",
            "customer_known": customer_key is not None,
        }
        answers.append(answer)
        fm_rows.append(None)
        if product_row is not None:
            fm_rows[n] = batch.row(customer_key, product_row, feature)
        elif item.product_title is None:
            message = (
                f"product_id {item.product_id!r} is not known to the deployed model: "
                "send its product_title for a cold-start prediction from similar titles"
            )
            _item_error(answer, "title_required", message)
        else:
            token = title_token(item.product_title)
            answer["status"] = "cold_start"
            answer["title_token"] = token
            cold.append((n, ColdItem(customer_key=customer_key, title_token=token, time_value=feature)))

    sent_words = 0
    if cold:
        fields, sent_words = answer_cold_starts(run, [c for _, c in cold], invoke, neighbours=neighbours)
        for (n, _), answer_fields in zip(cold, fields, strict=True):
            answers[n].update(answer_fields)
    if batch.instances:
        scores = fm_scores(invoke(FM, {"instances": batch.instances}), len(batch.instances))
        for row, answer in zip(fm_rows, answers, strict=True):
            if row is not None:
                answer["rating"] = clip(scores[row], index.rating_range)

    counts = dict.fromkeys(STATUSES, 0)
    for answer in answers:
        counts[answer["status"]] += 1
    counts.update(
        items=len(items),
        fm_rows=len(batch.instances),
        blazingtext_words=sent_words,
        cold_start_customer_only=sum(a.get("answered_from") == CUSTOMER_ONLY for a in answers),
    )
    return Outcome(body={"run_id": run.run_id, "predictions": answers}, counts=counts)
