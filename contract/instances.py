"""Which SageMaker instance types have local instance storage, and so take no KMS key for their volumes.

SageMaker refuses a volume key for them: "Certain Nitro-based instances include local storage, dependent on
the instance type. Local storage volumes are encrypted using a hardware module on the instance. You can't
request a VolumeKmsKeyId when using an instance type with local storage." (ResourceConfig and
ProcessingClusterConfig VolumeKmsKeyId; CreateEndpointConfig KmsKeyId: "If you specify a value for KmsKeyId
when using any nitro-based instances with local storage, the call to CreateEndpointConfig fails.")
- https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ResourceConfig.html
- https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ProcessingClusterConfig.html
- https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateEndpointConfig.html

Which types those are, the API pages leave to EC2's "Instance Store Volumes" list
(https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/InstanceStorage.html). EC2 marks instance store with a
"d" among a family's additional capabilities ("d - Instance store volumes":
https://docs.aws.amazon.com/ec2/latest/instancetypes/instance-type-names.html): c5d, m5d, r5d, c6gd, m6gd,
r6gd, r7gd, g4dn, p3dn, p4d, p4de. The accelerated families in NVME_WITHOUT_D carry NVMe instance store
without the letter (EC2's accelerated computing specifications, "Instance store specifications":
https://docs.aws.amazon.com/ec2/latest/instancetypes/ac.html; SageMaker names ml.p4d, ml.g4dn and ml.g5
among "ML instance families with the NVMe-type instance storage":
https://docs.aws.amazon.com/sagemaker/latest/dg/model-train-storage-tips-considerations.html).
"""

from __future__ import annotations

import re

NVME_WITHOUT_D = frozenset(
    {
        "dl1",
        "g5",
        "g6",
        "g6e",
        "p5",
        "p5e",
        "p5en",
        "p6-b200",
        "p6-b300",
        "p6e-gb200",
        "trn1",
        "trn1n",
        "trn2",
    }
)
"""Families with NVMe instance store whose names have no "d" among their capabilities."""

_INSTANCE_TYPE = re.compile(r"ml\.(?P<family>[a-z0-9-]+)\.[a-z0-9]+")
# Series letters, generation digits, capability letters (processor and extras), and an optional suffix
# after a hyphen (c7i-flex, p6-b200).
_FAMILY = re.compile(r"[a-z]+\d+(?P<capabilities>[a-z]*)(?:-[a-z0-9-]+)?")


def has_local_storage(instance_type: str) -> bool:
    """Whether a SageMaker instance type (ml.<family>.<size>) has local instance storage: a request for
    it must not name a volume KMS key."""
    match = _INSTANCE_TYPE.fullmatch(instance_type)
    family = None if match is None else match["family"]
    parts = None if family is None else _FAMILY.fullmatch(family)
    if family is None or parts is None:
        raise ValueError(f"{instance_type!r} is not a SageMaker instance type such as ml.c5.2xlarge")
    return family in NVME_WITHOUT_D or "d" in parts["capabilities"]
