"""Settings from the environment: one line naming the variable, its value and what is allowed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from lambdas.kit.errors import ConfigError, LoftrecError
from lambdas.kit.settings import (
    http_url_or_unset,
    integer,
    json_object,
    load,
    non_empty,
    number,
    storage_uri,
    variable,
)


@dataclass(frozen=True)
class Example:
    record: str = variable("RECORD_URI", storage_uri("the record"))
    batch: int = variable("BATCH", integer(1, 10), default="5")
    ratio: float = variable("RATIO", number(0, 1), default="0.25")
    ttl: float = variable("TTL", number(0, 60, of="seconds"), default="60")
    url: str | None = variable("URL", http_url_or_unset(), default="")
    defaults: dict[str, Any] = variable("DEFAULTS", json_object("the defaults"), default="{}")
    bucket: str = variable("BUCKET", non_empty("a bucket name"), default="data")


BASE = {"RECORD_URI": "s3://bucket/serving/current.json"}


def test_defaults_apply_to_unset_variables_and_set_ones_are_parsed() -> None:
    assert load(Example, BASE) == Example(
        record="s3://bucket/serving/current.json",
        batch=5,
        ratio=0.25,
        ttl=60.0,
        url=None,
        defaults={},
        bucket="data",
    )
    settings = load(
        Example,
        {
            "RECORD_URI": " file:///srv/run/current.json ",  # surrounding blanks are not part of the value
            "BATCH": "10",
            "RATIO": "1",
            "TTL": "0",
            "URL": "http://127.0.0.1:8080",
            "DEFAULTS": '{"epochs": 3}',
            "BUCKET": "loftrec-data",
        },
    )
    assert settings.record == "file:///srv/run/current.json"
    assert (settings.batch, settings.ratio, settings.ttl) == (10, 1.0, 0.0)
    assert settings.url == "http://127.0.0.1:8080"
    assert settings.defaults == {"epochs": 3}
    assert settings.bucket == "loftrec-data"


def test_a_missing_required_variable_is_named_with_what_is_required() -> None:
    with pytest.raises(ConfigError) as raised:
        load(Example, {})
    assert str(raised.value) == (
        "RECORD_URI is not set: the record's s3://bucket/key or file:///absolute/path is required"
    )
    assert isinstance(raised.value, LoftrecError)
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "RECORD_URI",
            "s3://bucket",
            "RECORD_URI='s3://bucket' is not allowed: the record's s3://bucket/key",
        ),
        ("RECORD_URI", "s3://bucket/folder/", "RECORD_URI='s3://bucket/folder/' is not allowed"),
        ("RECORD_URI", "file://relative/x.json", "RECORD_URI='file://relative/x.json' is not allowed"),
        ("RECORD_URI", "file:///srv/run/", "RECORD_URI='file:///srv/run/' is not allowed"),
        ("RECORD_URI", "https://bucket/x", "RECORD_URI='https://bucket/x' is not allowed"),
        ("BATCH", "ten", "BATCH='ten' is not allowed: an integer from 1 to 10"),
        ("BATCH", "11", "BATCH='11' is not allowed: an integer from 1 to 10"),
        ("BATCH", "2.5", "BATCH='2.5' is not allowed: an integer from 1 to 10"),
        ("RATIO", "1.5", "RATIO='1.5' is not allowed: a number from 0 to 1"),
        ("RATIO", "nan", "RATIO='nan' is not allowed: a number from 0 to 1"),
        ("TTL", "soon", "TTL='soon' is not allowed: a number of seconds from 0 to 60"),
        (
            "URL",
            "localhost:8080",
            "URL='localhost:8080' is not allowed: an http:// or https:// URL, or unset",
        ),
        ("DEFAULTS", "[1, 2]", "DEFAULTS='[1, 2]' is not allowed: the defaults as a JSON object"),
        ("DEFAULTS", "{epochs: 3}", "DEFAULTS='{epochs: 3}' is not allowed: the defaults as a JSON object"),
        ("BUCKET", "  ", "BUCKET='  ' is not allowed: a bucket name (not empty)"),
    ],
)
def test_a_malformed_variable_is_one_line_with_its_value_and_what_is_allowed(
    name: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load(Example, BASE | {name: value})
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_a_settings_field_without_a_variable_is_a_programming_error() -> None:
    @dataclass(frozen=True)
    class Unnamed:
        batch: int = field(default=3)

    with pytest.raises(TypeError, match=r"Unnamed\.batch names no environment variable"):
        load(Unnamed, {})
