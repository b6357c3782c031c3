"""Every role in the synthesized template may do what the system's calls need of it.

One case per (role, IAM action): every resource the action is needed on, for every call that needs it
(state machine tasks, recorded Lambda calls, what AWS does as the role). moto enforces no IAM, so this is
what stands between a green moto run and an AccessDenied in the account.

KNOWN_FINDINGS would hold missing permissions of the template, each marked strict xfail with the page that
requires it, so that fixing stacks/ turns the case into an XPASS, which fails until the entry is removed.
There are none: every case passes.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.tools.iam.world import Check, default_check, role_name
from tools.iam.template import iter_states

# (role logical id without its hash, action) -> why it is missing.
KNOWN_FINDINGS: dict[tuple[str, str], str] = {}
# Handlers that make no AWS call of their own: the only ones allowed to be missing from the recording.
NO_AWS_CALLS = {"lambdas.pipeline.start_run.handler"}


def _cases() -> list[Any]:
    check = default_check()
    pairs = sorted({(check.role_of(r), r.action) for r in check.requirements})
    cases = []
    for role, action in pairs:
        known = KNOWN_FINDINGS.get((role_name(role), action))
        marks = [pytest.mark.xfail(strict=True, reason=known)] if known else []
        cases.append(pytest.param(role, action, id=f"{role_name(role)}-{action}", marks=marks))
    return cases


CASES = _cases()


def _report(check: Check, role: str, action: str) -> str:
    lines = []
    for need in check.requirements:
        if check.role_of(need) != role or need.action != action:
            continue
        verdict = check.policies.explain(role, action, need.resource, need.context_map)
        if not verdict:
            lines.append(
                f"{role} may not {action} on {need.resource} ({verdict.decision.value}), needed by "
                f"{need.because}; {need.source}; request context {need.context_map}"
            )
    return "\n".join(lines)


@pytest.mark.parametrize(("role", "action"), CASES)
def test_the_role_may_do_what_the_calls_need(check: Check, role: str, action: str) -> None:
    report = _report(check, role, action)
    assert report == "", report


def test_every_role_is_looked_at(check: Check) -> None:
    looked_at = {check.role_of(need) for need in check.requirements}
    assert set(check.policies.roles) - looked_at == set()


def test_every_task_state_and_every_handler_makes_calls_the_check_sees(check: Check) -> None:
    machine = check.template.definition()
    tasks = {name for name, state in iter_states(machine) if state["Type"] == "Task"}
    checked = {i.origin.split("'")[1] for i in check.invocations if i.origin.startswith("state '")}
    assert tasks - checked == set()
    handlers = {b["Properties"]["Handler"] for b in check.template.of_type("AWS::Lambda::Function").values()}
    recorded = {i.origin.split(" ")[1] for i in check.invocations if i.origin.startswith("recorded: ")}
    assert handlers - recorded == NO_AWS_CALLS


def test_every_known_finding_is_a_case_of_the_check() -> None:
    ids = {(role_name(case.values[0]), case.values[1]) for case in CASES}
    assert set(KNOWN_FINDINGS) - ids == set()
