"""The shims when things go wrong or change: retries, models missing or failing, restarts, a new run."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from contract import layout
from contract.features import FeatureLayout
from fm.factors import build_and_write
from local.fm import FmParameters, save_model
from tests.fm.topn_support import shard
from tests.lambdas.serving.support import (
    M,
    N,
    World,
    answer,
    api_event,
    deployed_world,
    load_handlers,
    uri,
    write_record,
    write_run,
)

# Dated before C4's first review: the time feature is log1p(0) = 0 and the score is w0 + w_SH2 = 3.5.
KNOWN_PAIR = [{"customer_id": "C4", "product_id": "P-SH2", "date": "2010-01-01"}]
COLD_START = [{"customer_id": "C4", "product_id": "NEW", "product_title": "Sherlock Season 7"}]


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with deployed_world(tmp_path, monkeypatch) as world:
        yield world


def test_throttling_is_retried_until_the_model_answers(world: World) -> None:
    world.server.inject_faults(world.fm, 429, count=2)

    status, body = world.predict(KNOWN_PAIR)

    assert status == 200
    assert body["predictions"][0]["rating"] == pytest.approx(3.5, abs=1e-6)
    assert world.server.pending_faults(world.fm) == 0
    assert len(world.server.received(world.fm)) == 1


@pytest.mark.parametrize(("status_code", "code"), [(500, "InternalFailure"), (503, "ServiceUnavailable")])
def test_persistent_server_errors_are_a_503_naming_the_model_after_three_attempts(
    world: World, status_code: int, code: str
) -> None:
    world.server.inject_faults(world.blazingtext, status_code, count=4)

    status, body = world.predict(COLD_START)

    assert status == 503
    assert body["error"]["code"] == "model_unavailable"
    message = body["error"]["message"]
    assert message.startswith(f"the blazingtext model (endpoint {world.blazingtext}) is unavailable")
    assert f"failed 3 times, last {code}" in message
    assert world.server.pending_faults(world.blazingtext) == 1  # exactly three attempts were made
    assert world.server.received(world.fm) == []  # the FM call waits for the neighbours


def test_no_run_record_is_a_503_that_says_nothing_is_deployed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handlers = load_handlers(monkeypatch, RUN_RECORD_URI=uri(tmp_path / "serving" / "current.json"))

    for status, body in (
        answer(handlers.predict_handler(api_event({"items": KNOWN_PAIR}), None)),
        answer(handlers.similar_titles_handler(api_event({"titles": ["x"]}, path="/similar-titles"), None)),
    ):
        assert status == 503
        assert body["error"]["code"] == "not_deployed"
        assert body["error"]["message"].startswith("no model is deployed yet: no run record at file://")


def test_a_missing_endpoint_is_a_503_naming_the_model(world: World) -> None:
    world.server.remove_endpoint(world.fm)

    status, body = world.predict(KNOWN_PAIR)

    assert status == 503
    assert body["error"] == {
        "code": "not_deployed",
        "message": f"the fm model (endpoint {world.fm}) is not deployed: the endpoint does not exist",
    }


def test_a_model_that_rejects_the_request_is_a_502(world: World) -> None:
    # The endpoint serves a model of another feature_dim than the deployed run's index.
    other = world.root / "other-fm"
    model = FmParameters(1.0, np.zeros(7, np.float32), np.zeros((7, 2), np.float32))
    save_model(other, model, {"predictor_type": "regressor"})
    world.server.add_endpoint(world.fm, other)

    status, body = world.predict(KNOWN_PAIR)

    assert status == 502
    assert body["error"]["code"] == "model_rejected"
    assert body["error"]["message"].startswith(
        f"the fm model (endpoint {world.fm}) rejected the request: ModelError"
    )
    assert "is not [7] (feature_dim)" in body["error"]["message"]


def test_a_restarted_runtime_is_used_again_on_the_next_call(world: World) -> None:
    assert world.predict(KNOWN_PAIR)[0] == 200
    port = world.server.port

    world.server.stop()
    status, body = world.predict(KNOWN_PAIR)
    assert status == 503
    assert "is unavailable: failed 3 times" in body["error"]["message"]

    world.server.start()
    assert world.server.port == port
    status, body = world.predict(KNOWN_PAIR)
    assert status == 200
    assert body["predictions"][0]["rating"] == pytest.approx(3.5, abs=1e-6)


def test_a_new_run_record_is_picked_up_after_the_ttl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with deployed_world(tmp_path, monkeypatch, RECORD_TTL_SECONDS="0.3") as world:
        assert world.predict(KNOWN_PAIR)[1]["run_id"] == "run-a"
        run_b = write_run(tmp_path, "run-b", w0=2.0)
        world.server.add_endpoint("loftrec-fm-run-b", run_b / "fm")
        world.server.add_endpoint("loftrec-bt-run-b", run_b / "blazingtext")
        write_record(world.record, run_b, fm="loftrec-fm-run-b", blazingtext="loftrec-bt-run-b")

        status, body = world.predict(KNOWN_PAIR)  # within the TTL: still run-a
        assert (status, body["run_id"], body["predictions"][0]["rating"]) == (
            200,
            "run-a",
            pytest.approx(3.5),
        )

        time.sleep(0.35)
        status, body = world.predict(KNOWN_PAIR)
        assert (status, body["run_id"], body["predictions"][0]["rating"]) == (
            200,
            "run-b",
            pytest.approx(2.5),
        )
        status, body = world.similar({"titles": ["Sherlock Season 5"]})
        assert body["run_id"] == "run-b"
        assert len(world.server.received("loftrec-bt-run-b")) == 1
        status, body = world.recommend({"customer_id": "C4", "k": 1, "date": "2010-01-01"})
        assert (status, body["run_id"]) == (200, "run-b")
        assert body["recommendations"][0]["rating"] == pytest.approx(2.75)  # run-b's factors: w0 2 + w_IMG


def test_a_run_record_pointing_at_missing_files_is_a_503(world: World) -> None:
    (world.run / "serving" / "titles.f32").unlink()  # before the first request: nothing is loaded yet

    status, body = world.predict(KNOWN_PAIR)

    assert status == 503
    assert body["error"]["code"] == "run_unreadable"
    assert body["error"]["message"].startswith("the deployed run has no file://")
    assert body["error"]["message"].endswith("/serving/titles.f32")


def test_a_malformed_index_is_a_503_naming_the_file(world: World) -> None:
    customers = world.run / "prep" / "index" / "customers.tsv"
    customers.write_text(customers.read_text().replace("\t", "\tnot-a-day-", 1))

    status, body = world.predict(KNOWN_PAIR)

    assert (status, body["error"]["code"]) == (503, "run_unreadable")
    assert body["error"]["message"].startswith(
        "the deployed run's index: customers.tsv: line 1: first_review_day 'not-a-day-"
    )


def test_a_first_deployment_is_picked_up_after_the_ttl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with deployed_world(tmp_path, monkeypatch, RECORD_TTL_SECONDS="0.3") as world:
        content = world.record.read_bytes()
        world.record.unlink()
        assert world.predict(KNOWN_PAIR)[0] == 503

        world.record.write_bytes(content)
        status, body = world.predict(KNOWN_PAIR)  # "not deployed" is cached for the TTL too
        assert (status, body["error"]["code"]) == (503, "not_deployed")

        time.sleep(0.35)
        assert world.predict(KNOWN_PAIR)[0] == 200


def test_an_unreadable_record_keeps_the_loaded_run_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with deployed_world(tmp_path, monkeypatch, RECORD_TTL_SECONDS="0.1") as world:
        assert world.predict(KNOWN_PAIR)[0] == 200
        world.record.unlink()
        world.record.mkdir()  # reading it fails, and not with "not found"
        time.sleep(0.15)
        capsys.readouterr()

        status, body = world.predict(KNOWN_PAIR)

        assert (status, body["run_id"]) == (200, "run-a")
        warning = json.loads(capsys.readouterr().out.splitlines()[0])
        assert warning["level"] == "WARNING"
        assert warning["message"] == "run record unreadable, serving the loaded run"
        assert "IsADirectoryError" in warning["traceback"]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("serving/fm/items.npy", "the deployed run has no file://{run}/serving/fm/items.npy"),
        ("serving/fm/factors.json", "the deployed run has no file://{run}/serving/fm/factors.json"),
        ("serving/cold_start.json", "the deployed run has no file://{run}/serving/cold_start.json"),
        ("serving/ranking.json", "the deployed run has no file://{run}/serving/ranking.json"),
    ],
)
def test_a_run_without_its_factors_shrinkage_or_ranking_is_a_503_naming_the_file(
    world: World, path: str, message: str
) -> None:
    (world.run / path).unlink()  # before the first request: nothing is loaded yet

    for status, body in (world.predict(KNOWN_PAIR), world.recommend({"customer_id": "C1"})):
        assert (status, body["error"]["code"]) == (503, "run_unreadable")
        assert body["error"]["message"] == message.format(run=world.run.resolve())


@pytest.mark.parametrize(
    ("path", "content", "message"),
    [
        (
            "serving/cold_start.json",
            '{"schema_version": 2, "alpha": -1, "min_similarity": 0}',
            "the deployed run's cold_start.json: alpha is -1, below 0.0",
        ),
        (
            "serving/ranking.json",
            '{"schema_version": 1, "popularity_weight": "high"}',
            "the deployed run's ranking.json: popularity_weight is 'high', not a number",
        ),
        (
            "serving/fm/items.npy",
            "not an array",
            "the deployed run's FM factors (file://{run}/serving/fm/): items.npy: not a .npy file",
        ),
    ],
)
def test_a_malformed_serving_file_is_a_503_naming_it(
    world: World, path: str, content: str, message: str
) -> None:
    (world.run / path).write_text(content)

    status, body = world.recommend({"customer_id": "C1"})

    assert (status, body["error"]["code"]) == (503, "run_unreadable")
    assert body["error"]["message"].startswith(message.format(run=world.run.resolve())), body


def test_factors_of_another_run_are_refused(world: World, tmp_path: Path) -> None:
    """Factors for another index (one product fewer) than the run's: a 503 that says so."""
    other = tmp_path / "other"
    build_and_write(
        model=_other_model(other),
        features=FeatureLayout(N, M - 1),
        shards=[shard([(0, 0, 0.0)], FeatureLayout(N, M - 1))],
        output=world.run / layout.SERVING_FACTORS,
    )

    status, body = world.predict(KNOWN_PAIR)

    assert (status, body["error"]["code"]) == (503, "run_unreadable")
    assert body["error"]["message"].endswith(
        "factors.json: the factors are for 4 customers and 9 products, the index has 4 and 10: "
        "they come from different runs"
    )


def _other_model(folder: Path) -> Path:
    dim = N + M  # one product fewer than the run's index
    model = FmParameters(1.0, np.zeros(dim, np.float32), np.zeros((dim, 2), np.float32))
    return save_model(folder, model, {"predictor_type": "regressor"})
