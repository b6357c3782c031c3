"""Property-based tests of the shims' request handling, through the real handlers and a deployed run.

Whatever body an API Gateway proxy event carries (arbitrary JSON, wrong types, nested structures, long
strings, lone surrogates, whitespace, base64 or not, other encodings), the answer is a 200 or a 4xx whose JSON
error names the field; never a 500, a traceback, an ERROR log line, or an endpoint call with input the
parsers should have refused. A 4xx calls no endpoint at all.

Bounded for `make test`: each test draws at most MAX_EXAMPLES examples, derandomized (the same examples on
every run, no example database written), without Hypothesis' per-example deadline (an example that reaches
the models makes local HTTP calls).
"""

from __future__ import annotations

import base64
import json
import math
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.lambdas.serving.support import CUSTOMERS, FEATURE_DIM, PRODUCTS, World, deployed_world, log_lines

MAX_EXAMPLES = 400
SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    # The world is built once for the module and capsys is read and emptied in every example.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
MAX_BATCH_SIZE = 5  # deployed_world's
NEIGHBOURS = 3
ITEM_FIELDS = ("customer_id", "product_id", "date", "product_title")
ROUTES = {
    "predict_handler": "POST /predictions",
    "similar_titles_handler": "POST /similar-titles",
    "recommendations_handler": "POST /recommendations",
}

# ------------------------------------------------------------------------------------------- strategies

SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
WHITESPACE = st.sampled_from(" \t\n\r\x0b\x0c\x1c\x85\xa0\u1680\u2000\u2028\u2029\u202f\u3000")
# Any code point, surrogates included; short ASCII strings and whitespace more often than chance gives them.
CHARACTERS = st.one_of(st.characters(), SURROGATES, WHITESPACE, st.sampled_from(string.printable))
TEXT = st.one_of(
    st.text(CHARACTERS, max_size=12),
    st.text(
        CHARACTERS, min_size=60, max_size=600
    ),  # around the 64-character id and 500-character title limits
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(),  # NaN and the infinities too: json.dumps writes them and json.loads reads them back
    TEXT,
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=6), st.dictionaries(TEXT, inner, max_size=6)),
    max_leaves=30,
)


def padded(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Strings with whitespace around them, sometimes."""
    pad = st.text(WHITESPACE, max_size=3)
    return st.tuples(pad, values, pad).map("".join)


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`good` 19 times in 20, else `bad`: a request of several fields then passes validation often enough
    for the models to be called, and fails it anywhere."""
    return st.integers(0, 19).flatmap(lambda n: good if n else bad)


# Text without lone surrogates: anything else (control and format characters, any script).
PLAIN = st.characters(exclude_categories=["Cs"])
KNOWN_CUSTOMERS = st.sampled_from([c for c, _ in CUSTOMERS])
KNOWN_PRODUCTS = st.sampled_from([p for p, _ in PRODUCTS])
KNOWN_TITLES = st.sampled_from([t for _, t in PRODUCTS])
IDS = mostly(
    padded(st.one_of(KNOWN_CUSTOMERS, KNOWN_PRODUCTS, st.text(PLAIN, min_size=1, max_size=20))),
    st.one_of(padded(TEXT), JSON),
)
DATES = mostly(
    st.dates().map(lambda d: d.isoformat()),
    st.one_of(
        st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}\Z"),
        # Arabic-Indic digits (a regex's \d takes them), no zero padding, no such day, year 0
        st.sampled_from(
            ["\u0662\u0660\u0662\u0660-\u0660\u0661-\u0660\u0661", "2020-1-1", "2020-02-30", "0000-01-01"]
        ),
        TEXT,
        JSON,
    ),
)
TITLES = mostly(
    st.one_of(
        KNOWN_TITLES,
        KNOWN_TITLES.map(lambda t: f"{t} Part 2"),
        st.text(PLAIN, min_size=1, max_size=40),
        st.text(PLAIN, min_size=400, max_size=500),
    ),
    st.one_of(padded(TEXT), JSON),
)


