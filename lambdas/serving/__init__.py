"""The serving shims: predict ratings and find similar titles in front of the FM and BlazingText endpoints.

handlers.py holds the two API Lambda handlers (their settings: config.py), title_table.py the pipeline Lambda
that exports the known-title table once per run. logic.py (requests, FM request building, the cold-start
blend) has no boto3; deployment.py keeps the deployed run (record, index, title table) warm; runtime.py calls
the endpoints; vectors.py is the one module that imports numpy. Settings, storage, errors, logs and metrics
are lambdas/kit's.
"""
