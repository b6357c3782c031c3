"""The loftrec stack: composes the constructs and grants between them."""

from __future__ import annotations

from typing import Any

from aws_cdk import RemovalPolicy, Stack
from constructs import Construct

from stacks.config import Config
from stacks.storage import DataStorage


class LoftrecStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: Config, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        removal = RemovalPolicy.RETAIN if config.data_removal_policy == "retain" else RemovalPolicy.DESTROY
        self.storage = DataStorage(self, "Storage", removal_policy=removal)