@st.composite
def items(draw: st.DrawFn) -> dict[str, Any]:
    """A predict item: each field present or not, valid or not; sometimes a field of its own."""
    item: dict[str, Any] = {}
    for name, values, present in (
        ("customer_id", IDS, 19),
        ("product_id", IDS, 19),
        ("date", DATES, 10),
        ("product_title", TITLES, 10),
    ):
        if draw(st.integers(0, 19)) < present:
            item[name] = draw(values)
    if draw(st.integers(0, 19)) == 0:
        item[draw(TEXT)] = draw(JSON)
    return item


@st.composite
def predict_bodies(draw: st.DrawFn) -> Any:
    entries = mostly(st.lists(mostly(items(), JSON), min_size=1, max_size=MAX_BATCH_SIZE), st.lists(JSON))
    body: Any = {"items": draw(entries)}
    if draw(st.integers(0, 19)) == 0:
        body[draw(TEXT)] = draw(JSON)
    return draw(mostly(st.just(body), st.one_of(st.just(body["items"]), JSON)))


@st.composite
def recommendations_bodies(draw: st.DrawFn) -> Any:
    """A recommendations body: each field present or not, valid or not; sometimes a field of its own."""
    body: dict[str, Any] = {}
    for name, values, present in (
        ("customer_id", IDS, 19),
        ("k", mostly(st.integers(1, 100), st.one_of(st.integers(), JSON)), 10),
        ("exclude_reviewed", mostly(st.booleans(), JSON), 10),
        ("date", DATES, 10),
    ):
        if draw(st.integers(0, 19)) < present:
            body[name] = draw(values)
    if draw(st.integers(0, 19)) == 0:
        body[draw(TEXT)] = draw(JSON)
    return draw(mostly(st.just(body), JSON))


@st.composite
def similar_bodies(draw: st.DrawFn) -> Any:
    titles = mostly(st.lists(TITLES, min_size=1, max_size=MAX_BATCH_SIZE), st.one_of(st.lists(TEXT), JSON))
    body: Any = {"titles": draw(titles)}
    if draw(st.booleans()):
        body["k"] = draw(mostly(st.integers(1, MAX_BATCH_SIZE), st.one_of(st.integers(), JSON)))
    if draw(st.integers(0, 19)) == 0:
        body[draw(TEXT)] = draw(JSON)
    return draw(mostly(st.just(body), JSON))


OTHER_ENCODINGS = ["utf-16", "utf-16-be", "utf-32-le", "latin-1"]
Drawn = tuple[dict[str, Any], Any]
"""An event, and the JSON document its body holds when it holds one as UTF-8 JSON (else None)."""


@st.composite
def events(draw: st.DrawFn, bodies: st.SearchStrategy[Any]) -> Drawn:
    """An API Gateway REST proxy event with the body written as a client might: JSON text (escaped or not),
    base64 of its bytes in one of several encodings (a lone surrogate written as CESU-8 would write it),
    bytes that are no text, a deep nesting, or none."""
    document = draw(bodies)
    text = json.dumps(document, ensure_ascii=draw(st.booleans()))
    kind = draw(st.sampled_from(["text"] * 8 + ["base64"] * 4 + ["raw", "nested", "odd"]))
    base64_flag: Any = False
    decoded = document if kind == "text" else None
    if kind == "text":
        body: Any = text
    elif kind == "base64":
        encode = draw(mostly(st.sampled_from(["utf-8", "utf-8-sig"]), st.sampled_from(OTHER_ENCODINGS)))
        data = text.encode(encode, "replace" if encode == "latin-1" else "surrogatepass")
        body, base64_flag = base64.b64encode(data).decode(), True
        decoded = document if encode.startswith("utf-8") or text.isascii() else None
    elif kind == "raw":
        body, base64_flag = draw(st.sampled_from([(draw(TEXT), draw(st.booleans())), (draw(TEXT), True)]))
        if draw(st.booleans()):
            body, base64_flag = base64.b64encode(draw(st.binary(max_size=64))).decode(), True
    elif kind == "nested":
        depth = draw(st.integers(1, 200_000))
        opening = draw(st.sampled_from(["[", '{"a":', '{"items":[']))
        body = opening * depth
    else:
        body, base64_flag = draw(st.sampled_from([(None, False), (None, True), ("", False), ("  \n", True)]))
        if draw(st.booleans()):
            body, base64_flag = draw(JSON), draw(st.one_of(st.booleans(), JSON))
    proxy_event = {
        "resource": "/x",
        "path": "/x",
        "httpMethod": "POST",
        "headers": {"Content-Type": "application/json"},
        "requestContext": {"requestId": "req-prop", "stage": "v1"},
        "body": body,
        "isBase64Encoded": base64_flag,
    }
    return proxy_event, decoded


