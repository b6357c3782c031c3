"""The stored inventory of the boto3 calls our Lambda handlers make (recorded_calls.json) is what the
recording harnesses saw in this session: tests/stacks/pipeline/test_state_machine.py (moto runs of the state
machine) and tests/lambdas (the serving shims) run before this file and record through
tests/tools/iam/harness.py.

`make iam-inventory` rewrites the file from a full run.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.tools.iam.harness import RECORDED_CALLS
from tools.iam import inventory
from tools.iam.recorder import RECORDER

UPDATE = os.environ.get("LOFTREC_IAM_INVENTORY") == "write"


def _whole_suite(config: pytest.Config) -> bool:
    """Whether every recording test was selected: the default test paths, no -k, -m or --lf."""
    options = config.option
    return (
        [str(arg) for arg in config.args] in ([], ["tests"])
        and not options.keyword
        and not options.markexpr
        and not getattr(options, "lf", False)
        and not getattr(options, "deselect", None)
    )


def test_the_stored_inventory_is_what_the_tests_recorded(request: pytest.FixtureRequest) -> None:
    recorded = RECORDER.normalized()
    if not recorded:
        pytest.skip(
            "no recording test ran in this session "
            "(tests/stacks/pipeline/test_state_machine.py, tests/lambdas)"
        )
    if UPDATE:
        RECORDED_CALLS.write_text(inventory.dump(recorded))
        return
    stored = inventory.load(RECORDED_CALLS)
    unknown = [entry for entry in recorded if entry not in stored]
    assert not unknown, (
        f"{len(unknown)} recorded call(s) missing from {RECORDED_CALLS.name}, first {unknown[0]}: the IAM "
        "check does not see them; run `make iam-inventory` and review the diff"
    )
    if _whole_suite(request.config):
        stale = [entry for entry in stored if entry not in recorded]
        assert not stale, (
            f"{len(stale)} stored call(s) no test made any more, first {stale[0]}: run `make iam-inventory`"
        )


def test_the_stored_inventory_is_sorted_and_deduplicated() -> None:
    stored = inventory.load(RECORDED_CALLS)
    assert inventory.dump(stored) == RECORDED_CALLS.read_text()
    keys = [json.dumps(entry, sort_keys=True) for entry in stored]
    assert keys == sorted(set(keys))
