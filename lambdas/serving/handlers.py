"""The two API Lambdas (API Gateway REST proxy integration): POST /predictions and POST /similar-titles.

Thin: parse the event, call logic with the current run and the endpoints, shape the response, log one JSON
line. The configuration is validated at import (the Lambda's cold start): an invalid environment fails the
init with a message that names the variable.
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
from typing import Any

# One BLAS thread for the title-vector products (vectors.py, 0.2 ms for 40k x 100 on one core): OpenBLAS's
# worker threads on a Lambda's shared, throttled vCPUs wait for time slices instead (p50 8 ms measured on a
# busy 2-core machine, bench/serving.py). Set before numpy loads; this module is the Lambda's entry point.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# The imports below load numpy (through logic -> vectors): they come after the setting above.
from . import logic
from .config import load_config
from .deployment import CurrentRun
from .errors import RequestError, ServingError
from .logs import json_logger
from .runtime import EndpointInvoker

LOGGER = json_logger("loftrec.serving")
CONFIG = load_config(os.environ)
CURRENT_RUN = CurrentRun(CONFIG.run_record_uri, CONFIG.record_ttl_seconds)
ENDPOINTS = EndpointInvoker(CONFIG.sagemaker_runtime_endpoint_url)

Work = Callable[[object], logic.Outcome]


def _bind(run: logic.DeployedRun) -> logic.Invoke:
    def invoke(model: str, payload: object) -> Any:
        return ENDPOINTS.invoke(model, run.endpoints[model], payload)

    return invoke


def _predict(body: object) -> logic.Outcome:
    items = logic.parse_predict_request(
        body, max_batch_size=CONFIG.max_batch_size, today=dt.datetime.now(dt.UTC).date()
    )
    run = CURRENT_RUN.get()
    return logic.predict(run, items, _bind(run), neighbours=CONFIG.neighbours)


def _similar_titles(body: object) -> logic.Outcome:
    request = logic.parse_similar_request(
        body, max_titles=CONFIG.max_batch_size, max_similar=CONFIG.max_similar
    )
    run = CURRENT_RUN.get()
    return logic.similar_titles(run, request, _bind(run))


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


def _handle(event: Any, context: Any, route: str, work: Work) -> dict[str, Any]:
    started = time.perf_counter()
    event = event if isinstance(event, dict) else {}
    request_context = event.get("requestContext") or {}
    request_id = str(
        request_context.get("requestId") or getattr(context, "aws_request_id", None) or uuid.uuid4()
    )
    log: dict[str, Any] = {"request_id": request_id, "route": route}
    try:
        if event.get("httpMethod", "POST") != "POST":
            message = f"method {event.get('httpMethod')} not allowed: {route} only"
            status, body = 405, {"error": {"code": "method_not_allowed", "message": message}}
        else:
            outcome = work(logic.parse_json_body(_raw_body(event)))
            status, body = 200, outcome.body
            log["counts"] = outcome.counts
            log["run_id"] = body.get("run_id")
    except ServingError as exc:
        status, body = exc.status, {"error": {"code": exc.code, "message": str(exc)}}
        log["error_code"] = exc.code
    except Exception:
        LOGGER.exception("unexpected error", extra={"request_id": request_id, "route": route})
        status = 500
        body = {"error": {"code": "internal_error", "message": f"internal error (request id {request_id})"}}
        log["error_code"] = "internal_error"
    if status != 200:
        body["request_id"] = request_id  # type: ignore[assignment]
    log["status"] = status
    log["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    if status != 200:
        log["error"] = body["error"]["message"]
    LOGGER.info(route, extra=log)
    return _response(status, body, request_id)


def predict_handler(event: Any, context: Any) -> dict[str, Any]:
    """POST /predictions: ratings for a batch of (customer, product[, date][, title])."""
    return _handle(event, context, "POST /predictions", _predict)


def similar_titles_handler(event: Any, context: Any) -> dict[str, Any]:
    """POST /similar-titles: the k known titles most similar to each requested title."""
    return _handle(event, context, "POST /similar-titles", _similar_titles)
