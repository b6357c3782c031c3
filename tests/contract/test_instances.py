"""Which instance types have local storage (and so take no volume KMS key), for every family SageMaker's API
model in the pinned botocore lists."""

from __future__ import annotations

import botocore.session
import pytest

from contract.instances import has_local_storage

# Every ml. family of the pinned botocore's TrainingInstanceType, ProcessingInstanceType and
# ProductionVariantInstanceType, written out by hand: True where EC2 documents instance store volumes for it
# (contract/instances.py cites the pages). g7 and g7e are newer than this repository's sources say anything
# about their storage: the naming rule applies (no "d"), and SageMaker's refusal would name a wrong guess.
FAMILIES = {
    "c4": False,
    "c5": False,
    "c5d": True,
    "c5n": False,
    "c6g": False,
    "c6gd": True,
    "c6gn": False,
    "c6i": False,
    "c6in": False,
    "c7g": False,
    "c7i": False,
    "c7i-flex": False,
    "c8g": False,
    "c8i": False,
    "c8i-flex": False,
    "dl1": True,
    "g4dn": True,
    "g5": True,
    "g6": True,
    "g6e": True,
    "g7": False,
    "g7e": False,
    "inf1": False,
    "inf2": False,
    "m4": False,
    "m5": False,
    "m5d": True,
    "m6g": False,
    "m6gd": True,
    "m6i": False,
    "m7i": False,
    "m7i-flex": False,
    "m8g": False,
    "m8i": False,
    "m8i-flex": False,
    "p2": False,
    "p3": False,
    "p3dn": True,
    "p4d": True,
    "p4de": True,
    "p5": True,
    "p5e": True,
    "p5en": True,
    "p6-b200": True,
    "p6-b300": True,
    "p6e-gb200": True,
    "r5": False,
    "r5d": True,
    "r6g": False,
    "r6gd": True,
    "r6i": False,
    "r7gd": True,
    "r7i": False,
    "r8g": False,
    "r8i": False,
    "r8i-flex": False,
    "t2": False,
    "t3": False,
    "trn1": True,
    "trn1n": True,
    "trn2": True,
}
SHAPES = ("TrainingInstanceType", "ProcessingInstanceType", "ProductionVariantInstanceType")


def _botocore_types() -> list[str]:
    model = botocore.session.get_session().get_service_model("sagemaker")
    return sorted({t for shape in SHAPES for t in model.shape_for(shape).enum if t.startswith("ml.")})


def test_the_defaults_and_the_documented_examples() -> None:
    assert has_local_storage("ml.c5.2xlarge") is False  # FM's default: EBS only
    assert has_local_storage("ml.p3.2xlarge") is False  # BlazingText's default
    assert has_local_storage("ml.m5.xlarge") is False  # the prep job's
    assert has_local_storage("ml.m4.xlarge") is False  # the endpoints'
    # The families the API pages and BlazingText's instance recommendations name.
    for instance_type in (
        "ml.c5d.xlarge",
        "ml.m5d.large",
        "ml.r5d.24xlarge",
        "ml.g4dn.xlarge",
        "ml.g5.2xlarge",
    ):
        assert has_local_storage(instance_type) is True, instance_type
    assert has_local_storage("ml.p3dn.24xlarge") is True
    assert has_local_storage("ml.p4d.24xlarge") is True


def test_every_family_the_pinned_botocore_lists_is_classified_as_written_out() -> None:
    types = _botocore_types()
    families = {t.split(".")[1] for t in types}
    assert families == set(FAMILIES), "a new family: look up its instance store and add it to FAMILIES"
    wrong = [t for t in types if has_local_storage(t) is not FAMILIES[t.split(".")[1]]]
    assert wrong == []


@pytest.mark.parametrize("bad", ["c5.2xlarge", "ml.c5", "ml..xlarge", "ml.C5.xlarge", "ml.5c.xlarge", ""])
def test_anything_else_is_refused_with_its_value(bad: str) -> None:
    with pytest.raises(ValueError, match=f"{bad!r} is not a SageMaker instance type"):
        has_local_storage(bad)
