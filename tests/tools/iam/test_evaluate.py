"""IAM's evaluation logic on hand-made templates, the expected answers written out."""

from __future__ import annotations

from typing import Any

import pytest

from tools.iam.evaluate import Decision, Policies, UnsupportedPolicyError, condition_holds, wildcard_match
from tools.iam.template import Template

ROOT = "arn:aws:iam::123456789012:root"
TLS = {"aws:SecureTransport": "true"}


def _policies(*statements: dict[str, Any], resources: dict[str, Any] | None = None) -> Policies:
    document = {
        "Resources": {
            "Role": {"Type": "AWS::IAM::Role", "Properties": {}},
            "Other": {"Type": "AWS::IAM::Role", "Properties": {}},
            "RolePolicy": {
                "Type": "AWS::IAM::Policy",
                "Properties": {
                    "PolicyDocument": {"Version": "2012-10-17", "Statement": list(statements)},
                    "Roles": [{"Ref": "Role"}],
                },
            },
            **(resources or {}),
        }
    }
    return Policies.from_template(Template(document))


def test_wildcards_span_any_characters_and_actions_ignore_case() -> None:
    assert wildcard_match("arn:aws:s3:::b/runs/*/gate.json", "arn:aws:s3:::b/runs/r1/x/gate.json")
    assert wildcard_match("s3:Get*", "s3:getobject", ignore_case=True)
    assert not wildcard_match("s3:Get*", "s3:getobject")
    assert wildcard_match("loftrec-?", "loftrec-a")
    assert not wildcard_match("loftrec-?", "loftrec-ab")
    assert not wildcard_match("arn:aws:s3:::b", "arn:aws:s3:::b/key")
    with pytest.raises(UnsupportedPolicyError, match="policy variable"):
        wildcard_match("arn:aws:s3:::b/${aws:username}/*", "arn:aws:s3:::b/x/y")


def test_allow_needs_action_and_resource_to_match() -> None:
    policies = _policies(
        {"Effect": "Allow", "Action": ["s3:GetObject*"], "Resource": "arn:aws:s3:::b/runs/*"}
    )
    assert policies.is_allowed("Role", "S3:GetObjectVersion", "arn:aws:s3:::b/runs/r/x", TLS)
    assert not policies.is_allowed("Role", "s3:PutObject", "arn:aws:s3:::b/runs/r/x", TLS)
    assert not policies.is_allowed("Role", "s3:GetObject", "arn:aws:s3:::b/serving/x", TLS)
    assert not policies.is_allowed("Other", "s3:GetObject", "arn:aws:s3:::b/runs/r/x", TLS)


