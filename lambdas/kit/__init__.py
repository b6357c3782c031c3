"""What every loftrec Lambda shares (the serving shims and the pipeline's functions):

- settings.py: a function's settings as a frozen dataclass whose fields name their environment variables,
  parsed and validated once per container; a bad variable is one ConfigError line naming it.
- storage.py: files by URI (s3:// or file://), one reader and one writer; JSON and the deployed-run record.
- clients.py: boto3 clients, one per service per container, created on first use.
- errors.py: LoftrecError and every failure raised on purpose under it (serving: HTTP status + code;
  pipeline: the names the state machine matches).
- logs.py, metrics.py, invocation.py: JSON logs (Powertools Logger), EMF metrics (Powertools), and the
  per-invocation keys (cold_start, correlation_id) and flush.

Caches are module-level functools caches (clients.client, invocation._environment, each handler module's
settings function): `cache_clear()` on them is a new container.
"""