# ------------------------------------------------------------------------------------------- the world


@dataclass
class Recorder:
    """Stands in for the handlers' EndpointInvoker: records each call's payload, then makes it."""

    invoker: Any
    calls: list[tuple[str, Any]] = field(default_factory=list)

    def invoke(self, model: str, endpoint: str, payload: object) -> Any:
        self.calls.append((model, payload))
        return self.invoker.invoke(model, endpoint, payload)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("properties")
    with pytest.MonkeyPatch.context() as monkeypatch, deployed_world(root, monkeypatch) as world:
        monkeypatch.setattr(world.handlers, "ENDPOINTS", Recorder(world.handlers.ENDPOINTS))
        yield world


# ------------------------------------------------------------------------------------------- the checks


def _named(name: str) -> set[str]:
    """How an error message may name a field the request made up: as it is, or quoted and cut."""
    return {name, repr(name[:40]), repr(name[:40]) + "..."}


def field_paths(document: Any, batch: str | None) -> set[str]:
    """Every field an error message about `document` may name: the body, its fields, its entries and the
    fields of those."""
    paths = {"body", "k", *ITEM_FIELDS, "exclude_reviewed"} if batch is None else {"body", batch, "k"}
    if isinstance(document, dict):
        for key in document:
            paths |= _named(key)
        entries = document.get(batch) if batch is not None else None
        if isinstance(entries, list):
            for n, entry in enumerate(entries):
                paths.add(f"{batch}[{n}]")
                if isinstance(entry, dict):
                    for name in (*ITEM_FIELDS, *entry):
                        paths |= {f"{batch}[{n}].{shown}" for shown in _named(name)}
    return paths


def check_fm_call(payload: Any) -> None:
    instances = payload["instances"]
    assert 1 <= len(instances) <= MAX_BATCH_SIZE  # a cold start adds no FM row
    for instance in instances:
        features = instance["data"]["features"]
        keys, values = features["keys"], features["values"]
        assert features["shape"] == [FEATURE_DIM]
        assert keys == sorted(set(keys)) and all(0 <= k < FEATURE_DIM for k in keys)
        assert len(values) == len(keys) and all(math.isfinite(v) for v in values)


def check_blazingtext_call(payload: Any) -> None:
    words = payload["instances"]
    assert 1 <= len(words) <= MAX_BATCH_SIZE
    for word in words:
        assert isinstance(word, str) and word and len(word) <= 3 * 500
        word.encode("utf-8")  # raises on a lone surrogate
        assert not any(c.isspace() for c in word)


