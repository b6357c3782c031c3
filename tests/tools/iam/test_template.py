"""The template resolver names resources as the moto runs do (tests/stacks/asl.py), so that recorded calls
and granted ARNs meet."""

from __future__ import annotations

import pytest

from tests.stacks import asl
from tests.tools.iam.world import Check
from tools.iam.template import Template, TemplateError


def test_the_definition_resolves_as_the_moto_runs_resolve_it(check: Check) -> None:
    assert check.template.definition() == asl.definition(dict(check.template.document))


def test_role_policies_resolve_as_asl_resolves_them(check: Check) -> None:
    document = dict(check.template.document)
    compared = 0
    for body in check.template.of_type("AWS::IAM::Policy").values():
        policy = body["Properties"]["PolicyDocument"]
        try:
            expected = asl.resolve(document, policy)
        except ValueError:  # asl.py knows fewer resource kinds (no alarms): nothing to compare
            continue
        assert check.template.resolve(policy) == expected
        compared += 1
    assert compared >= 8


def test_intrinsic_functions() -> None:
    template = Template(
        {
            "Mappings": {"Images": {"us-east-1": {"fm": "382416733822"}}},
            "Resources": {
                "Bucket": {"Type": "AWS::S3::Bucket"},
                "Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": "/loftrec/x"}},
            },
        }
    )
    assert template.resolve({"Ref": "AWS::AccountId"}) == "123456789012"
    assert template.resolve({"Fn::Join": ["/", [{"Ref": "Bucket"}, "runs"]]}) == "bucket/runs"
    assert template.resolve({"Fn::GetAtt": ["Logs", "Arn"]}) == (
        "arn:aws:logs:us-east-1:123456789012:log-group:/loftrec/x:*"
    )
    assert template.resolve({"Fn::Sub": "arn:${AWS::Partition}:s3:::${Bucket}/${Key}", "x": 1}) == {
        "Fn::Sub": "arn:${AWS::Partition}:s3:::${Bucket}/${Key}",
        "x": 1,
    }
    assert template.resolve({"Fn::Sub": ["${Bucket}/${Key}", {"Key": "k"}]}) == "bucket/k"
    assert template.resolve({"Fn::FindInMap": ["Images", {"Ref": "AWS::Region"}, "fm"]}) == "382416733822"
    assert template.resolve({"Fn::Select": [1, {"Fn::Split": [",", "a,b"]}]}) == "b"
    with pytest.raises(TemplateError, match="cannot resolve Fn::ImportValue"):
        template.resolve({"Fn::ImportValue": "x"})
    with pytest.raises(TemplateError, match="no resource 'Missing'"):
        template.resolve({"Ref": "Missing"})
