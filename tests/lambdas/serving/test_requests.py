"""Bad requests (400 naming the field), configuration at cold start, unexpected errors, structured logs."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lambdas.kit.errors import ConfigError
from lambdas.kit.settings import load
from lambdas.serving.config import ServingConfig
from lambdas.serving.parsing import MAX_NESTING
from tests.lambdas.serving.support import (
    World,
    answer,
    api_event,
    deployed_world,
    load_handlers,
    log_lines,
    uri,
)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with deployed_world(tmp_path, monkeypatch) as world:
        yield world


GOOD = {"customer_id": "C1", "product_id": "P-SH1"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "body: not valid JSON"),
        ("", "body: required: a JSON object"),
        ("[1, 2]", "body: must be a JSON object, got an array"),
        ('{"items": []}', "items: must not be empty (1 to 5 entries)"),
        (json.dumps({"items": [GOOD] * 6}), "items: too many entries: 6, at most 5"),
        ('{"items": {"customer_id": "C1"}}', "items: must be an array, got an object"),
        ("{}", "items: required"),
        (json.dumps({"items": [GOOD], "debug": True}), "debug: unknown field (allowed: items)"),
        (json.dumps({"items": ["C1"]}), "items[0]: must be a JSON object, got a string"),
        (json.dumps({"items": [{"product_id": "P"}]}), "items[0].customer_id: required"),
        (
            json.dumps({"items": [GOOD, {"customer_id": 17, "product_id": "P"}]}),
            "items[1].customer_id: must be a string, got a number",
        ),
        (
            json.dumps({"items": [{"customer_id": "C1", "product_id": "   "}]}),
            "items[0].product_id: must not be empty",
        ),
        (
            json.dumps({"items": [{"customer_id": "C" * 65, "product_id": "P"}]}),
            "items[0].customer_id: too long: 65 characters, at most 64",
        ),
        (
            json.dumps({"items": [GOOD | {"date": "2020-02-30"}]}),
            "items[0].date: not a valid date YYYY-MM-DD: '2020-02-30'",
        ),
        (
            json.dumps({"items": [GOOD | {"date": "20200101"}]}),
            "items[0].date: not a valid date YYYY-MM-DD: '20200101'",
        ),
        (
            json.dumps({"items": [GOOD | {"date": 20200101}]}),
            "items[0].date: must be a string YYYY-MM-DD, got a number",
        ),
        (
            json.dumps({"items": [GOOD | {"product_title": ["x"]}]}),
            "items[0].product_title: must be a string, got an array",
        ),
        (
            json.dumps({"items": [GOOD | {"product_title": "x" * 501}]}),
            "items[0].product_title: too long: 501 characters, at most 500",
        ),
        (
            json.dumps({"items": [GOOD | {"rating": 5}]}),
            "items[0].rating: unknown field (allowed: customer_id, product_id, date, product_title)",
        ),
    ],
)
def test_bad_predict_requests_get_a_400_naming_the_field(world: World, raw: str, message: str) -> None:
    status, body = answer(world.handlers.predict_handler(api_event(None, raw=raw), None))

    assert status == 400
    assert body["error"]["code"] == "bad_request"
    assert body["error"]["message"].startswith(message), body
    assert body["request_id"] == "req-1234"
    assert world.server.received(world.fm) == []


@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        ({"titles": []}, "titles: must not be empty"),
        ({"titles": "sherlock"}, "titles: must be an array, got a string"),
        ({"titles": ["ok", 3]}, "titles[1]: must be a string, got a number"),
        ({"titles": ["ok", " \t"]}, "titles[1]: must not be empty"),
        ({"titles": ["ok"], "k": 0}, "k: must be an integer from 1 to 5, got 0"),
        ({"titles": ["ok"], "k": 6}, "k: must be an integer from 1 to 5, got 6"),
        (
            {"titles": ["ok"], "k": 10**40},
            "k: must be an integer from 1 to 5, got 10000000000000000000... (41 digits)",
        ),
        ({"titles": ["ok"], "k": True}, "k: must be an integer from 1 to 5, got a boolean"),
        ({"titles": ["ok"], "k": 2.5}, "k: must be an integer from 1 to 5, got a number"),
        ({"titles": ["ok"], "limit": 2}, "limit: unknown field (allowed: titles, k)"),
    ],
)
def test_bad_similar_titles_requests_get_a_400_naming_the_field(
    world: World, request_body: dict[str, Any], message: str
) -> None:
    status, body = world.similar(request_body)
    assert status == 400
    assert body["error"]["message"].startswith(message), body


def test_base64_bodies_are_decoded_and_other_methods_refused(world: World) -> None:
    event = api_event(None, raw=base64.b64encode(json.dumps({"items": [GOOD]}).encode()).decode())
    event["isBase64Encoded"] = True
    status, body = answer(world.handlers.predict_handler(event, None))
    assert status == 200
    assert body["predictions"][0]["status"] == "known"

    event["body"] = "%%% not base64"
    status, body = answer(world.handlers.predict_handler(event, None))
    assert (status, body["error"]["message"]) == (
        400,
        "body: isBase64Encoded is set but the body is not base64",
    )

    event = api_event({"items": [GOOD]}) | {"httpMethod": "GET"}
    status, body = answer(world.handlers.predict_handler(event, None))
    assert status == 405


def test_unexpected_errors_are_a_500_with_the_request_id_and_the_traceback_only_in_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A record URI that is a folder: reading it fails in a way the shims do not expect.
    (tmp_path / "current.json").mkdir()
    handlers = load_handlers(monkeypatch, RUN_RECORD_URI=uri(tmp_path / "current.json"))
    capsys.readouterr()

    status, body = answer(handlers.predict_handler(api_event({"items": [GOOD]}), None))

    assert status == 500
    assert body == {
        "error": {"code": "internal_error", "message": "internal error (request id req-1234)"},
        "request_id": "req-1234",
    }
    logs = log_lines(capsys.readouterr().out)
    assert logs[0]["level"] == "ERROR"
    assert logs[0]["request_id"] == "req-1234"
    assert "IsADirectoryError" in logs[0]["traceback"]
    assert logs[1]["status"] == 500


def test_each_request_logs_one_json_line_with_route_latency_and_counts(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    world.predict(
        [GOOD, {"customer_id": "C9", "product_id": "P-SH2"}, {"customer_id": "C1", "product_id": "X"}]
    )
    world.similar({"titles": ["Sherlock Season 1"]})

    lines = log_lines(capsys.readouterr().out)
    requests = [line for line in lines if line["message"].startswith("POST ")]
    assert [r["route"] for r in requests] == ["POST /predictions", "POST /similar-titles"]
    predict = requests[0]
    assert predict["level"] == "INFO"
    assert predict["request_id"] == "req-1234"
    assert predict["status"] == 200
    assert predict["latency_ms"] > 0
    assert predict["counts"] == {
        "items": 3,
        "known": 1,
        "unknown_customer": 1,
        "cold_start": 0,
        "error": 1,
        "fm_rows": 2,
        "blazingtext_words": 0,
        "cold_start_customer_only": 0,
    }
    assert requests[1]["counts"] == {"titles": 1, "blazingtext_words": 0, "k": 5}


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"RUN_RECORD_URI": ""}, "RUN_RECORD_URI='' is not allowed"),
        ({"RUN_RECORD_URI": "https://bucket/x"}, "RUN_RECORD_URI='https://bucket/x' is not allowed"),
        ({"RUN_RECORD_URI": "s3://bucket"}, "RUN_RECORD_URI='s3://bucket' is not allowed"),
        ({"MAX_BATCH_SIZE": "ten"}, "MAX_BATCH_SIZE='ten' is not allowed: an integer from 1 to 1000"),
        ({"MAX_BATCH_SIZE": "0"}, "MAX_BATCH_SIZE='0' is not allowed"),
        ({"NEIGHBOURS": "101"}, "NEIGHBOURS='101' is not allowed: an integer from 1 to 100"),
        ({"MAX_SIMILAR": "-1"}, "MAX_SIMILAR='-1' is not allowed"),
        (
            {"RECORD_TTL_SECONDS": "61"},
            "RECORD_TTL_SECONDS='61' is not allowed: a number of seconds from 0 to 60",
        ),
        ({"RECORD_TTL_SECONDS": "soon"}, "RECORD_TTL_SECONDS='soon' is not allowed"),
        (
            {"SAGEMAKER_RUNTIME_ENDPOINT_URL": "localhost:8080"},
            "SAGEMAKER_RUNTIME_ENDPOINT_URL='localhost:8080'",
        ),
        (
            {"MAX_BATCH_SIZE": "1000", "NEIGHBOURS": "100"},
            "MAX_BATCH_SIZE=1000 with NEIGHBOURS=100 is not allowed",
        ),
    ],
)
def test_configuration_errors_name_the_variable(environ: dict[str, str], message: str) -> None:
    base = {"RUN_RECORD_URI": "s3://bucket/serving/current.json"} if "RUN_RECORD_URI" not in environ else {}
    with pytest.raises(ConfigError) as raised:
        load(ServingConfig, base | environ)
    assert str(raised.value).startswith(message)


def test_configuration_defaults_and_the_cold_start_check(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load(ServingConfig, {"RUN_RECORD_URI": "s3://bucket/serving/current.json"})
    assert (config.max_batch_size, config.neighbours, config.max_similar) == (100, 10, 50)
    assert config.record_ttl_seconds == 60.0
    assert config.sagemaker_runtime_endpoint_url is None
    with pytest.raises(ConfigError, match="NEIGHBOURS='many'"):
        load_handlers(monkeypatch, RUN_RECORD_URI="file:///tmp/current.json", NEIGHBOURS="many")


def _base64_event(data: bytes, *, path: str = "/predictions") -> dict[str, Any]:
    event = api_event(None, path=path, raw=base64.b64encode(data).decode())
    event["isBase64Encoded"] = True
    return event


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            '{"items": [{"customer_id": "C1", "product_id": "NEW", "product_title": "ab\\ud800cd"}]}',
            "items[0].product_title: not valid Unicode: a lone surrogate U+D800 at character 3 "
            "(text must be encodable as UTF-8)",
        ),
        (
            '{"items": [{"customer_id": "C\\udfff", "product_id": "P-SH1"}]}',
            "items[0].customer_id: not valid Unicode: a lone surrogate U+DFFF at character 2",
        ),
        (
            '{"items": [{"customer_id": "C1", "product_id": "\\ud83d"}]}',
            "items[0].product_id: not valid Unicode: a lone surrogate U+D83D at character 1",
        ),
    ],
)
def test_text_that_is_not_encodable_as_utf8_is_a_bad_request_before_any_model_call(
    world: World, raw: str, message: str
) -> None:
    status, body = answer(world.handlers.predict_handler(api_event(None, raw=raw), None))

    assert (status, body["error"]["code"]) == (400, "bad_request")
    assert body["error"]["message"].startswith(message), body
    assert world.server.received(world.fm) == []
    assert world.server.received(world.blazingtext) == []


def test_a_similar_titles_title_with_a_lone_surrogate_is_a_bad_request(world: World) -> None:
    event = api_event(None, path="/similar-titles", raw='{"titles": ["Sherlock", "ab\\ud800cd"]}')
    status, body = answer(world.handlers.similar_titles_handler(event, None))

    assert status == 400
    assert body["error"]["message"].startswith("titles[1]: not valid Unicode: a lone surrogate U+D800")
    assert world.server.received(world.blazingtext) == []


def test_a_pair_of_surrogates_written_as_escapes_is_one_character_and_fine(world: World) -> None:
    # "\ud83c\udfac" is JSON's escape of U+1F3AC (clapper board), one encodable character.
    event = api_event(None, path="/similar-titles", raw='{"titles": ["Sherlock \\ud83c\\udfac"]}')
    status, body = answer(world.handlers.similar_titles_handler(event, None))

    assert status == 200
    assert body["results"][0]["title"] == "Sherlock \U0001f3ac"


@pytest.mark.parametrize("raw", ["[" * 100_000, '{"items": ' + "[" * 100_000 + "]" * 100_000 + "}"])
def test_a_deeply_nested_body_is_a_bad_request(world: World, raw: str) -> None:
    status, body = answer(world.handlers.predict_handler(api_event(None, raw=raw), None))

    assert (status, body["error"]["code"]) == (400, "bad_request")
    assert body["error"]["message"] == "body: nested too deeply"
    assert world.server.received(world.fm) == []


def test_the_nesting_limit_counts_arrays_and_objects_not_brackets_in_strings(world: World) -> None:
    deepest = '{"items": ' + "[" * (MAX_NESTING - 1) + "]" * (MAX_NESTING - 1) + "}"
    too_deep = '{"items": ' + "[" * MAX_NESTING + "]" * MAX_NESTING + "}"
    _, body = answer(world.handlers.predict_handler(api_event(None, raw=deepest), None))
    assert body["error"]["message"] == "items[0]: must be a JSON object, got an array"
    _, body = answer(world.handlers.predict_handler(api_event(None, raw=too_deep), None))
    assert body["error"]["message"] == "body: nested too deeply"
    # A title of brackets, escaped quotes and backslashes is text: the request is answered.
    title = 'Brackets \\" [[[' + "[" * MAX_NESTING + "{" * MAX_NESTING
    raw = json.dumps({"titles": [title]})
    status, body = answer(
        world.handlers.similar_titles_handler(api_event(None, path="/similar-titles", raw=raw), None)
    )
    assert status == 200 and body["results"][0]["title"] == title


def test_nesting_that_json_reads_reaches_validation(world: World) -> None:
    raw = '{"items": [' + "[" * 50 + "]" * 50 + "]}"
    status, body = answer(world.handlers.predict_handler(api_event(None, raw=raw), None))

    assert status == 400
    assert body["error"]["message"] == "items[0]: must be a JSON object, got an array"


@pytest.mark.parametrize(
    ("customer_id", "product_id"),
    [(" C1", "P-SH1"), ("C1\t", " P-SH1 "), ("\u00a0C1\u3000", "P-SH1\u2028")],
)
def test_whitespace_around_an_id_is_not_part_of_it(world: World, customer_id: str, product_id: str) -> None:
    status, body = world.predict([{"customer_id": customer_id, "product_id": product_id}])

    assert status == 200
    (prediction,) = body["predictions"]
    assert (prediction["customer_id"], prediction["product_id"]) == ("C1", "P-SH1")
    assert prediction["status"] == "known"


@pytest.mark.parametrize("blank", ["", "   ", "\t\n", "\u3000\u00a0"])
def test_an_id_that_is_only_whitespace_is_empty(world: World, blank: str) -> None:
    status, body = world.predict([{"customer_id": "C1", "product_id": blank}])

    assert status == 400
    assert body["error"]["message"] == "items[0].product_id: must not be empty"


def test_an_id_is_at_most_64_characters_once_trimmed(world: World) -> None:
    status, body = world.predict([{"customer_id": "  " + "C" * 64 + " ", "product_id": "P-SH1"}])
    assert status == 200
    assert body["predictions"][0]["status"] == "unknown_customer"

    status, body = world.predict([{"customer_id": " " + "C" * 65, "product_id": "P-SH1"}])
    assert (status, body["error"]["message"]) == (
        400,
        "items[0].customer_id: too long: 65 characters, at most 64",
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            json.dumps({"items": [GOOD]}).encode("utf-16"),
            "body: not UTF-8: byte 0xff at position 0 (invalid start byte)",
        ),
        (
            json.dumps({"items": [GOOD]}).encode("utf-16-le"),
            "body: not UTF-8: a NUL byte at position 1 (UTF-16 or UTF-32 text?)",
        ),
        (
            json.dumps({"items": [GOOD]}).encode("utf-32-be"),
            "body: not UTF-8: a NUL byte at position 0 (UTF-16 or UTF-32 text?)",
        ),
        (
            b'{"items": [{"customer_id": "C\xe9", "product_id": "P"}]}',
            "body: not UTF-8: byte 0xe9 at position 29 (invalid continuation byte)",
        ),
        (  # a surrogate encoded as if it were a character (CESU-8): not UTF-8
            b'{"items": [{"customer_id": "C\xed\xa0\x80", "product_id": "P"}]}',
            "body: not UTF-8: byte 0xed at position 29 (invalid continuation byte)",
        ),
    ],
)
def test_a_base64_body_that_is_not_utf8_says_so(world: World, data: bytes, message: str) -> None:
    status, body = answer(world.handlers.predict_handler(_base64_event(data), None))

    assert (status, body["error"]["code"]) == (400, "bad_request")
    assert body["error"]["message"].startswith(message), body


def test_a_base64_body_may_start_with_a_byte_order_mark(world: World) -> None:
    data = b"\xef\xbb\xbf" + json.dumps({"items": [GOOD]}).encode()
    status, body = answer(world.handlers.predict_handler(_base64_event(data), None))
    assert status == 200
    assert body["predictions"][0]["status"] == "known"


@pytest.mark.parametrize(
    ("field", "shown"),
    [
        ("\ud800x", "'\\ud800x'"),
        ("", "''"),
        ("a\nb", "'a\\nb'"),
        ("z" * 41, "'" + "z" * 40 + "'..."),
        ("débit", "débit"),
    ],
)
def test_an_unknown_field_is_named_printably(
    world: World, field: str, shown: str, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = json.dumps({"items": [GOOD], field: 1})
    status, body = answer(world.handlers.predict_handler(api_event(None, raw=raw), None))

    assert (status, body["error"]["message"]) == (400, f"{shown}: unknown field (allowed: items)")
    (line,) = [line for line in log_lines(capsys.readouterr().out) if line["message"] == "POST /predictions"]
    assert line["error"] == body["error"]["message"]