def check_answer(
    handlers: ModuleType,
    handler_name: str,
    drawn: Drawn,
    batch: str | None,
    capsys: pytest.CaptureFixture[str],
) -> tuple[int, dict[str, Any]]:
    """Call the handler with the event; check what every answer must be; return its status and body."""
    proxy_event, document = drawn
    recorder: Recorder = handlers.ENDPOINTS
    recorder.calls.clear()
    capsys.readouterr()

    response = getattr(handlers, handler_name)(proxy_event, None)

    out, err = capsys.readouterr()
    assert err == ""  # no traceback, no logging error
    logs = log_lines(out)
    assert {line["level"] for line in logs} == {"INFO"}  # no ERROR line (an unexpected exception), no WARNING
    assert [line["message"] for line in logs if line["message"].startswith("POST ")] == [ROUTES[handler_name]]
    assert response["headers"]["Content-Type"] == "application/json"
    status, body = response["statusCode"], json.loads(response["body"])
    event(f"status {status}" + (f", {len(recorder.calls)} endpoint calls" if status == 200 else ""))
    assert status == 200 or 400 <= status < 500, body
    if status != 200:
        assert recorder.calls == []
        assert body["error"]["code"] == "bad_request"
        field_name, _, problem = body["error"]["message"].partition(": ")
        assert problem, body
        assert field_name in field_paths(document, batch), body
    for model, payload in recorder.calls:
        (check_fm_call if model == "fm" else check_blazingtext_call)(payload)
    return status, body


# ------------------------------------------------------------------------------------------- the tests


@SETTINGS
@given(drawn=events(predict_bodies()))
def test_every_predict_request_is_a_200_or_a_4xx_naming_the_field(
    world: World, capsys: pytest.CaptureFixture[str], drawn: Drawn
) -> None:
    status, body = check_answer(world.handlers, "predict_handler", drawn, "items", capsys)
    if status == 200:
        sent = drawn[1]["items"]
        assert len(body["predictions"]) == len(sent)
        for item, prediction in zip(sent, body["predictions"], strict=True):
            assert prediction["customer_id"] == item["customer_id"].strip()
            assert prediction["product_id"] == item["product_id"].strip()
            assert prediction["status"] in ("known", "unknown_customer", "cold_start", "error")
            if prediction["status"] != "error":
                assert 1.0 <= prediction["rating"] <= 5.0
            if prediction["status"] == "cold_start":
                assert prediction["answered_from"] in ("title_neighbours", "customer_only")
                assert len(prediction["neighbours"]) <= NEIGHBOURS
                assert (prediction["similarity_mass"] > 0) is (
                    prediction["answered_from"] == "title_neighbours"
                )


@SETTINGS
@given(drawn=events(similar_bodies()))
def test_every_similar_titles_request_is_a_200_or_a_4xx_naming_the_field(
    world: World, capsys: pytest.CaptureFixture[str], drawn: Drawn
) -> None:
    status, body = check_answer(world.handlers, "similar_titles_handler", drawn, "titles", capsys)
    if status == 200:
        request = drawn[1]
        assert [r["title"] for r in body["results"]] == request["titles"]
        for result in body["results"]:
            assert len(result["similar"]) <= request.get("k", MAX_BATCH_SIZE)


@SETTINGS
@given(drawn=events(recommendations_bodies()))
def test_every_recommendations_request_is_a_200_or_a_4xx_naming_the_field(
    world: World, capsys: pytest.CaptureFixture[str], drawn: Drawn
) -> None:
    status, body = check_answer(world.handlers, "recommendations_handler", drawn, None, capsys)
    assert world.handlers.ENDPOINTS.calls == []  # top-N is answered from the factors
    if status == 200:
        request = drawn[1]
        assert body["customer_id"] == request["customer_id"].strip()
        assert body["fallback"] is (request["customer_id"].strip() not in {c for c, _ in CUSTOMERS})
        listed = body["recommendations"]
        assert 1 <= len(listed) <= (request.get("k") or 10)
        assert len({r["product_id"] for r in listed}) == len(listed)
        assert all(1.0 <= r["rating"] <= 5.0 and math.isfinite(r["score"]) for r in listed)


@SETTINGS
@given(customer=padded(KNOWN_CUSTOMERS), product=padded(KNOWN_PRODUCTS))
def test_an_id_with_whitespace_around_it_is_the_id(world: World, customer: str, product: str) -> None:
    padded_answer = world.predict([{"customer_id": customer, "product_id": product, "date": "2015-01-01"}])
    bare = world.predict(
        [{"customer_id": customer.strip(), "product_id": product.strip(), "date": "2015-01-01"}]
    )
    assert padded_answer == bare
    assert padded_answer[1]["predictions"][0]["status"] == "known"
