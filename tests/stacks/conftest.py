"""The synthesized app, once per test session: synthesis takes seconds."""

from __future__ import annotations

import pytest
from aws_cdk import assertions

from tests.synthesized import default_template, synth_template

__all__ = ["synth_template"]


@pytest.fixture(scope="session")
def template() -> assertions.Template:
    # Shared with tests/tools/iam, which checks the same template's IAM.
    return default_template()
