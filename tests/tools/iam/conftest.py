"""The IAM check of the synthesized template (the template tests/stacks synthesizes), once per session."""

from __future__ import annotations

import pytest

from tests.tools.iam.world import Check, default_check


@pytest.fixture(scope="session")
def check() -> Check:
    return default_check()
