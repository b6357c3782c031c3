"""What the two API calls do, without AWS: validate requests, build the endpoint requests, blend the answers.

The endpoints are reached through an `Invoke` callable (model name -> JSON payload -> parsed JSON answer) that
the handlers bind to the SageMaker runtime; everything here is plain data in, plain data out.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from contract.algorithms import BLAZINGTEXT, FM
from contract.index import ServingIndex, normalize_id, title_token
from lambdas.kit.errors import ModelRejectedError, RequestError

from .vectors import FloatMatrix, TitleTable, unit_vector

MAX_ID_CHARS = 64
MAX_TITLE_CHARS = 500
DEFAULT_SIMILAR = 10
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


class Invoke(Protocol):
    """Call one model ("fm" or "blazingtext") of the deployed run with a JSON payload; return its JSON."""

    def __call__(self, model: str, payload: object) -> Any: ...


@dataclass(frozen=True)
class DeployedRun:
    """The run that serves now: its record's identity and endpoints, its index and its title table."""

    run_id: str
    endpoints: Mapping[str, str]
    index: ServingIndex
    titles: TitleTable


@dataclass(frozen=True)
class PredictItem:
    customer_id: str
    product_id: str
    date: dt.date
    product_title: str | None


@dataclass(frozen=True)
class SimilarRequest:
    titles: list[str]
    k: int


@dataclass
class Outcome:
    """A 200 answer's body and the counts the handler logs."""

    body: dict[str, Any]
    counts: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- requests


