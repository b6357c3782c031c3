"""The state machine's Lambda steps: start_run.py (validate the input, name the run), gate.py (the quality
gate), endpoints.py (create-or-update plan, rollback). Settings, storage, clients, errors and logs are
lambdas/kit's."""
