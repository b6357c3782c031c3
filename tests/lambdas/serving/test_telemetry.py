"""What the shims write for operators besides the answer: one log line per request with the API Gateway
request id as correlation id, and the EMF metrics they count (names, dimensions, values)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lambdas.kit.logs import apply_log_level
from tests.lambdas.serving.support import (
    World,
    answer,
    api_event,
    deployed_world,
    emf_records,
    load_handlers,
    log_lines,
    uri,
)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE", raising=False)
    with deployed_world(tmp_path, monkeypatch) as world:
        yield world


def counts(record: dict[str, Any]) -> dict[str, Any]:
    """An EMF record's metric values and dimensions by name (the _aws metadata left out)."""
    return {key: value for key, value in record.items() if key != "_aws"}


def test_a_predict_request_counts_its_served_cold_start_and_rejected_items(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    status, _ = world.predict(
        [
            {"customer_id": "C1", "product_id": "P-SH1"},  # known
            {"customer_id": "C9", "product_id": "P-SH2"},  # unknown customer: rated from the item side
            {"customer_id": "C1", "product_id": "NEW", "product_title": "Sherlock Season 4"},  # cold start
            {"customer_id": "C1", "product_id": "NEW-2"},  # unknown product without a title: rejected
            {"customer_id": "C2", "product_id": "NEW-3"},  # the same rejection again
        ]
    )
    assert status == 200
    out = capsys.readouterr().out
    main, rejected = emf_records(out)
    (directive,) = main["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "loftrec"
    assert directive["Dimensions"] == [["service"]]
    assert counts(main) == {"service": "loftrec", "PredictionsServed": [3.0], "ColdStartsAnswered": [1.0]}
    assert rejected["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [{"Name": "ItemsRejected", "Unit": "Count"}]
    assert counts(rejected) == {
        "status": "200",
        "code": "title_required",
        "service": "loftrec",
        "ItemsRejected": [2.0],
    }
    requests = [line for line in log_lines(out) if line["message"] == "POST /predictions"]
    assert len(requests) == 1  # one log line per request
    assert requests[0]["correlation_id"] == "req-1234"  # the API Gateway request id
    assert requests[0]["request_id"] == "req-1234"
    assert isinstance(requests[0]["cold_start"], bool)


def test_a_rejected_request_counts_each_of_its_entries_with_the_status_and_code(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    items = [{"customer_id": "C1", "product_id": "P-SH1"}] * 3 + [{"customer_id": "C1"}]
    status, body = world.predict(items)
    assert (status, body["error"]["code"]) == (400, "bad_request")
    main, rejected = emf_records(capsys.readouterr().out)
    assert counts(main) == {"service": "loftrec", "PredictionsServed": [0.0], "ColdStartsAnswered": [0.0]}
    assert counts(rejected) == {
        "status": "400",
        "code": "bad_request",
        "service": "loftrec",
        "ItemsRejected": [4.0],
    }

    world.handlers.predict_handler(api_event(None, raw="{not json"), None)
    _, rejected = emf_records(capsys.readouterr().out)
    assert counts(rejected)["ItemsRejected"] == [1.0]  # a body without items stands for one


def test_similar_title_requests_are_counted_whatever_their_answer(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert world.similar({"titles": ["Sherlock Season 1", "Downton Abbey Season 2"]})[0] == 200
    (record,) = emf_records(capsys.readouterr().out)
    assert counts(record) == {"service": "loftrec", "SimilarTitleRequests": [1.0]}

    assert world.similar({"titles": ["x"], "k": 0})[0] == 400
    main, rejected = emf_records(capsys.readouterr().out)
    assert counts(main) == {"service": "loftrec", "SimilarTitleRequests": [1.0]}
    assert counts(rejected) == {
        "status": "400",
        "code": "bad_request",
        "service": "loftrec",
        "ItemsRejected": [1.0],
    }


def test_not_deployed_is_counted_as_503_not_deployed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    handlers = load_handlers(monkeypatch, RUN_RECORD_URI=uri(tmp_path / "serving" / "current.json"))
    capsys.readouterr()
    items = [{"customer_id": "C1", "product_id": "P-SH1"}, {"customer_id": "C2", "product_id": "P-SH2"}]
    assert answer(handlers.predict_handler(api_event({"items": items}), None))[0] == 503
    _, rejected = emf_records(capsys.readouterr().out)
    assert counts(rejected) == {
        "status": "503",
        "code": "not_deployed",
        "service": "loftrec",
        "ItemsRejected": [2.0],
    }


def test_the_local_twins_settings_keep_the_shims_quiet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # What local/pipeline.py's local_aws_environment sets before it imports the handlers.
    quiet = {"POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}
    try:
        with deployed_world(tmp_path, monkeypatch, **quiet) as world:
            capsys.readouterr()
            assert world.predict([{"customer_id": "C1", "product_id": "P-SH1"}])[0] == 200
            assert world.similar({"titles": ["Sherlock Season 1"]})[0] == 200
            assert world.recommend({"customer_id": "C1"})[0] == 200
            assert world.predict([{"customer_id": "C1"}])[0] == 400
            assert capsys.readouterr().out == ""
    finally:
        monkeypatch.delenv("POWERTOOLS_LOG_LEVEL")
        apply_log_level()  # the next tests' shims log at INFO again


def test_recommendations_count_the_answered_requests_and_the_fallbacks(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert world.recommend({"customer_id": "C1", "k": 3})[0] == 200
    assert world.recommend({"customer_id": "NEW", "k": 3})[0] == 200
    out = capsys.readouterr().out
    known, fallback = emf_records(out)
    assert counts(known) == {
        "service": "loftrec",
        "RecommendationsServed": [1.0],
        "RecommendationFallbacks": [0.0],
    }
    assert counts(fallback) == {
        "service": "loftrec",
        "RecommendationsServed": [1.0],
        "RecommendationFallbacks": [1.0],
    }
    requests = [line for line in log_lines(out) if line["message"] == "POST /recommendations"]
    assert [line["counts"] for line in requests] == [
        {"k": 3, "returned": 3, "fallback": 0},
        {"k": 3, "returned": 3, "fallback": 1},
    ]
    assert [line["run_id"] for line in requests] == ["run-a", "run-a"]

    assert world.recommend({"customer_id": "C1", "k": 0})[0] == 400
    main, rejected = emf_records(capsys.readouterr().out)
    assert counts(main) == {
        "service": "loftrec",
        "RecommendationsServed": [0.0],
        "RecommendationFallbacks": [0.0],
    }
    assert counts(rejected) == {
        "status": "400",
        "code": "bad_request",
        "service": "loftrec",
        "ItemsRejected": [1.0],
    }
