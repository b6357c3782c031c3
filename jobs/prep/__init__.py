"""The prep job: Amazon Customer Reviews TSV files in, one run's prep/ folder out.

Run it with `python -m jobs.prep --input DIR --output DIR` (the container's entrypoint) or call
jobs.prep.job.run_prep (the local pipeline). Modules: read (streaming TSV reader), blocks (each parsed
block's checks, bad-row accounting, compact columns), rows (where rows end), prepare (thresholds, feature
keys, time feature), split (test, validation and train rows), baselines (their RMSE and per-row
predictions), outputs (shards, corpus, index, manifest), destination (the output folder: checked first,
written beside it and renamed, or in place with the manifest last), failure (the one-line failure
message). The RecordIO-protobuf writer is fm.recordio; the layout it writes, the feature keys, the time
transform and the index format are the run contract's (contract/).
"""
