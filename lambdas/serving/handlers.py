"""The API Lambdas (API Gateway REST proxy integration): POST /predictions, POST /similar-titles and
POST /recommendations.

Thin: parse the event, call the route's module (predict, similar, recommendations) with the current run and
the endpoints, shape the response; log one JSON line and write the request's metrics. The settings are
validated at import (the Lambda's cold start): an invalid environment fails the init with one line that names
the variable.

Metrics per request (lambdas/kit/metrics.py: EMF, namespace POWERTOOLS_METRICS_NAMESPACE, dimension service):
- PredictionsServed: predict items answered with a rating (known, unknown customer, cold start);
- ColdStartsAnswered: of those, items of unknown products rated from their title (from its neighbours or,
  without a meaningful neighbour, from the customer's side alone);
- SimilarTitleRequests: similar-titles requests, whatever their answer;
- RecommendationsServed: recommendations requests answered (200);
- RecommendationFallbacks: of those, answered with the most popular products (the customer is unknown);
- ItemsRejected, by status and code: the entries of a failed request (its items or titles; 1 when its body
  has none, and for a recommendations request), with the response's HTTP status and error code; and each
  item a 200 answer could not rate (status 200, code title_required).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# One BLAS thread for the title-vector products (vectors.py, 0.2 ms for 40k x 100 on one core) and the top-N
# product (fm/topn.py): OpenBLAS's worker threads on a Lambda's shared, throttled vCPUs wait for time slices
# instead (p50 8 ms measured on a busy 2-core machine, bench/serving.py). Set before numpy loads; this module
# is the Lambda's entry point.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# The imports below load numpy (through the route modules): they come after the setting above.
from lambdas.kit import settings
from lambdas.kit.errors import RequestError, ServingError
from lambdas.kit.invocation import invocation
from lambdas.kit.logs import LOGGER, apply_log_level
from lambdas.kit.metrics import Metrics

from .config import ServingConfig
from .deployed import DeployedRun, Invoke, Outcome
from .deployment import CurrentRun
from .parsing import (
    parse_json_body,
    parse_predict_request,
    parse_recommendations_request,
    parse_similar_request,
)
from .predict import predict
from .recommendations import recommendations
from .runtime import EndpointInvoker
from .similar import similar_titles

PREDICTIONS_SERVED = "PredictionsServed"
COLD_STARTS_ANSWERED = "ColdStartsAnswered"
SIMILAR_TITLE_REQUESTS = "SimilarTitleRequests"
RECOMMENDATIONS_SERVED = "RecommendationsServed"
RECOMMENDATION_FALLBACKS = "RecommendationFallbacks"
ITEMS_REJECTED = "ItemsRejected"

apply_log_level()
CONFIG = settings.load(ServingConfig)
CURRENT_RUN = CurrentRun(CONFIG.run_record_uri, CONFIG.record_ttl_seconds)
ENDPOINTS = EndpointInvoker(CONFIG.sagemaker_runtime_endpoint_url)
METRICS = Metrics()

Work = Callable[[object], Outcome]


def _bind(run: DeployedRun) -> Invoke:
    def invoke(model: str, payload: object) -> Any:
        return ENDPOINTS.invoke(model, run.endpoints[model], payload)

    return invoke


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _predict(body: object) -> Outcome:
    items = parse_predict_request(body, max_batch_size=CONFIG.max_batch_size, today=_today())
    run = CURRENT_RUN.get()
    return predict(run, items, _bind(run), neighbours=CONFIG.neighbours)


def _similar_titles(body: object) -> Outcome:
    request = parse_similar_request(body, max_titles=CONFIG.max_batch_size, max_similar=CONFIG.max_similar)
    run = CURRENT_RUN.get()
    return similar_titles(run, request, _bind(run))


def _recommendations(body: object) -> Outcome:
    request = parse_recommendations_request(body, today=_today())
    return recommendations(CURRENT_RUN.get(), request)


def _count_predictions(outcome: Outcome | None) -> None:
    counts = {} if outcome is None else outcome.counts
    served = sum(counts.get(status, 0) for status in ("known", "unknown_customer", "cold_start"))
    METRICS.count(PREDICTIONS_SERVED, served)
    METRICS.count(COLD_STARTS_ANSWERED, counts.get("cold_start", 0))
    for answer in [] if outcome is None else outcome.body["predictions"]:
        if answer["status"] == "error":
            METRICS.count(ITEMS_REJECTED, 1, status="200", code=answer["error"]["code"])


def _count_similar_titles(_outcome: Outcome | None) -> None:
    METRICS.count(SIMILAR_TITLE_REQUESTS, 1)


def _count_recommendations(outcome: Outcome | None) -> None:
    METRICS.count(RECOMMENDATIONS_SERVED, 0 if outcome is None else 1)
    METRICS.count(RECOMMENDATION_FALLBACKS, 0 if outcome is None else outcome.counts["fallback"])


@dataclass(frozen=True)
class _Route:
    name: str
    batch: str | None
    """The field of the request body that lists its entries (None: a request is one entry)."""
    work: Work
    count: Callable[[Outcome | None], None]
    """Adds the route's metrics of one request (None: the request failed)."""


