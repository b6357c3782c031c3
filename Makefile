# loftrec: the commands README and CI use. Each target installs what it needs by itself.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CDK := node_modules/.bin/cdk
NUMPY_LAYER := build/layers/numpy
POWERTOOLS_LAYER := build/layers/powertools
# Offline and quiet: no telemetry, no version check, no notices (also set in cdk.json).
export CDK_DISABLE_CLI_TELEMETRY := 1
export CDK_DISABLE_VERSION_CHECK := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export SAGEMAKER_SUPPRESS_V2_WARNING := 1
# Extra arguments for cdk, e.g. CDK_ARGS="-c account=123456789012 -c region=eu-west-1".
CDK_ARGS ?=
# Where the raw reviews are (required to deploy); defaults to raw_data_uri in cdk.json.
RAW_DATA_URI ?= $(shell $(PYTHON) -c 'import json; print(json.load(open("cdk.json"))["context"].get("raw_data_uri") or "")')
CODE := $(wildcard app.py contract fm stacks jobs lambdas local tools bench tests)

.PHONY: run summary test install lint typecheck unit synth cfn-lint diff preflight deploy clean iam-inventory

# cdk.json's FM hyperparameters are chosen for the notebook's scale (many customers with a few reviews each;
# bench/fm_defaults.py). The bundled MovieLens slice has 610 customers with about 130 ratings each and needs
# more factor training, which overfits at that scale: the local run keeps cdk.json's hyperparameters and
# raises these (README, "Running it locally"). RUN_ARGS adds options, e.g.
# RUN_ARGS="--input /data/amazon-reviews"; an --fm-hyperparameters there overrides these key by key.
LOCAL_FM ?= {"num_factors": 256, "epochs": 10, "factors_lr": 0.001}
RUN_ARGS ?=

run: install ## The whole pipeline on this machine, on the bundled data; prints where the report is.
	$(PY) -m local.pipeline --fm-hyperparameters '$(LOCAL_FM)' $(RUN_ARGS)

summary: synth ## What `cdk deploy` would create.
	@$(PY) -m stacks.summary cdk.out

test: install lint typecheck synth cfn-lint unit ## Everything CI checks.

install: $(VENV)/.installed node_modules/.installed $(NUMPY_LAYER).installed $(POWERTOOLS_LAYER).installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --constraint constraints.txt '.[dev]'
	@touch $@

# numpy for the serving shims' Lambda layer: the pinned version's wheel for the Lambda runtime (Python 3.14,
# arm64), unpacked as a layer. No Docker: the wheel is the one PyPI serves for that platform. No .pyc: pip
# would compile for this interpreter, not the runtime's (14 MB the runtime never reads).
$(NUMPY_LAYER).installed: constraints.txt | $(VENV)/.installed
	rm -rf $(NUMPY_LAYER)
	$(PY) -m pip install --quiet --no-deps --no-compile --only-binary=:all: --implementation cp \
		--python-version 3.14 --platform manylinux_2_28_aarch64 --target $(NUMPY_LAYER)/python \
		"$$(grep '^numpy==' constraints.txt)"
	@touch $@

# Powertools for AWS Lambda (Python) for every function's logs and metrics (lambdas/kit), as a layer: the
# pinned wheel and typing_extensions, which it imports and the Lambda runtime does not document. jmespath,
# its other dependency, is in the runtime already: its boto3 needs it through botocore. Pure-Python wheels;
# no .pyc, as for numpy.
$(POWERTOOLS_LAYER).installed: constraints.txt | $(VENV)/.installed
	rm -rf $(POWERTOOLS_LAYER)
	$(PY) -m pip install --quiet --no-deps --no-compile --only-binary=:all: --implementation cp \
		--python-version 3.14 --platform manylinux_2_28_aarch64 --target $(POWERTOOLS_LAYER)/python \
		"$$(grep '^aws-lambda-powertools==' constraints.txt)" "$$(grep '^typing_extensions==' constraints.txt)"
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

lint: install
	$(VENV)/bin/ruff check $(CODE)
	$(VENV)/bin/ruff format --check $(CODE)

typecheck: install
	$(VENV)/bin/mypy app.py contract fm stacks jobs lambdas local tools bench tests

unit: install
	$(VENV)/bin/pytest

# The boto3 calls our Lambda handlers make, as the moto runs and the serving tests record them: the IAM
# check (tests/tools/iam) reads tests/tools/iam/recorded_calls.json, and `make test` fails when it is stale.
iam-inventory: install
	LOFTREC_IAM_INVENTORY=write $(VENV)/bin/pytest -q tests/lambdas tests/stacks/pipeline/test_state_machine.py \
		tests/tools/iam/test_inventory.py

synth: install ## CloudFormation templates into cdk.out, offline, no credentials.
	$(CDK) synth --quiet $(CDK_ARGS)

cfn-lint: synth
	$(VENV)/bin/cfn-lint --config-file .cfnlintrc.yaml -- cdk.out/*.template.json

diff: install ## Needs AWS credentials for the target account.
	$(CDK) diff $(if $(RAW_DATA_URI),-c raw_data_uri=$(RAW_DATA_URI)) $(CDK_ARGS)

# Checks the target account before a deployment, with the same configuration as deploy (cdk.json, CDK_ARGS,
# RAW_DATA_URI): one line per check; exit status 0 when nothing blocks (make turns a failure into 2).
preflight: install ## Needs AWS credentials for the target account; changes nothing.
	@$(PY) -m tools.preflight $(if $(RAW_DATA_URI),-c raw_data_uri=$(RAW_DATA_URI)) $(CDK_ARGS)

deploy: install ## Needs AWS credentials and a bootstrapped account (cdk bootstrap).
	@test -n "$(RAW_DATA_URI)" || { echo "make deploy: set RAW_DATA_URI=s3://bucket/prefix/ (the reviews TSV files) or raw_data_uri in cdk.json" >&2; exit 2; }
	$(CDK) deploy --require-approval broadening -c raw_data_uri=$(RAW_DATA_URI) $(CDK_ARGS)

clean:
	rm -rf cdk.out build .pytest_cache .mypy_cache .ruff_cache local-bucket
