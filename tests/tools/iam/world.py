"""The IAM check of loftrec's synthesized template: every call the system makes, what each needs, and which
of those needs the template's policies do not allow.

The sample execution is the naming rule's: lambdas/pipeline/start_run.py plans a run from the defaults the
template gives its function, and SageMaker puts a training job's model at <S3OutputPath><job>/output/
model.tar.gz (the layout the export and deploy states read).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from contract.algorithms import ENDPOINT_NAMES
from contract.algorithms import MODELS as CONTRACT_MODELS
from lambdas.pipeline.start_run import plan_run
from tests.tools.iam.harness import DATA_BUCKET, RECORDED_CALLS
from tools.iam import inventory
from tools.iam.evaluate import Policies
from tools.iam.recorder import RUN_ID_SYMBOL
from tools.iam.required import Facts, Invocation, Requirement, facts_from_template, requirements
from tools.iam.template import Template

EXECUTION_NAME = "weekly-sample"
START_TIME = "2024-01-07T03:00:00.000Z"
MODELS = CONTRACT_MODELS


def role_name(logical_id: str) -> str:
    """A role's logical id without CDK's hash suffix: stable while the construct path stays."""
    return (
        logical_id[:-8]
        if len(logical_id) > 8 and all(c in "0123456789ABCDEF" for c in logical_id[-8:])
        else logical_id
    )


def _start_run_environment(template: Template) -> dict[str, str]:
    for body in template.of_type("AWS::Lambda::Function").values():
        if body["Properties"]["Handler"] == "lambdas.pipeline.start_run.handler":
            variables: dict[str, str] = template.resolve(body["Properties"]["Environment"]["Variables"])
            return variables
    raise AssertionError("no function runs lambdas.pipeline.start_run.handler")


def sample_execution(template: Template) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state input, context object) of a sample run: what later states read under $.run and $.training."""
    environment = _start_run_environment(template)
    run = plan_run(
        {},
        execution_name=EXECUTION_NAME,
        start_time=START_TIME,
        defaults=json.loads(environment["RUN_DEFAULTS"]),
        bucket=environment["DATA_BUCKET"],
        volume_key=environment["VOLUME_KMS_KEY"],
    )
    names: Mapping[str, str] = run["names"]  # type: ignore[assignment]  # a TypedDict of str values
    training = {
        model: {
            "job_name": names[model],
            "model_data": f"{run['run_uri']}{model}/{names[model]}/output/model.tar.gz",
        }
        for model in MODELS
    }
    state = {
        "run": run,
        "training": training,
        "result": {"model_data": training["blazingtext"]["model_data"]},
        # FM's tuning job's best training job, named after the tuning job as SageMaker names them.
        "tuned": {"best": f"{names['fm_tuning']}-003-1a2b3c4d"},
    }
    machine, env = template.state_machine_id(), template.env
    context = {
        "Execution": {
            "Name": EXECUTION_NAME,
            "Id": f"arn:aws:states:{env.region}:{env.account}:execution:{machine}:{EXECUTION_NAME}",
            "StartTime": START_TIME,
        },
        "State": {"EnteredTime": START_TIME},
    }
    return state, context


def symbols(template: Template, state: Mapping[str, Any]) -> dict[str, str]:
    """The values of the stored inventory's symbols in this template's world."""
    return {
        RUN_ID_SYMBOL: state["run"]["run_id"],
        DATA_BUCKET: _start_run_environment(template)["DATA_BUCKET"],
        **{f"{{endpoint:{model}}}": name for model, name in ENDPOINT_NAMES.items()},
    }


@dataclass
class Check:
    template: Template
    policies: Policies
    facts: Facts
    invocations: list[Invocation]
    requirements: list[Requirement]

    def role_of(self, requirement: Requirement) -> str:
        return self.policies.role_for_arn(requirement.principal)

    def denied(self, policies: Policies | None = None) -> list[Requirement]:
        judge = policies or self.policies
        return [
            r
            for r in self.requirements
            if not judge.is_allowed(judge.role_for_arn(r.principal), r.action, r.resource, r.context_map)
        ]


def build(document: Mapping[str, Any]) -> Check:
    template = Template(document)
    state, context = sample_execution(template)
    invocations = [
        *inventory.state_machine_invocations(template, state, context),
        *inventory.platform_invocations(template),
        *inventory.recorded_invocations(template, inventory.load(RECORDED_CALLS), symbols(template, state)),
    ]
    facts = facts_from_template(template)
    facts.learn(invocation.call for invocation in invocations)
    needs = [r for invocation in invocations for r in requirements(invocation, facts)]
    unique = {(r.principal, r.action, r.resource, r.context, r.because): r for r in needs}
    return Check(template, Policies.from_template(template), facts, invocations, list(unique.values()))


@functools.cache
def default_document() -> dict[str, Any]:
    """The shared synthesized template as JSON (a copy: mutation tests edit copies of it)."""
    from tests.synthesized import default_template  # noqa: PLC0415 -- synthesis only when a check needs it

    copy: dict[str, Any] = json.loads(json.dumps(default_template().to_json()))
    return copy


@functools.cache
def default_check() -> Check:
    return build(default_document())
