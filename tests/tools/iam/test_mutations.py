"""The check catches a removed permission: mutants of the synthesized template, one per Allow statement's
action (removed) and resource (narrowed so that it matches nothing it matched), each evaluated against the
same calls. A mutant that takes away what some call needs must make the check fail, naming that action.

A mutant may survive only when the permission it removes is not what any call relies on: no call needs an
action it matches on a resource it covers (an unused grant: CDK's grants give more than the calls use), or
another statement allows every such call too.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.tools.iam.world import Check, default_check, default_document, role_name
from tools.iam.evaluate import Policies, ResourcePolicy, Statement, parse_document, wildcard_match
from tools.iam.required import Requirement
from tools.iam.template import Template

NARROWED = "-narrowed-by-a-mutant"


@dataclass(frozen=True)
class Mutant:
    name: str
    path: tuple[Any, ...]  # where the statement is in the document
    kind: str  # "action" or "resource"
    entry: Any  # the removed action or the narrowed resource (as written in the template)
    index: int  # its position in the statement's Action or Resource list

    def apply(self, document: dict[str, Any]) -> dict[str, Any]:
        mutated = copy.deepcopy(document)
        statements = mutated
        for key in self.path[:-1]:
            statements = statements[key]
        statement = statements[self.path[-1]]
        key = "Action" if self.kind == "action" else "Resource"
        items = statement[key] if isinstance(statement[key], list) else [statement[key]]
        if self.kind == "action":
            remaining = [item for position, item in enumerate(items) if position != self.index]
            if remaining:
                statement[key] = remaining
            else:
                del statements[self.path[-1]]
        else:
            items = list(items)
            items[self.index] = _narrow(items[self.index])
            statement[key] = items
        return mutated


def _narrow(resource: Any) -> Any:
    if resource == "*":
        return f"arn:aws:s3:::nothing{NARROWED}"
    return {"Fn::Join": ["", [resource, NARROWED]]}


def _policy_documents(document: dict[str, Any]) -> Iterator[tuple[str, tuple[Any, ...], dict[str, Any]]]:
    """(policy name, path to its Statement list, document) of every policy a role or key holds."""
    for logical_id, body in document["Resources"].items():
        properties = body.get("Properties", {})
        kind = body["Type"]
        if kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            yield (
                logical_id,
                ("Resources", logical_id, "Properties", "PolicyDocument"),
                properties["PolicyDocument"],
            )
        if kind == "AWS::IAM::Role":
            for index, inline in enumerate(properties.get("Policies", [])):
                path = ("Resources", logical_id, "Properties", "Policies", index, "PolicyDocument")
                yield f"{logical_id}/{inline.get('PolicyName', index)}", path, inline["PolicyDocument"]
        if kind == "AWS::KMS::Key":
            yield logical_id, ("Resources", logical_id, "Properties", "KeyPolicy"), properties["KeyPolicy"]


def mutants(document: dict[str, Any]) -> list[Mutant]:
    found = []
    for policy, path, policy_document in _policy_documents(document):
        statements = policy_document["Statement"]
        for number, statement in enumerate(statements):
            if statement["Effect"] != "Allow" or "Action" not in statement or "Resource" not in statement:
                continue
            where = (*path, "Statement", number)
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            for index, action in enumerate(actions):
                found.append(
                    Mutant(f"{role_name(policy)}[{number}]-{action}", where, "action", action, index)
                )
            resources = (
                statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            )
            for index, resource in enumerate(resources):
                label = resource if isinstance(resource, str) else f"resource{index}"
                found.append(
                    Mutant(
                        f"{role_name(policy)}[{number}]-narrow-{label}", where, "resource", resource, index
                    )
                )
    return found


MUTANTS = mutants(default_document())


@functools.cache
def _baseline() -> frozenset[tuple[str, str, str]]:
    return frozenset(_key(r) for r in default_check().denied())


def _key(requirement: Requirement) -> tuple[str, str, str]:
    return requirement.principal, requirement.action, requirement.resource


def _statement(check: Check, mutant: Mutant) -> Statement:
    """The mutated statement as the evaluator reads it from the unmutated template."""
    raw: Any = default_document()
    for key in mutant.path:
        raw = raw[key]
    logical_id, number = mutant.path[1], mutant.path[-1]
    policy = logical_id if mutant.path[3] != "Policies" else f"{logical_id}/{_inline_name(mutant)}"
    statements = parse_document(
        check.template.resolve({"Statement": [raw]}), policy, resource_policy="Principal" in raw
    )
    return dataclasses.replace(statements[0], source=f"{policy}[{number}]")


def _inline_name(mutant: Mutant) -> str:
    inline = default_document()["Resources"][mutant.path[1]]["Properties"]["Policies"][mutant.path[4]]
    return str(inline.get("PolicyName", mutant.path[4]))


def _relied_on(check: Check, mutant: Mutant, statement: Statement) -> list[Requirement]:
    """The allowed calls whose permission this statement gives and the mutant takes away."""
    template = check.template
    taken = Statement(
        effect="Allow",
        actions=(mutant.entry,) if mutant.kind == "action" else statement.actions,
        resources=statement.resources if mutant.kind == "action" else (str(template.resolve(mutant.entry)),),
        source=statement.source,
        conditions=statement.conditions,
    )
    holders = {
        role
        for role, items in check.policies.identity.items()
        if statement.source in {s.source for s in items}
    }
    if not holders:  # a key policy statement: it may serve any role
        holders = set(check.policies.roles)
    return [
        need
        for need in check.requirements
        if check.role_of(need) in holders
        and _key(need) not in _baseline()
        and taken.applies(need.action, need.resource, need.context_map)
    ]


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_a_removed_permission_fails_the_check(check: Check, mutant: Mutant) -> None:
    mutated = Policies.from_template(Template(mutant.apply(default_document())))
    relied_on = _relied_on(check, mutant, _statement(check, mutant))
    affected = {need.principal for need in relied_on}
    new = [
        need
        for need in check.requirements
        if need.principal in affected
        and _key(need) not in _baseline()
        and not mutated.is_allowed(
            mutated.role_for_arn(need.principal), need.action, need.resource, need.context_map
        )
    ]
    # Every call the check now fails is one the removed permission served, and it names that action.
    assert {_key(n) for n in new} <= {_key(r) for r in relied_on}
    if mutant.kind == "action":
        assert all(wildcard_match(mutant.entry, n.action, ignore_case=True) for n in new), new
    # A call this statement alone allows (dropping the whole statement denies it): the check must now fail it.
    without = _without(check.policies, _statement(check, mutant).source)
    alone = [
        need
        for need in relied_on
        if not without.is_allowed(check.role_of(need), need.action, need.resource, need.context_map)
    ]
    assert {_key(n) for n in alone} <= {_key(n) for n in new}, f"the check missed {alone[:1]}"


def _without(policies: Policies, source: str) -> Policies:
    """The template's policies with one statement dropped."""
    return Policies(
        template=policies.template,
        roles=policies.roles,
        identity={
            role: [s for s in items if s.source != source] for role, items in policies.identity.items()
        },
        resource_policies=[
            ResourcePolicy(p.governs, [s for s in p.statements if s.source != source], p.kind)
            for p in policies.resource_policies
        ],
    )


def test_mutants_cover_every_policy_and_kill_the_permissions_calls_need(check: Check) -> None:
    # Hand-picked permissions the system cannot run without: removing any one must fail the check.
    names = {m.name for m in MUTANTS}
    must_fail = {
        "lambda:InvokeFunction",
        "sagemaker:CreateTrainingJob",
        "iam:PassRole",
        "sns:Publish",
        "sagemaker:InvokeEndpoint",
        "sagemaker:DescribeTrainingJob",
        "application-autoscaling:RegisterScalableTarget",
        "kms:*",
        "states:StartExecution",
    }
    picked = [m for m in MUTANTS if m.kind == "action" and m.entry in must_fail]
    assert {m.entry for m in picked} == must_fail
    for mutant in picked:
        mutated = Policies.from_template(Template(mutant.apply(default_document())))
        failing = check.denied(mutated)
        assert any(wildcard_match(mutant.entry, f.action, ignore_case=True) for f in failing), mutant.name
    assert len(names) == len(MUTANTS)
