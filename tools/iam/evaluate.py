"""IAM policy evaluation over a synthesized template: may this role do this action on this resource?

The decision follows the IAM policy evaluation logic for a principal and a resource in one account
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html): an explicit
Deny in any applicable policy wins; otherwise an Allow in the role's identity-based policies or in the
resource's policy (naming the role, or "*") allows. A resource policy that names the account root only
delegates to the account's identity-based policies.

KMS keys differ: no principal may use a key unless its key policy allows it. A key policy statement that
allows the account root ("arn:aws:iam::ACCOUNT:root") lets IAM policies grant access to the key
(https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html#key-policy-default-allow-root-enable-iam);
without it, only the principals the key policy names directly may use the key.

Supported: Action/NotAction, Resource/NotResource with `*` and `?` wildcards (actions case-insensitive),
Principal in resource policies, and the condition operators in CONDITION_OPERATORS with IfExists and the
ForAnyValue:/ForAllValues: set operators (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html).
Anything else (an unknown operator, NotPrincipal, a policy variable) raises UnsupportedPolicyError: the
evaluator never guesses an Allow.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .managed import managed_policy
from .template import Template

ContextValue = str | tuple[str, ...]
Context = Mapping[str, ContextValue]


class UnsupportedPolicyError(ValueError):
    """The policy uses something the evaluator does not model; the message names it and where it is."""


# ---------------------------------------------------------------------------------------------------------
# Wildcards


@functools.cache
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    if "${" in pattern:
        raise UnsupportedPolicyError(f"policy variable in {pattern!r}: not modelled")
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


@functools.lru_cache(maxsize=1 << 16)
def wildcard_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM's `*` (any run of characters, `/` and `:` included) and `?` (one character) matching."""
    if "*" not in pattern and "?" not in pattern and "${" not in pattern:
        return pattern.lower() == value.lower() if ignore_case else pattern == value
    return _wildcard(pattern, ignore_case).fullmatch(value) is not None


# ---------------------------------------------------------------------------------------------------------
# Conditions