def _utf8(raw: bytes) -> str:
    """A body's bytes as text: UTF-8, the only encoding JSON may be exchanged in (RFC 8259, section 8.1), a
    leading byte order mark ignored as the RFC allows. UTF-16 and UTF-32 text is refused by its NUL bytes,
    which UTF-8 JSON cannot hold."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problem = f"byte 0x{raw[exc.start]:02x} at position {exc.start} ({exc.reason})"
        raise RequestError("body", f"not UTF-8: {problem}") from None
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise RequestError("body", f"not UTF-8: a NUL byte at position {nul} (UTF-16 or UTF-32 text?)")
    return text


def parse_json_body(raw: str | bytes | None) -> object:
    """The request body (the event's text, or the bytes of a base64 body) as JSON."""
    text = _utf8(raw) if isinstance(raw, bytes) else raw
    if text is None or not text.strip():
        raise RequestError("body", "required: a JSON object")
    try:
        return json.loads(text)
    except RecursionError:
        raise RequestError("body", "nested too deeply") from None
    except ValueError as exc:
        raise RequestError("body", f"not valid JSON ({exc})") from None


def _object(value: object, where: str, allowed: Sequence[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RequestError(where, f"must be a JSON object, got {_kind(value)}")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        name = _shown(unknown[0])
        path = f"{where}.{name}" if where != "body" else name
        raise RequestError(path, f"unknown field (allowed: {', '.join(allowed)})")
    return value


def _shown(name: str) -> str:
    """A field name the request made up, as an error message shows it: as it is when it is short and
    printable, else quoted with its escapes (a lone surrogate, a control character), at most 40 characters."""
    if name and len(name) <= 40 and name.isprintable():
        return name
    return repr(name[:40]) + ("..." if len(name) > 40 else "")


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _text(value: object, path: str) -> str:
    """A string that UTF-8 can encode: JSON's \\ud800 escapes let a request spell a lone surrogate, which no
    model, index or log line can take."""
    if not isinstance(value, str):
        raise RequestError(path, f"must be a string, got {_kind(value)}")
    surrogate = _SURROGATE.search(value)
    if surrogate is not None:
        problem = f"a lone surrogate U+{ord(surrogate.group()):04X} at character {surrogate.start() + 1}"
        raise RequestError(path, f"not valid Unicode: {problem} (text must be encodable as UTF-8)")
    return value


def _identifier(item: Mapping[str, Any], name: str, where: str) -> str:
    """A customer or product id, without the whitespace around it (contract.index.normalize_id)."""
    path = f"{where}.{name}"
    if name not in item:
        raise RequestError(path, "required")
    value = normalize_id(_text(item[name], path))
    if not value:
        raise RequestError(path, "must not be empty")
    if len(value) > MAX_ID_CHARS:
        raise RequestError(path, f"too long: {len(value)} characters, at most {MAX_ID_CHARS}")
    return value


def _title(value: object, path: str) -> str:
    title = _text(value, path)
    if not title.strip():
        raise RequestError(path, "must not be empty")
    if len(title) > MAX_TITLE_CHARS:
        raise RequestError(path, f"too long: {len(title)} characters, at most {MAX_TITLE_CHARS}")
    return title


def _date(value: object, path: str) -> dt.date:
    if not isinstance(value, str):
        raise RequestError(path, f"must be a string YYYY-MM-DD, got {_kind(value)}")
    if _DATE.fullmatch(value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise RequestError(path, f"not a valid date YYYY-MM-DD: {value[:40]!r}")


def _batch(body: Mapping[str, Any], name: str, max_size: int) -> list[Any]:
    if name not in body:
        raise RequestError(name, "required")
    batch = body[name]
    if not isinstance(batch, list):
        raise RequestError(name, f"must be an array, got {_kind(batch)}")
    if not batch:
        raise RequestError(name, f"must not be empty (1 to {max_size} entries)")
    if len(batch) > max_size:
        raise RequestError(name, f"too many entries: {len(batch)}, at most {max_size}")
    return batch


def parse_predict_request(body: object, *, max_batch_size: int, today: dt.date) -> list[PredictItem]:
    """{"items": [{customer_id, product_id, date?, product_title?}, ...]} -> items; RequestError if bad."""
    request = _object(body, "body", ("items",))
    items: list[PredictItem] = []
    for n, raw in enumerate(_batch(request, "items", max_batch_size)):
        where = f"items[{n}]"
        item = _object(raw, where, ("customer_id", "product_id", "date", "product_title"))
        title = item.get("product_title")
        items.append(
            PredictItem(
                customer_id=_identifier(item, "customer_id", where),
                product_id=_identifier(item, "product_id", where),
                date=today if item.get("date") is None else _date(item["date"], f"{where}.date"),
                product_title=None if title is None else _title(title, f"{where}.product_title"),
            )
        )
    return items


def parse_similar_request(body: object, *, max_titles: int, max_similar: int) -> SimilarRequest:
    """{"titles": [str, ...], "k"?: int} -> SimilarRequest; RequestError if bad."""
    request = _object(body, "body", ("titles", "k"))
    titles = [_title(t, f"titles[{n}]") for n, t in enumerate(_batch(request, "titles", max_titles))]
    k = request.get("k")
    if k is None:
        k = min(DEFAULT_SIMILAR, max_similar)
    elif isinstance(k, bool) or not isinstance(k, int):
        raise RequestError("k", f"must be an integer from 1 to {max_similar}, got {_kind(k)}")
    elif not 1 <= k <= max_similar:
        shown = str(k) if len(str(k)) <= 20 else f"{str(k)[:20]}... ({len(str(k))} digits)"
        raise RequestError("k", f"must be an integer from 1 to {max_similar}, got {shown}")
    return SimilarRequest(titles=titles, k=k)


# ------------------------------------------------------------------------------------- endpoint formats


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


def time_feature(index: ServingIndex, customer_key: int | None, date: dt.date) -> float:
    """prep's time feature for a request on `date`: transform(days since the customer's first review).

    A date before the first review counts as day 0; an unknown customer is at day 0 (a first review).
    """
    if customer_key is None:
        return index.time_transform(0)
    days = date.toordinal() - _EPOCH_ORDINAL - index.first_review_day[customer_key]
    return index.time_transform(max(0, days))


def fm_scores(answer: object, expected: int) -> list[float]:
    """{"predictions": [{"score": x}, ...]} -> scores, checked against the number of instances sent."""
    predictions = answer.get("predictions") if isinstance(answer, dict) else None
    if not isinstance(predictions, list) or len(predictions) != expected:
        got = len(predictions) if isinstance(predictions, list) else _kind(predictions)
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
            got = len(answer) if isinstance(answer, list) else _kind(answer)
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


# ------------------------------------------------------------------------------------------------ predict


@dataclass
class _Plan:
    """How one item will be answered: its FM rows, and the weights that blend them into one rating."""

    rows: list[int]
    weights: list[float]
    neighbours: list[dict[str, Any]] | None = None


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


def _clip(score: float, rating_range: tuple[float, float]) -> float:
    return min(max(score, rating_range[0]), rating_range[1])


def _item_error(answer: dict[str, Any], code: str, message: str) -> None:
    for key in ("customer_known", "title_token"):
        answer.pop(key, None)
    answer["status"] = "error"
    answer["error"] = {"code": code, "message": message}


def _plan_cold_starts(
    run: DeployedRun,
    *,
    items: Sequence[PredictItem],
    answers: list[dict[str, Any]],
    plans: list[_Plan | None],
    cold: list[int],
    batch: _FmBatch,
    invoke: Invoke,
    neighbours: int,
) -> int:
    """Plan the items of unknown products that came with a title: their k nearest known titles (positive
    similarity only) become FM rows, weighted by similarity. Returns how many words BlazingText was sent."""
    index = run.index
    tokens = [answers[n]["title_token"] for n in cold]
    vectors, sent_words = title_vectors(run.titles, tokens, invoke)
    queries = [(token, vector) for token in dict.fromkeys(tokens) if (vector := vectors[token]) is not None]
    found = run.titles.nearest([vector for _, vector in queries], neighbours)
    nearest = {token: pairs for (token, _), pairs in zip(queries, found, strict=True)}
    for n, token in zip(cold, tokens, strict=True):
        item = items[n]
        chosen = [
            (title, similarity, index.title_rows[title])
            for title, similarity in nearest.get(token, [])
            if similarity > 0 and title in index.title_rows
        ]
        if not chosen:
            message = f"no known title is similar to product_title {item.product_title!r}"
            _item_error(answers[n], "no_similar_titles", message)
            continue
        customer_key = index.customer_keys.get(item.customer_id)
        feature = time_feature(index, customer_key, item.date)
        total = math.fsum(similarity for _, similarity, _ in chosen)
        plans[n] = _Plan(
            rows=[batch.row(customer_key, row, feature) for _, _, row in chosen],
            weights=[similarity / total for _, similarity, _ in chosen],
            neighbours=[
                {"title": title, "product_id": index.product_ids[row], "similarity": similarity}
                for title, similarity, row in chosen
            ],
        )
    return sent_words


def predict(run: DeployedRun, items: Sequence[PredictItem], invoke: Invoke, *, neighbours: int) -> Outcome:
    """Ratings for a batch: one FM call for every answerable item (with the cold-start neighbour rows), at
    most one BlazingText call for the titles of unknown products. Each answer says how it was made."""
    index = run.index
    batch = _FmBatch(index)
    answers: list[dict[str, Any]] = []
    plans: list[_Plan | None] = []
    cold: list[int] = []  # items of unknown products that came with a title
    for n, item in enumerate(items):
        customer_key = index.customer_keys.get(item.customer_id)
        product_row = index.product_rows.get(item.product_id)
        answer: dict[str, Any] = {
            "customer_id": item.customer_id,
            "product_id": item.product_id,
            "date": item.date.isoformat(),
            "status": "known" if customer_key is not None else "unknown_customer",
            "customer_known": customer_key is not None,
        }
        answers.append(answer)
        plans.append(None)
        if product_row is not None:
            feature = time_feature(index, customer_key, item.date)
            plans[n] = _Plan(rows=[batch.row(customer_key, product_row, feature)], weights=[1.0])
        elif item.product_title is None:
            message = (
                f"product_id {item.product_id!r} is not known to the deployed model: "
                "send its product_title for a cold-start prediction from similar titles"
            )
            _item_error(answer, "title_required", message)
        else:
            answer["status"] = "cold_start"
            answer["title_token"] = title_token(item.product_title)
            cold.append(n)

    sent_words = 0
    if cold:
        sent_words = _plan_cold_starts(
            run,
            items=items,
            answers=answers,
            plans=plans,
            cold=cold,
            batch=batch,
            invoke=invoke,
            neighbours=neighbours,
        )
    if batch.instances:
        scores = fm_scores(invoke(FM, {"instances": batch.instances}), len(batch.instances))
        for plan, answer in zip(plans, answers, strict=True):
            if plan is None:
                continue
            ratings = [_clip(scores[row], index.rating_range) for row in plan.rows]
            answer["rating"] = math.fsum(w * r for w, r in zip(plan.weights, ratings, strict=True))
            if plan.neighbours is not None:
                for neighbour, weight, rating in zip(plan.neighbours, plan.weights, ratings, strict=True):
                    neighbour["weight"] = weight
                    neighbour["rating"] = rating
                answer["neighbours"] = plan.neighbours

    counts = dict.fromkeys(("known", "unknown_customer", "cold_start", "error"), 0)
    for answer in answers:
        counts[answer["status"]] += 1
    counts.update(items=len(items), fm_rows=len(batch.instances), blazingtext_words=sent_words)
    return Outcome(body={"run_id": run.run_id, "predictions": answers}, counts=counts)


# ----------------------------------------------------------------------------------------- similar titles


def similar_titles(run: DeployedRun, request: SimilarRequest, invoke: Invoke) -> Outcome:
    """The k known titles most similar to each requested title (known or made up), by cosine similarity.

    A known title is not listed among its own neighbours. Known titles' vectors come from the title table;
    the others from one BlazingText call.
    """
    index, table = run.index, run.titles
    tokens = [title_token(title) for title in request.titles]
    vectors, sent_words = title_vectors(table, tokens, invoke)
    queries = [(token, vector) for token in dict.fromkeys(tokens) if (vector := vectors[token]) is not None]
    usable = [token for token, _ in queries]
    answers = table.nearest([vector for _, vector in queries], request.k, exclude=usable)
    found = dict(zip(usable, answers, strict=True))
    results = []
    for title, token in zip(request.titles, tokens, strict=True):
        results.append(
            {
                "title": title,
                "title_token": token,
                "known": token in table.rows,
                "similar": [
                    {"title": tok, "product_id": _product_id(index, tok), "similarity": sim}
                    for tok, sim in found.get(token, [])
                ],
            }
        )
    counts = {"titles": len(tokens), "blazingtext_words": sent_words, "k": request.k}
    return Outcome(body={"run_id": run.run_id, "results": results}, counts=counts)


def _product_id(index: ServingIndex, token: str) -> str | None:
    row = index.title_rows.get(token)
    return None if row is None else index.product_ids[row]
