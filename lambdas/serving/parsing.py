"""The API's request bodies, checked: each call's body in, typed values out, or a RequestError that names the
field (a JSON path such as items[2].date, or body) and the problem.

Ids follow contract.index.normalize_id (whitespace around an id is not part of it); text must be encodable as
UTF-8; dates are YYYY-MM-DD; unknown fields are refused.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from contract.index import normalize_id
from lambdas.kit.errors import RequestError

MAX_ID_CHARS = 64
MAX_TITLE_CHARS = 500
DEFAULT_SIMILAR = 10
MAX_RECOMMENDATIONS = 100
DEFAULT_RECOMMENDATIONS = 10
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")
_BODY = "body"
MAX_NESTING = 100
"""Arrays and objects inside each other a body may open: far more than any request of the API (3), and far
below the interpreter's recursion limit, which json.loads would otherwise run into. Near that limit there is
no stack left for anything else, such as a finalizer the garbage collector runs meanwhile."""
_JSON_STRUCTURE = re.compile(r'["\\\[\]{}]')


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


@dataclass(frozen=True)
class RecommendationsRequest:
    customer_id: str
    k: int
    exclude_reviewed: bool
    date: dt.date


def _utf8(raw: bytes) -> str:
    """A body's bytes as text: UTF-8, the only encoding JSON may be exchanged in (RFC 8259, section 8.1), a
    leading byte order mark ignored as the RFC allows. UTF-16 and UTF-32 text is refused by its NUL bytes,
    which UTF-8 JSON cannot hold."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problem = f"byte 0x{raw[exc.start]:02x} at position {exc.start} ({exc.reason})"
        raise RequestError(_BODY, f"not UTF-8: {problem}") from None
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise RequestError(_BODY, f"not UTF-8: a NUL byte at position {nul} (UTF-16 or UTF-32 text?)")
    return text


def parse_json_body(raw: str | bytes | None) -> object:
    """The request body (the event's text, or the bytes of a base64 body) as JSON."""
    text = _utf8(raw) if isinstance(raw, bytes) else raw
    if text is None or not text.strip():
        raise RequestError(_BODY, "required: a JSON object")
    if _too_deep(text, MAX_NESTING):
        raise RequestError(_BODY, "nested too deeply")
    try:
        return json.loads(text)
    except RecursionError:
        raise RequestError(_BODY, "nested too deeply") from None
    except ValueError as exc:
        raise RequestError(_BODY, f"not valid JSON ({exc})") from None


def _too_deep(text: str, limit: int) -> bool:
    """Whether the text opens more than `limit` arrays or objects inside each other, brackets inside strings
    not counted: a scan of its quotes, backslashes and brackets, only when it holds more than `limit`."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    in_string = False
    escaped_at = -1  # the position right after a backslash in a string: that character is escaped
    for match in _JSON_STRUCTURE.finditer(text):
        ch, at = match.group(), match.start()
        if in_string:
            if at == escaped_at:
                continue
            if ch == "\\":
                escaped_at = at + 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def json_kind(value: object) -> str:
    """What a JSON value is, as an error message says it."""
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


def _path(where: str, name: str) -> str:
    """A field's JSON path: a field of the body is named alone (k), one of an entry after it (items[0].k)."""
    return name if where == _BODY else f"{where}.{name}"


def _shown(name: str) -> str:
    """A field name the request made up, as an error message shows it: as it is when it is short and
    printable, else quoted with its escapes (a lone surrogate, a control character), at most 40 characters."""
    if name and len(name) <= 40 and name.isprintable():
        return name
    return repr(name[:40]) + ("..." if len(name) > 40 else "")