def test_explicit_deny_wins_over_allow() -> None:
    policies = _policies(
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::b/*"},
    )
    assert (
        policies.explain("Role", "s3:DeleteObject", "arn:aws:s3:::b/k", TLS).decision
        is Decision.EXPLICIT_DENY
    )
    assert policies.is_allowed("Role", "s3:DeleteObject", "arn:aws:s3:::other/k", TLS)


def test_not_action_and_not_resource() -> None:
    policies = _policies(
        {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "sns:Publish", "NotResource": "arn:aws:sns:us-east-1:123456789012:mine"},
    )
    assert policies.is_allowed("Role", "s3:GetObject", "arn:aws:s3:::b/k", TLS)
    assert not policies.is_allowed("Role", "iam:PassRole", "arn:aws:iam::123456789012:role/x", TLS)
    assert policies.is_allowed("Role", "sns:Publish", "arn:aws:sns:us-east-1:123456789012:mine", TLS)
    assert not policies.is_allowed("Role", "sns:Publish", "arn:aws:sns:us-east-1:123456789012:theirs", TLS)


def test_conditions_and_operators() -> None:
    pass_role = {
        "Effect": "Allow",
        "Action": "iam:PassRole",
        "Resource": "*",
        "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
    }
    policies = _policies(pass_role)
    role = "arn:aws:iam::123456789012:role/x"
    assert policies.is_allowed(
        "Role", "iam:PassRole", role, {"iam:PassedToService": "sagemaker.amazonaws.com"}
    )
    assert not policies.is_allowed(
        "Role", "iam:PassRole", role, {"iam:PassedToService": "lambda.amazonaws.com"}
    )
    assert not policies.is_allowed("Role", "iam:PassRole", role, {})  # the key is absent: no match


@pytest.mark.parametrize(
    ("operator", "values", "context", "expected"),
    [
        ("StringLike", ["us/video/*"], {"k": "us/video/"}, True),
        ("StringLike", ["us/video/*"], {"k": "us/books/"}, False),
        ("StringNotEquals", ["a"], {}, True),  # a negated operator holds when the key is absent
        ("StringNotEquals", ["a", "b"], {"k": "b"}, False),  # NOR over the policy's values
        ("StringEqualsIfExists", ["a"], {}, True),
        ("StringEqualsIfExists", ["a"], {"k": "b"}, False),
        ("Bool", ["true"], {"k": "true"}, True),
        ("Bool", ["false"], {"k": "true"}, False),
        (
            "ArnLike",
            ["arn:aws:states:us-east-1:1:stateMachine:*"],
            {"k": "arn:aws:states:us-east-1:1:stateMachine:m"},
            True,
        ),
        ("ArnEquals", ["arn:aws:s3:::b"], {"k": "arn:aws:s3:::c"}, False),
        ("Null", ["true"], {}, True),
        ("Null", ["false"], {}, False),
        ("ForAnyValue:StringEquals", ["a"], {"k": ("b", "a")}, True),
        ("ForAnyValue:StringEquals", ["a"], {}, False),
        ("ForAllValues:StringEquals", ["a", "b"], {"k": ("a", "c")}, False),
        ("ForAllValues:StringEquals", ["a"], {}, True),
    ],
)
def test_condition_operator(
    operator: str, values: list[str], context: dict[str, Any], expected: bool
) -> None:
    assert condition_holds(operator, "k", values, context) is expected


def test_unknown_operators_and_elements_fail_loudly() -> None:
    with pytest.raises(UnsupportedPolicyError, match="'NumericLessThan' is not modelled"):
        condition_holds("NumericLessThan", "k", ["1"], {"k": "0"})
    with pytest.raises(UnsupportedPolicyError, match="use ForAnyValue"):
        condition_holds("StringEquals", "k", ["a"], {"k": ("a", "b")})
    with pytest.raises(UnsupportedPolicyError, match=r"\['NotPrincipal'\] are not modelled"):
        _policies({"Effect": "Allow", "Action": "*", "Resource": "*", "NotPrincipal": {"AWS": ROOT}})
    policies = _policies(
        {
            "Effect": "Allow",
            "Action": "s3:*",
            "Resource": "*",
            "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
        }
    )
    with pytest.raises(UnsupportedPolicyError, match="'IpAddress' is not modelled"):
        policies.is_allowed("Role", "s3:GetObject", "arn:aws:s3:::b/k", TLS)


def _key(*statements: dict[str, Any]) -> dict[str, Any]:
    return {
        "Key": {
            "Type": "AWS::KMS::Key",
            "Properties": {"KeyPolicy": {"Version": "2012-10-17", "Statement": list(statements)}},
        }
    }


def test_a_kms_key_policy_allowing_the_root_delegates_to_iam_policies() -> None:
    root = {"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "kms:*", "Resource": "*"}
    identity = {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": {"Fn::GetAtt": ["Key", "Arn"]}}
    policies = _policies(identity, resources=_key(root))
    key = policies.template.arn("Key")
    assert policies.is_allowed("Role", "kms:Decrypt", key, TLS)
    assert policies.explain("Other", "kms:Decrypt", key, TLS).decision is Decision.IMPLICIT_DENY


def test_without_the_root_statement_only_the_principals_the_key_policy_names_may_use_the_key() -> None:
    identity = {"Effect": "Allow", "Action": "kms:*", "Resource": "*"}
    named = {
        "Effect": "Allow",
        "Principal": {"AWS": {"Fn::GetAtt": ["Other", "Arn"]}},
        "Action": "kms:Decrypt",
        "Resource": "*",
    }
    policies = _policies(identity, resources=_key(named))
    key = policies.template.arn("Key")
    assert policies.explain("Role", "kms:Decrypt", key, TLS).decision is Decision.KEY_POLICY_DENY
    assert policies.is_allowed("Other", "kms:Decrypt", key, TLS)  # the key policy alone allows it
    assert not policies.is_allowed("Other", "kms:Encrypt", key, TLS)


def test_a_bucket_policy_denies_plain_http() -> None:
    bucket = {
        "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {}},
        "BucketPolicy": {
            "Type": "AWS::S3::BucketPolicy",
            "Properties": {
                "Bucket": {"Ref": "Bucket"},
                "PolicyDocument": {
                    "Statement": [
                        {
                            "Effect": "Deny",
                            "Principal": {"AWS": "*"},
                            "Action": "s3:*",
                            "Resource": [
                                {"Fn::GetAtt": ["Bucket", "Arn"]},
                                {"Fn::Join": ["", [{"Fn::GetAtt": ["Bucket", "Arn"]}, "/*"]]},
                            ],
                            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                        }
                    ]
                },
            },
        },
    }
    policies = _policies({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}, resources=bucket)
    assert policies.is_allowed("Role", "s3:GetObject", "arn:aws:s3:::bucket/k", TLS)
    plain = {"aws:SecureTransport": "false"}
    assert (
        policies.explain("Role", "s3:GetObject", "arn:aws:s3:::bucket/k", plain).decision
        is Decision.EXPLICIT_DENY
    )


def test_managed_policies_come_from_the_table_and_unknown_ones_fail() -> None:
    def role(arn: str) -> Template:
        return Template(
            {"Resources": {"Role": {"Type": "AWS::IAM::Role", "Properties": {"ManagedPolicyArns": [arn]}}}}
        )

    policies = Policies.from_template(
        role("arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole")
    )
    group = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/f:log-stream:s"
    assert policies.is_allowed("Role", "logs:PutLogEvents", group, TLS)
    assert not policies.is_allowed("Role", "logs:DeleteLogGroup", group, TLS)
    with pytest.raises(ValueError, match=r"AdministratorAccess is not in tools/iam/managed\.py"):
        Policies.from_template(role("arn:aws:iam::aws:policy/AdministratorAccess"))
