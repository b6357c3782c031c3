"""The synthesized app, once per test session, shared by every test directory: synthesis takes seconds."""

from __future__ import annotations

import functools
from typing import Any

from aws_cdk import assertions

from app import build_app
from stacks.config import cdk_json_context

# The raw-data prefix the tests deploy with (a deployment needs one).
RAW_DATA_URI = "s3://example-reviews/us/video/"


def synth_template(**overrides: Any) -> assertions.Template:
    app = build_app({**cdk_json_context(), **overrides})
    stack = app.node.find_child("Loftrec")
    return assertions.Template.from_stack(stack)  # type: ignore[arg-type]


@functools.cache
def default_template() -> assertions.Template:
    """The stack as the tests deploy it, synthesized once."""
    return synth_template(raw_data_uri=RAW_DATA_URI)
