"""The prep job: Amazon Customer Reviews TSV files in, one run's prep/ folder out.

Run it with `python -m jobs.prep --input DIR --output DIR` (the container's entrypoint) or call
jobs.prep.job.run_prep (the local pipeline). Modules: read (streaming TSV reader, bad-row accounting),
prepare (thresholds, feature keys, time feature, split), baselines, outputs (shards, corpus, index,
manifest), serving (stdlib only: what the serving shims reproduce), recordio (RecordIO-protobuf),
failure (the one-line failure message). This package imports nothing at import time, so that
jobs.prep.serving stays loadable without numpy or pyarrow.
"""
