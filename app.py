#!/usr/bin/env python3
"""The CDK app: loads the configuration once from context and builds the loftrec stack.

Synthesizes offline: no AWS call, no credentials. Without `-c account=... -c region=...` the stack is
environment-agnostic.
"""

from __future__ import annotations

import sys
from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from stacks.config import STACK_NAME, Config, ConfigError, load_config
from stacks.loftrec_stack import LoftrecStack


def build_app(context: dict[str, object] | None = None, *, outdir: Path | None = None) -> cdk.App:
    """The whole app with cdk-nag's AwsSolutions checks attached (they run at synth). Without context, the
    CDK CLI's (cdk.json and -c); without outdir, the CLI's (or a temporary folder)."""
    app = cdk.App(context=context, outdir=None if outdir is None else str(outdir))
    config = read_config(app)
    env = (
        cdk.Environment(account=config.account, region=config.region)
        if config.account or config.region
        else None
    )
    stack = LoftrecStack(
        app,
        STACK_NAME,
        config=config,
        env=env,
        description="loftrec: recommender endpoints (SageMaker FM + BlazingText) and their retraining",
    )
    if config.raw_data_uri is None:
        cdk.Annotations.of(stack).add_warning_v2(
            "loftrec:raw-data-uri",
            "raw_data_uri is not set: this app synthesizes but cannot retrain; deploy with -c raw_data_uri=s3://...",
        )
    cdk.Tags.of(app).add("project", "loftrec")
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


def read_config(app: cdk.App) -> Config:
    context = app.node.get_all_context()
    return load_config(context)


def main() -> None:
    try:
        app = build_app()
    except ConfigError as error:
        sys.exit(f"loftrec: invalid configuration: {error}")
    app.synth()


if __name__ == "__main__":
    main()