def _as_strings(value: Any, where: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    result = []
    for item in items:
        if isinstance(item, bool):
            result.append("true" if item else "false")
        elif isinstance(item, str | int | float):
            result.append(str(item))
        else:
            raise UnsupportedPolicyError(
                f"{where}: condition value {item!r} is not a string, number or boolean"
            )
    return tuple(result)


def _string_equals(context: str, policy: str) -> bool:
    return context == policy


def _string_like(context: str, policy: str) -> bool:
    return wildcard_match(policy, context)


def _bool(context: str, policy: str) -> bool:
    return context.lower() == policy.lower()


# Operator -> (matches one context value against one policy value, negated). ArnEquals and ArnLike both
# take wildcards in IAM; ARNs compare case-sensitively.
CONDITION_OPERATORS: dict[str, tuple[Callable[[str, str], bool], bool]] = {
    "StringEquals": (_string_equals, False),
    "StringNotEquals": (_string_equals, True),
    "StringEqualsIgnoreCase": (lambda c, p: c.lower() == p.lower(), False),
    "StringNotEqualsIgnoreCase": (lambda c, p: c.lower() == p.lower(), True),
    "StringLike": (_string_like, False),
    "StringNotLike": (_string_like, True),
    "ArnEquals": (_string_like, False),
    "ArnLike": (_string_like, False),
    "ArnNotEquals": (_string_like, True),
    "ArnNotLike": (_string_like, True),
    "Bool": (_bool, False),
}


def _null(values: Sequence[str], present: bool, where: str) -> bool:
    if len(values) != 1 or values[0].lower() not in ("true", "false"):
        raise UnsupportedPolicyError(f"{where}: Null takes true or false, not {list(values)}")
    return (values[0].lower() == "true") != present


def condition_holds(
    operator: str, key: str, values: Sequence[str], context: Context, where: str = ""
) -> bool:
    """One operator/key pair of a Condition block against the request context.

    Values of one key are ORed (NORed for a negated operator). A key absent from the context makes the
    condition false, or true for a negated operator; ...IfExists makes it true; Null tests presence.
    """
    present = key in context
    raw = context.get(key)
    context_values: tuple[str, ...] = (raw,) if isinstance(raw, str) else tuple(raw or ())
    if operator == "Null":
        return _null(values, present, where)
    set_operator = ""
    for prefix in ("ForAnyValue:", "ForAllValues:"):
        if operator.startswith(prefix):
            set_operator, operator = prefix, operator.removeprefix(prefix)
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists")
    if base not in CONDITION_OPERATORS:
        raise UnsupportedPolicyError(
            f"{where}: condition operator {operator!r} is not modelled (known: "
            f"{', '.join(sorted(CONDITION_OPERATORS))}, Null, ...IfExists, ForAnyValue:, ForAllValues:)"
        )
    match, negated = CONDITION_OPERATORS[base]
    if not present:
        # ForAllValues: holds for no values at all; ForAnyValue: needs one.
        absent = {"ForAllValues:": True, "ForAnyValue:": False}
        return absent.get(set_operator, if_exists or negated)

    def one(value: str) -> bool:
        hit = any(match(value, policy) for policy in values)
        return not hit if negated else hit

    if set_operator == "ForAllValues:":
        return all(one(value) for value in context_values)
    if set_operator == "ForAnyValue:":
        return any(one(value) for value in context_values)
    if len(context_values) != 1:
        raise UnsupportedPolicyError(
            f"{where}: {key} has {len(context_values)} values in the request; use ForAnyValue:/ForAllValues:"
        )
    return one(context_values[0])


# ---------------------------------------------------------------------------------------------------------
# Statements


STATEMENT_ELEMENTS = {
    "Sid",
    "Effect",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
    "Principal",
}


def _validate(raw: Mapping[str, Any], source: str) -> None:
    unknown = set(raw) - STATEMENT_ELEMENTS
    if unknown:
        raise UnsupportedPolicyError(f"{source}: statement element(s) {sorted(unknown)} are not modelled")
    if raw.get("Effect") not in ("Allow", "Deny"):
        raise UnsupportedPolicyError(f"{source}: Effect {raw.get('Effect')!r} is neither Allow nor Deny")
    if ("Action" in raw) == ("NotAction" in raw):
        raise UnsupportedPolicyError(f"{source}: a statement needs exactly one of Action and NotAction")
    if ("Resource" in raw) == ("NotResource" in raw):
        raise UnsupportedPolicyError(f"{source}: a statement needs exactly one of Resource and NotResource")


def _principals(raw: Mapping[str, Any], source: str) -> tuple[tuple[str, str], ...]:
    principal = raw.get("Principal")
    if principal is None:
        raise UnsupportedPolicyError(f"{source}: a resource policy statement without Principal")
    if principal == "*":
        return (("AWS", "*"),)
    if isinstance(principal, dict):
        return tuple(
            (kind, value) for kind, items in principal.items() for value in _as_strings(items, source)
        )
    raise UnsupportedPolicyError(f"{source}: Principal {principal!r} is not modelled")


@dataclass(frozen=True)
class Statement:
    """One policy statement with its template expressions resolved."""

    effect: str  # "Allow" or "Deny"
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    source: str  # where it comes from, e.g. "PipelineGateFunctionServiceRoleDefaultPolicyCAF79E35[3]"
    not_action: bool = False
    not_resource: bool = False
    conditions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()  # (operator, key, values)
    principals: tuple[tuple[str, str], ...] | None = None  # (kind, value) in resource policies
    sid: str | None = None

    @classmethod
    def parse(cls, raw: Mapping[str, Any], source: str, *, resource_policy: bool = False) -> Statement:
        _validate(raw, source)
        actions = _as_strings(raw.get("Action", raw.get("NotAction")), source)
        resources = _as_strings(raw.get("Resource", raw.get("NotResource")), source)
        conditions: list[tuple[str, str, tuple[str, ...]]] = []
        for operator, block in (raw.get("Condition") or {}).items():
            if not isinstance(block, dict):
                raise UnsupportedPolicyError(f"{source}: condition {operator} is not an object")
            for key, values in block.items():
                conditions.append((operator, key, _as_strings(values, source)))
        principals = _principals(raw, source) if resource_policy else None
        if not resource_policy and "Principal" in raw:
            raise UnsupportedPolicyError(f"{source}: Principal in an identity-based policy")
        effect = str(raw["Effect"])
        return cls(
            effect=effect,
            actions=actions,
            resources=resources,
            source=source,
            not_action="NotAction" in raw,
            not_resource="NotResource" in raw,
            conditions=tuple(conditions),
            principals=principals,
            sid=raw.get("Sid"),
        )

    def matches_action(self, action: str) -> bool:
        hit = any(wildcard_match(pattern, action, ignore_case=True) for pattern in self.actions)
        return hit != self.not_action

    def matches_resource(self, resource: str) -> bool:
        hit = any(wildcard_match(pattern, resource) for pattern in self.resources)
        return hit != self.not_resource

    def conditions_hold(self, context: Context) -> bool:
        return all(
            condition_holds(operator, key, values, context, self.source)
            for operator, key, values in self.conditions
        )

    def applies(self, action: str, resource: str, context: Context) -> bool:
        return (
            self.matches_action(action) and self.matches_resource(resource) and self.conditions_hold(context)
        )

    def principal_grant(self, principal: str, account_root: str) -> str:
        """How this resource-policy statement names `principal`: "direct", "account" (the account root,
        which delegates to identity-based policies) or "" (it does not)."""
        for kind, value in self.principals or ():
            if kind != "AWS":
                continue  # Service and Federated principals are never one of our roles
            if value in ("*", principal):
                return "direct"
            if value in (account_root, account_root.split(":")[4]):  # a bare account id means its root
                return "account"
        return ""


def parse_document(document: Any, source: str, *, resource_policy: bool = False) -> list[Statement]:
    if not isinstance(document, dict) or "Statement" not in document:
        raise UnsupportedPolicyError(f"{source}: not a policy document with a Statement")
    raw = document["Statement"]
    items = raw if isinstance(raw, list) else [raw]
    return [
        Statement.parse(item, f"{source}[{index}]", resource_policy=resource_policy)
        for index, item in enumerate(items)
    ]


# ---------------------------------------------------------------------------------------------------------
# Decisions


class Decision(enum.Enum):
    ALLOWED = "allowed"
    IMPLICIT_DENY = "implicitly denied (no statement allows it)"
    EXPLICIT_DENY = "explicitly denied"
    KEY_POLICY_DENY = "not allowed by the KMS key policy"


@dataclass(frozen=True)
class Explanation:
    decision: Decision
    allowing: tuple[str, ...] = ()  # sources of the statements that allow
    denying: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.decision is Decision.ALLOWED


def _bucket_and_objects(bucket_arn: str) -> Callable[[str], bool]:
    def governs(resource: str) -> bool:
        return resource == bucket_arn or resource.startswith(bucket_arn + "/")

    return governs


@dataclass
class ResourcePolicy:
    """A resource-based policy and the resources it governs (a bucket and its objects, a key, a topic)."""

    governs: Callable[[str], bool]
    statements: list[Statement]
    kind: str  # "s3", "kms", "sns"


@dataclass
class Policies:
    """Every role's identity-based statements and every resource policy of a template."""

    template: Template
    roles: dict[str, str] = field(default_factory=dict)  # role logical id -> role ARN
    identity: dict[str, list[Statement]] = field(default_factory=dict)  # role logical id -> statements
    resource_policies: list[ResourcePolicy] = field(default_factory=list)

    @classmethod
    def from_template(cls, template: Template) -> Policies:
        policies = cls(template)
        for logical_id in template.of_type("AWS::IAM::Role"):
            policies.roles[logical_id] = template.arn(logical_id)
            policies.identity[logical_id] = list(policies._role_statements(logical_id))
        for logical_id, body in {
            **template.of_type("AWS::IAM::Policy"),
            **template.of_type("AWS::IAM::ManagedPolicy"),
        }.items():
            properties = body.get("Properties", {})
            statements = parse_document(template.resolve(properties.get("PolicyDocument")), logical_id)
            for role in properties.get("Roles", []):
                if not (isinstance(role, dict) and set(role) == {"Ref"}):
                    raise UnsupportedPolicyError(f"{logical_id}: attached to {role!r}, not a Ref to a role")
                if role["Ref"] not in policies.identity:
                    raise UnsupportedPolicyError(f"{logical_id}: attached to {role['Ref']}, not a role here")
                policies.identity[role["Ref"]].extend(statements)
            for attribute in ("Users", "Groups"):
                if properties.get(attribute):
                    raise UnsupportedPolicyError(f"{logical_id}: attached to {attribute}, not modelled")
        policies._resource_policies()
        return policies

    def _role_statements(self, logical_id: str) -> Iterable[Statement]:
        template = self.template
        properties = template.properties(logical_id)
        for index, inline in enumerate(properties.get("Policies", [])):
            name = inline.get("PolicyName", index)
            yield from parse_document(template.resolve(inline["PolicyDocument"]), f"{logical_id}/{name}")
        for arn in template.resolve(properties.get("ManagedPolicyArns", [])):
            if ":iam::aws:policy/" in arn:
                managed = managed_policy(arn)
                yield from parse_document(managed.document, f"{logical_id}/{managed.name}")
            else:
                yield from self._customer_managed(arn, logical_id)
        if properties.get("PermissionsBoundary"):
            raise UnsupportedPolicyError(f"{logical_id}: permissions boundaries are not modelled")

    def _customer_managed(self, arn: str, role: str) -> Iterable[Statement]:
        for logical_id, body in self.template.of_type("AWS::IAM::ManagedPolicy").items():
            name = body.get("Properties", {}).get("ManagedPolicyName", logical_id)
            if arn.endswith(f":policy/{name}") or arn == logical_id:
                document = self.template.resolve(body["Properties"]["PolicyDocument"])
                return parse_document(document, logical_id)
        raise UnsupportedPolicyError(
            f"{role}: managed policy {arn} is neither AWS-managed nor in the template"
        )

    def _resource_policies(self) -> None:
        template = self.template
        for logical_id, body in template.of_type("AWS::S3::BucketPolicy").items():
            properties = body["Properties"]
            bucket = template.resolve(properties["Bucket"])
            arn = f"arn:{template.env.partition}:s3:::{bucket}"
            self.resource_policies.append(
                ResourcePolicy(
                    governs=_bucket_and_objects(arn),
                    statements=parse_document(
                        template.resolve(properties["PolicyDocument"]), logical_id, resource_policy=True
                    ),
                    kind="s3",
                )
            )
        for logical_id, body in template.of_type("AWS::KMS::Key").items():
            arn = template.arn(logical_id)
            self.resource_policies.append(
                ResourcePolicy(
                    governs=frozenset({arn}).__contains__,
                    statements=parse_document(
                        template.resolve(body["Properties"]["KeyPolicy"]), logical_id, resource_policy=True
                    ),
                    kind="kms",
                )
            )
        for logical_id, body in template.of_type("AWS::SNS::TopicPolicy").items():
            properties = body["Properties"]
            topics = set(template.resolve(properties["Topics"]))
            self.resource_policies.append(
                ResourcePolicy(
                    governs=frozenset(topics).__contains__,
                    statements=parse_document(
                        template.resolve(properties["PolicyDocument"]), logical_id, resource_policy=True
                    ),
                    kind="sns",
                )
            )

    # ---- the decision

    def explain(self, role: str, action: str, resource: str, context: Context) -> Explanation:
        if role not in self.identity:
            raise ValueError(f"no role {role!r} in the template (roles: {', '.join(sorted(self.identity))})")
        principal = self.roles[role]
        root = self.template.env.account_root
        identity = [s for s in self.identity[role] if s.applies(action, resource, context)]
        denying = [s.source for s in identity if s.effect == "Deny"]
        identity_allows = [s.source for s in identity if s.effect == "Allow"]
        grants: dict[str, list[str]] = {"Deny": denying, "direct": [], "account": []}
        kms = False
        for policy in self.resource_policies:
            if policy.governs(resource):
                kms = kms or policy.kind == "kms"
                for statement in policy.statements:
                    grant = statement.principal_grant(principal, root)
                    if grant and statement.applies(action, resource, context):
                        grants["Deny" if statement.effect == "Deny" else grant].append(statement.source)
        return _verdict(denying, grants["direct"], grants["account"], identity_allows, kms=kms)

    def is_allowed(self, role: str, action: str, resource: str, context: Context) -> bool:
        return bool(self.explain(role, action, resource, context))

    def role_for_arn(self, arn: str) -> str:
        for logical_id, role_arn in self.roles.items():
            if role_arn == arn:
                return logical_id
        raise ValueError(f"no role with ARN {arn} in the template")


def _verdict(
    denying: list[str], direct: list[str], account: list[str], identity: list[str], *, kms: bool
) -> Explanation:
    """Deny wins; a resource policy naming the principal allows; for a KMS key the key policy must name the
    principal or delegate through the account root to an identity-based Allow; otherwise an identity-based
    Allow allows."""
    if denying:
        return Explanation(Decision.EXPLICIT_DENY, denying=tuple(denying))
    if direct:
        return Explanation(Decision.ALLOWED, allowing=tuple(direct))
    if kms and not account:
        return Explanation(Decision.KEY_POLICY_DENY)
    if identity:
        return Explanation(Decision.ALLOWED, allowing=tuple(account + identity))
    return Explanation(Decision.IMPLICIT_DENY)


def is_allowed(policies: Policies, role: str, action: str, resource_arn: str, context: Context) -> bool:
    """May `role` (a logical id) do `action` on `resource_arn` in the request `context`?"""
    return policies.is_allowed(role, action, resource_arn, context)
