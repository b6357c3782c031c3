"""The synthesized app, once per test session: synthesis takes seconds."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import assertions

from app import build_app
from stacks.config import cdk_json_context


def synth_template(**overrides: Any) -> assertions.Template:
    app = build_app({**cdk_json_context(), **overrides})
    stack = app.node.find_child("Loftrec")
    return assertions.Template.from_stack(stack)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def template() -> assertions.Template:
    return synth_template(raw_data_uri="s3://example-reviews/us/video/")
