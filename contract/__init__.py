"""The run contract: what every loftrec runtime agrees on, defined once.

The prep job (its container), the pipeline Lambdas, the serving shims, the local twin, the CDK stacks, the
benchmarks and the tests all import this package, so that a path, a feature key or a record field is changed
in one place and every side follows. Standard library only: it ships in the Lambda asset and in the prep
image beside the code that uses it.

- layout: where a run's files live (runs/<run-id>/...), the deployed-run record, the prep container's paths.
- features: the FM feature layout (user, item and time keys) and the time transform with its inverse.
- index: the title token and the serving index format (prep/index/), one writer and one reader.
- algorithms: the two models, their endpoint and resource names, and their hyperparameter names.
- instances: which SageMaker instance types have local storage (and so take no volume KMS key).
- documents: the documents that cross a process or state boundary (run plan, manifest, gate decision, run
  record) as typed structures, with the readers that check them.
"""
