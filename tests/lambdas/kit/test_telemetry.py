"""Logs and metrics as CloudWatch gets them from stdout: one JSON line per logged record with the
invocation's keys, and EMF records with the right names, namespace and dimensions."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from lambdas.kit import invocation as invocation_module
from lambdas.kit.invocation import invocation, lambda_handler
from lambdas.kit.logs import LOGGER, apply_log_level
from lambdas.kit.metrics import Metrics

CONTEXT = SimpleNamespace(function_name="loftrec-Predict", aws_request_id="lambda-req-1")


@pytest.fixture(autouse=True)
def new_container(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A new execution environment at INFO, metrics on, whatever the environment of the test run says."""
    for name in ("POWERTOOLS_LOG_LEVEL", "LOG_LEVEL", "AWS_LAMBDA_LOG_LEVEL", "POWERTOOLS_METRICS_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("POWERTOOLS_DEV", raising=False)
    monkeypatch.delenv("AWS_LAMBDA_INITIALIZATION_TYPE", raising=False)
    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE", raising=False)
    invocation_module._environment.cache_clear()
    apply_log_level()
    yield
    invocation_module._environment.cache_clear()
    monkeypatch.delenv("POWERTOOLS_LOG_LEVEL", raising=False)
    apply_log_level()


def lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def test_each_logged_record_is_one_json_line_with_the_invocations_keys(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with invocation(CONTEXT, request_id="api-req-1", correlation_id="api-req-1"):
        LOGGER.info(
            "POST /predictions", extra={"route": "POST /predictions", "status": 200, "counts": {"items": 2}}
        )
    with invocation(CONTEXT, request_id="api-req-2", correlation_id="api-req-2"):
        LOGGER.info("POST /predictions", extra={"status": 400})
    LOGGER.info("between invocations")

    first, second, between = lines(capsys.readouterr().out)
    assert first["level"] == "INFO"
    assert first["message"] == "POST /predictions"
    assert first["service"] == "loftrec"
    assert (first["correlation_id"], first["request_id"]) == ("api-req-1", "api-req-1")
    assert (first["function_name"], first["function_request_id"]) == ("loftrec-Predict", "lambda-req-1")
    assert first["cold_start"] is True
    assert (first["route"], first["status"], first["counts"]) == ("POST /predictions", 200, {"items": 2})
    assert first["timestamp"].endswith("+00:00")  # UTC, RFC 3339
    assert (second["correlation_id"], second["cold_start"], second["status"]) == ("api-req-2", False, 400)
    assert "route" not in second  # one invocation's extra keys do not leak into the next
    assert not {"correlation_id", "request_id", "cold_start"} & set(between)


def test_a_provisioned_environment_has_no_cold_start(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "provisioned-concurrency")
    with invocation(None):
        LOGGER.info("first")
    (line,) = lines(capsys.readouterr().out)
    assert line["cold_start"] is False
    assert "function_name" not in line  # no Lambda context (the local twin, the tests): no context keys


def test_an_exception_is_logged_with_its_traceback_and_the_decorated_handler_keeps_the_keys(
    capsys: pytest.CaptureFixture[str],
) -> None:
    @lambda_handler
    def handler(event: dict[str, Any], _context: object) -> dict[str, Any]:
        try:
            with open(event["path"], "rb"):
                pass
        except OSError:
            LOGGER.exception("unexpected error", extra={"route": "export-title-table"})
        return {"ok": True}

    assert handler({"path": "/nonexistent/loftrec"}, CONTEXT) == {"ok": True}
    (line,) = lines(capsys.readouterr().out)
    assert line["level"] == "ERROR"
    assert line["function_request_id"] == "lambda-req-1"
    assert "FileNotFoundError" in line["traceback"]
    assert "exception" not in line


def test_powertools_log_level_is_applied_at_a_cold_start(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")
    apply_log_level()
    with invocation(CONTEXT):
        LOGGER.info("POST /predictions")
        LOGGER.warning("run record unreadable, serving the loaded run")
    (line,) = lines(capsys.readouterr().out)
    assert line["level"] == "WARNING"
    assert logging.getLogger(LOGGER.service).propagate is False  # one line, not again through the root


def test_metrics_are_one_emf_record_per_invocation_and_one_per_dimension_set(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "loftrec-test")
    metrics = Metrics()
    with invocation(CONTEXT, metrics=metrics):
        metrics.count("PredictionsServed", 3)
        metrics.count("ColdStartsAnswered", 1)
        metrics.count("ItemsRejected", 1, status="200", code="title_required")
        metrics.count("ItemsRejected", 1, status="200", code="title_required")
        metrics.count("ItemsRejected", 4, status="400", code="bad_request")

    main, title_required, bad_request = lines(capsys.readouterr().out)
    (directive,) = main["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "loftrec-test"
    assert directive["Dimensions"] == [["service"]]
    assert directive["Metrics"] == [
        {"Name": "PredictionsServed", "Unit": "Count"},
        {"Name": "ColdStartsAnswered", "Unit": "Count"},
    ]
    assert (main["service"], main["PredictionsServed"], main["ColdStartsAnswered"]) == (
        "loftrec",
        [3.0],
        [1.0],
    )
    for record, status, code, count in (
        (title_required, "200", "title_required", 2.0),
        (bad_request, "400", "bad_request", 4.0),
    ):
        (directive,) = record["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "loftrec-test"
        assert sorted(directive["Dimensions"][0]) == ["code", "service", "status"]
        assert directive["Metrics"] == [{"Name": "ItemsRejected", "Unit": "Count"}]
        assert (record["status"], record["code"], record["service"]) == (status, code, "loftrec")
        assert record["ItemsRejected"] == [count]

    with invocation(CONTEXT, metrics=metrics):
        metrics.count("SimilarTitleRequests", 1)
    (record,) = lines(capsys.readouterr().out)  # the last invocation's counts are gone
    assert {k: v for k, v in record.items() if k != "_aws"} == {
        "service": "loftrec",
        "SimilarTitleRequests": [1.0],
    }


def test_metrics_are_flushed_when_the_handler_fails(capsys: pytest.CaptureFixture[str]) -> None:
    metrics = Metrics()
    with pytest.raises(RuntimeError), invocation(CONTEXT, metrics=metrics):
        metrics.count("PredictionsServed", 0)
        raise RuntimeError("boom")
    (record,) = lines(capsys.readouterr().out)
    assert record["PredictionsServed"] == [0.0]


def test_disabled_metrics_write_nothing_however_many_invocations(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    metrics = Metrics()
    for _ in range(150):  # Powertools writes a metric that reaches 100 values unless it is cleared
        with invocation(CONTEXT, metrics=metrics):
            metrics.count("PredictionsServed", 1)
            metrics.count("ItemsRejected", 1, status="503", code="not_deployed")
    assert capsys.readouterr().out == ""
