"""The local SageMaker runtime through boto3's sagemaker-runtime client (endpoint_url), as shims see it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError

from local.fm import FmParameters, save_model
from local.runtime_server import FmPredictor, RuntimeServer, main
from tests.lambdas.serving.support import (
    aws_test_environment,
    blazingtext_model,
    trained_blazingtext,
    word_vector,
)

# A hand-chosen FM over 5 features with 2 factors.
W0 = 1.5
W = np.array([0.5, -0.25, 1.0, 0.0, 0.125], dtype=np.float32)
V = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 2.0], [1.0, 1.0], [0.25, -0.5]], dtype=np.float32)


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RuntimeServer]:
    aws_test_environment(monkeypatch)
    save_model(tmp_path / "fm", FmParameters(W0, W, V), {"predictor_type": "regressor"})
    with RuntimeServer() as server:
        server.add_endpoint("fm", tmp_path / "fm")
        server.add_endpoint("bt", blazingtext_model())
        yield server


def _client(server: RuntimeServer) -> Any:
    config = Config(retries={"mode": "standard", "total_max_attempts": 1})
    return boto3.client("sagemaker-runtime", endpoint_url=server.url, config=config)


def _invoke(
    server: RuntimeServer, endpoint: str, payload: Any, content_type: str = "application/json"
) -> Any:
    body = payload if isinstance(payload, bytes) else json.dumps(payload)
    response = _client(server).invoke_endpoint(EndpointName=endpoint, Body=body, ContentType=content_type)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert response["InvokedProductionVariant"] == "AllTraffic"
    return json.loads(response["Body"].read())


def _error(server: RuntimeServer, endpoint: str, payload: Any, content_type: str = "application/json") -> Any:
    with pytest.raises(ClientError) as raised:
        _invoke(server, endpoint, payload, content_type)
    return raised.value.response


def _instance(keys: list[int], values: list[float], dim: int = 5) -> dict[str, Any]:
    return {"data": {"features": {"keys": keys, "shape": [dim], "values": values}}}


def test_fm_scores_sparse_instances_with_the_fm_formula(server: RuntimeServer) -> None:
    answer = _invoke(
        server, "fm", {"instances": [_instance([0, 2, 4], [1, 1, 2.0]), _instance([1, 3], [1, 0.5])]}
    )

    # Row 1: w0 + w0 + w2 + 2 w4 + <v0,v2> + 2 <v0,v4> + 2 <v2,v4> = 1.5 + 0.5 + 1 + 0.25 + 0 + 0.5 - 2
    # Row 2: w0 + w1 + 0.5 w3 + 0.5 <v1,v3> = 1.5 - 0.25 + 0 + 0.5
    assert answer == {"predictions": [{"score": pytest.approx(1.75)}, {"score": pytest.approx(1.75)}]}
    assert server.received("fm")[-1]["instances"][1]["data"]["features"]["keys"] == [1, 3]


def test_fm_matches_the_dense_formula_on_random_rows() -> None:
    rng = np.random.default_rng(3)
    model = FmParameters(0.3, rng.normal(size=50), rng.normal(size=(50, 4)))
    rows = [sorted(rng.choice(50, size=int(rng.integers(1, 6)), replace=False).tolist()) for _ in range(20)]
    values = [rng.normal(size=len(r)).tolist() for r in rows]
    answer = FmPredictor(model).answer(
        {"instances": [_instance(r, v, 50) for r, v in zip(rows, values, strict=True)]}
    )
    for row, vals, prediction in zip(rows, values, answer["predictions"], strict=True):
        x = np.zeros(50)
        x[row] = vals
        dense = (
            0.3
            + model.w @ x
            + sum(
                (model.v[i] @ model.v[j]) * x[i] * x[j]
                for i in range(50)
                for j in range(i + 1, 50)
                if x[i] and x[j]
            )
        )
        assert prediction["score"] == pytest.approx(dense, abs=1e-9)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            {"instances": [_instance([2, 0, 4], [1, 1, 1])]},
            "instance 0: keys must be sorted in ascending order",
        ),
        ({"instances": [_instance([0, 1], [1, 1], dim=6)]}, "instance 0: shape [6] is not [5] (feature_dim)"),
        ({"instances": [_instance([0, 5], [1, 1])]}, "instance 0: keys must be integers in [0, 5)"),
        ({"instances": [_instance([0, 1], [1])]}, "instance 0: keys and values must be non-empty lists"),
        ({"rows": []}, 'expected {"instances": [...]}'),
        (b"{nope", "the body is not JSON"),
    ],
)
def test_fm_rejects_bad_input_as_a_model_error(server: RuntimeServer, payload: Any, message: str) -> None:
    response = _error(server, "fm", payload)
    assert response["Error"]["Code"] == "ModelError"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert response["OriginalStatusCode"] == 400
    assert response["OriginalMessage"].startswith(message)
    assert response["Error"]["Message"].startswith("Received client error (400) from primary with message")


def test_a_wrong_content_type_is_a_model_error(server: RuntimeServer) -> None:
    response = _error(server, "fm", b"1,2,3", content_type="text/csv")
    assert (response["Error"]["Code"], response["OriginalStatusCode"]) == ("ModelError", 415)


def test_blazingtext_gives_vocabulary_and_subword_vectors(server: RuntimeServer) -> None:
    answer = _invoke(server, "bt", {"instances": ["sherlock-season-1", "sherlock-season-5"]})

    assert [a["word"] for a in answer] == ["sherlock-season-1", "sherlock-season-5"]
    assert answer[0]["vector"] == pytest.approx(word_vector("sherlock-season-1").tolist(), abs=1e-6)
    unseen = np.array(answer[1]["vector"])
    assert unseen == pytest.approx(word_vector("sherlock-season-5"), abs=1e-6)
    assert np.linalg.norm(unseen) > 0  # built from the subwords it shares with known titles
    response = _error(server, "bt", {"instances": "sherlock"})
    assert response["OriginalMessage"] == 'expected {"instances": ["word", ...]} with at least one word'


def test_unknown_endpoints_are_a_validation_error_as_on_aws(server: RuntimeServer) -> None:
    response = _error(server, "nope", {"instances": ["x"]})
    assert response["Error"]["Code"] == "ValidationError"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["Error"]["Message"] == "Endpoint nope of account 000000000000 not found."


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (429, "ThrottlingException"),
        (500, "InternalFailure"),
        (503, "ServiceUnavailable"),
        (424, "ModelError"),
    ],
)
def test_injected_faults_fail_the_next_calls_then_the_model_answers(
    server: RuntimeServer, status: int, code: str
) -> None:
    server.inject_faults("bt", status, count=2)
    for _ in range(2):
        response = _error(server, "bt", {"instances": ["x"]})
        assert (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]) == (code, status)
    assert server.pending_faults("bt") == 0
    assert len(_invoke(server, "bt", {"instances": ["x"]})) == 1
    with pytest.raises(ValueError, match="no default error code for status 418"):
        server.inject_faults("bt", 418)


def test_a_model_is_swapped_while_serving(server: RuntimeServer, tmp_path: Path) -> None:
    payload = {"instances": [_instance([0], [1.0])]}
    assert _invoke(server, "fm", payload)["predictions"][0]["score"] == pytest.approx(2.0)
    server.add_endpoint("fm", FmParameters(10.0, np.ones(5), np.zeros((5, 2))))
    assert _invoke(server, "fm", payload)["predictions"][0]["score"] == pytest.approx(11.0)
    server.remove_endpoint("fm")
    assert _error(server, "fm", payload)["Error"]["Code"] == "ValidationError"


def test_stop_and_start_again_on_the_same_port(server: RuntimeServer) -> None:
    client = _client(server)
    port = server.port
    assert port > 0
    client.invoke_endpoint(
        EndpointName="bt", Body=json.dumps({"instances": ["a"]}), ContentType="application/json"
    )

    server.stop()
    with pytest.raises(EndpointConnectionError):
        client.invoke_endpoint(
            EndpointName="bt", Body=json.dumps({"instances": ["a"]}), ContentType="application/json"
        )
    server.start()

    assert server.port == port
    response = client.invoke_endpoint(
        EndpointName="bt", Body=b'{"instances": ["a"]}', ContentType="application/json"
    )
    assert len(json.loads(response["Body"].read())) == 1
    with pytest.raises(RuntimeError, match="already running"):
        server.start()


def test_folders_are_loaded_by_what_they_hold(tmp_path: Path) -> None:
    server = RuntimeServer()
    server.add_endpoint("bt", trained_blazingtext())
    assert server.endpoints() == ["bt"]
    with pytest.raises(FileNotFoundError, match=r"neither model\.tar\.gz"):
        server.add_endpoint("x", tmp_path)


def test_the_command_line_refuses_bad_endpoint_specs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["--endpoint", "fm"])
    assert "--endpoint 'fm': expected NAME=DIR" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--endpoint", f"fm={tmp_path}"])
    assert "neither model.tar.gz (FM) nor vectors.bin (BlazingText)" in capsys.readouterr().err