PREDICT = _Route("POST /predictions", "items", _predict, _count_predictions)
SIMILAR_TITLES = _Route("POST /similar-titles", "titles", _similar_titles, _count_similar_titles)
RECOMMENDATIONS = _Route("POST /recommendations", None, _recommendations, _count_recommendations)


def _entries(body: object, batch: str | None) -> int:
    """How many entries (items, titles) a request body holds; 1 for a body without them."""
    entries = body.get(batch) if isinstance(body, dict) and batch is not None else None
    return len(entries) if isinstance(entries, list) and entries else 1


def _raw_body(event: dict[str, Any]) -> str | bytes | None:
    body = event.get("body")
    if body is not None and event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise RequestError("body", "isBase64Encoded is set but the body is not base64") from None
    if body is not None and not isinstance(body, str):
        raise RequestError("body", "must be a JSON document in a string")
    return body


def _response(status: int, body: dict[str, Any], request_id: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", "X-Request-Id": request_id},
        "body": json.dumps(body, separators=(",", ":")),
    }


def _answer(event: dict[str, Any], route: _Route, request_id: str) -> dict[str, Any]:
    """The response to one request; logs its line and counts its metrics."""
    started = time.perf_counter()
    log: dict[str, Any] = {"route": route.name}
    entries = 1
    outcome: Outcome | None = None
    try:
        if event.get("httpMethod", "POST") != "POST":
            message = f"method {event.get('httpMethod')} not allowed: {route.name} only"
            status, body = 405, {"error": {"code": "method_not_allowed", "message": message}}
        else:
            request = parse_json_body(_raw_body(event))
            entries = _entries(request, route.batch)
            outcome = route.work(request)
            status, body = 200, outcome.body
            log["counts"] = outcome.counts
            log["run_id"] = body.get("run_id")
    except ServingError as exc:
        status, body = exc.status, {"error": {"code": exc.code, "message": str(exc)}}
        log["error_code"] = exc.code
    except Exception:
        LOGGER.exception("unexpected error", extra={"route": route.name})
        status = 500
        body = {"error": {"code": "internal_error", "message": f"internal error (request id {request_id})"}}
        log["error_code"] = "internal_error"
    route.count(outcome)
    if status != 200:
        METRICS.count(ITEMS_REJECTED, entries, status=str(status), code=body["error"]["code"])
        body["request_id"] = request_id  # type: ignore[assignment]
        log["error"] = body["error"]["message"]
    log["status"] = status
    log["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    LOGGER.info(route.name, extra=log)
    return _response(status, body, request_id)


def _handle(event: Any, context: Any, route: _Route) -> dict[str, Any]:
    event = event if isinstance(event, dict) else {}
    api_request_id = (event.get("requestContext") or {}).get("requestId")
    request_id = str(api_request_id or getattr(context, "aws_request_id", None) or uuid.uuid4())
    with invocation(context, metrics=METRICS, request_id=request_id, correlation_id=api_request_id):
        return _answer(event, route, request_id)


def predict_handler(event: Any, context: Any) -> dict[str, Any]:
    """POST /predictions: ratings for a batch of (customer, product[, date][, title])."""
    return _handle(event, context, PREDICT)


def similar_titles_handler(event: Any, context: Any) -> dict[str, Any]:
    """POST /similar-titles: the k known titles most similar to each requested title."""
    return _handle(event, context, SIMILAR_TITLES)


def recommendations_handler(event: Any, context: Any) -> dict[str, Any]:
    """POST /recommendations: the k products a customer is most likely to choose, best first."""
    return _handle(event, context, RECOMMENDATIONS)