def _object(value: object, where: str, allowed: Sequence[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RequestError(where, f"must be a JSON object, got {json_kind(value)}")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise RequestError(_path(where, _shown(unknown[0])), f"unknown field (allowed: {', '.join(allowed)})")
    return value


def _text(value: object, path: str) -> str:
    """A string that UTF-8 can encode: JSON's \\ud800 escapes let a request spell a lone surrogate, which no
    model, index or log line can take."""
    if not isinstance(value, str):
        raise RequestError(path, f"must be a string, got {json_kind(value)}")
    surrogate = _SURROGATE.search(value)
    if surrogate is not None:
        problem = f"a lone surrogate U+{ord(surrogate.group()):04X} at character {surrogate.start() + 1}"
        raise RequestError(path, f"not valid Unicode: {problem} (text must be encodable as UTF-8)")
    return value


def _identifier(fields: Mapping[str, Any], name: str, where: str) -> str:
    """A customer or product id, without the whitespace around it (contract.index.normalize_id)."""
    path = _path(where, name)
    if name not in fields:
        raise RequestError(path, "required")
    value = normalize_id(_text(fields[name], path))
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
        raise RequestError(path, f"must be a string YYYY-MM-DD, got {json_kind(value)}")
    if _DATE.fullmatch(value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise RequestError(path, f"not a valid date YYYY-MM-DD: {value[:40]!r}")


def _optional_date(fields: Mapping[str, Any], where: str, today: dt.date) -> dt.date:
    """A "date" field; absent or null: today (UTC, the handler's)."""
    value = fields.get("date")
    return today if value is None else _date(value, _path(where, "date"))


def _count(fields: Mapping[str, Any], name: str, *, maximum: int, default: int) -> int:
    """An integer field from 1 to maximum; absent or null: default."""
    value = fields.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(name, f"must be an integer from 1 to {maximum}, got {json_kind(value)}")
    if not 1 <= value <= maximum:
        digits = str(value)
        shown = digits if len(digits) <= 20 else f"{digits[:20]}... ({len(digits)} digits)"
        raise RequestError(name, f"must be an integer from 1 to {maximum}, got {shown}")
    return value


def _flag(fields: Mapping[str, Any], name: str, *, default: bool) -> bool:
    """A boolean field; absent or null: default."""
    value = fields.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise RequestError(name, f"must be true or false, got {json_kind(value)}")
    return value


def _batch(body: Mapping[str, Any], name: str, max_size: int) -> list[Any]:
    if name not in body:
        raise RequestError(name, "required")
    batch = body[name]
    if not isinstance(batch, list):
        raise RequestError(name, f"must be an array, got {json_kind(batch)}")
    if not batch:
        raise RequestError(name, f"must not be empty (1 to {max_size} entries)")
    if len(batch) > max_size:
        raise RequestError(name, f"too many entries: {len(batch)}, at most {max_size}")
    return batch


def parse_predict_request(body: object, *, max_batch_size: int, today: dt.date) -> list[PredictItem]:
    """{"items": [{customer_id, product_id, date?, product_title?}, ...]} -> items; RequestError if bad."""
    request = _object(body, _BODY, ("items",))
    items: list[PredictItem] = []
    for n, raw in enumerate(_batch(request, "items", max_batch_size)):
        where = f"items[{n}]"
        item = _object(raw, where, ("customer_id", "product_id", "date", "product_title"))
        title = item.get("product_title")
        items.append(
            PredictItem(
                customer_id=_identifier(item, "customer_id", where),
                product_id=_identifier(item, "product_id", where),
                date=_optional_date(item, where, today),
                product_title=None if title is None else _title(title, f"{where}.product_title"),
            )
        )
    return items


def parse_similar_request(body: object, *, max_titles: int, max_similar: int) -> SimilarRequest:
    """{"titles": [str, ...], "k"?: int} -> SimilarRequest; RequestError if bad."""
    request = _object(body, _BODY, ("titles", "k"))
    titles = [_title(t, f"titles[{n}]") for n, t in enumerate(_batch(request, "titles", max_titles))]
    k = _count(request, "k", maximum=max_similar, default=min(DEFAULT_SIMILAR, max_similar))
    return SimilarRequest(titles=titles, k=k)


def parse_recommendations_request(body: object, *, today: dt.date) -> RecommendationsRequest:
    """{"customer_id", "k"? (1..100, default 10), "exclude_reviewed"? (default true), "date"?} ->
    RecommendationsRequest; RequestError if bad."""
    request = _object(body, _BODY, ("customer_id", "k", "exclude_reviewed", "date"))
    return RecommendationsRequest(
        customer_id=_identifier(request, "customer_id", _BODY),
        k=_count(request, "k", maximum=MAX_RECOMMENDATIONS, default=DEFAULT_RECOMMENDATIONS),
        exclude_reviewed=_flag(request, "exclude_reviewed", default=True),
        date=_optional_date(request, _BODY, today),
    )
