"""The batch recommendations job: a run's serving factors (serving/fm/) and index (prep/index/) in, the top-k
products of every customer out (recommendations/), as gzipped JSON Lines shards and a manifest.

Run it with `python -m jobs.recommend --run DIR` (a local run folder) or with the parts, `--factors DIR
--index DIR --output DIR`, whose defaults are the SageMaker Processing container's paths (contract.layout):
the job runs on the prep image with the entrypoint `python -m jobs.recommend`. Modules: job (the run, one
function), output (the shard writer and the line format). The scoring is fm.topn's.
"""
