"""Every failure loftrec's Lambdas raise on purpose, under one base class.

Step Functions matches a Lambda's failure by the exception's class name (the `errorType` of the function's
error payload), so the pipeline's class names are part of the state machine's contract: a Retry on
`EndpointBusyError`, a notification naming `InvalidRunInputError`. Renaming one is a state machine change.
https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html
"""

from __future__ import annotations


class LoftrecError(Exception):
    """Something loftrec's code detected and named, as opposed to a bug or an AWS outage."""


class ConfigError(LoftrecError, ValueError):
    """An environment variable is missing or invalid; the message names it, its value and what is allowed."""


class StorageNotFoundError(LoftrecError, FileNotFoundError):
    """Nothing at the URI."""


# ---------------------------------------------------------------------------------------------- serving


class ServingError(LoftrecError):
    """A failure the shims answer with an HTTP status and a stable machine-readable code."""

    status = 500
    code = "internal_error"


class RequestError(ServingError):
    """The request is malformed: names the field (a JSON path such as items[2].date) and the problem."""

    status = 400
    code = "bad_request"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class NotDeployedError(ServingError):
    """No run is deployed yet (no run record), or a model's endpoint does not exist."""

    status = 503
    code = "not_deployed"


class ModelUnavailableError(ServingError):
    """A model's endpoint kept failing (throttling, 5xx, connection) after the bounded retries."""

    status = 503
    code = "model_unavailable"


class ModelRejectedError(ServingError):
    """A model's endpoint rejected the request (ModelError, or a validation error other than not found)."""

    status = 502
    code = "model_rejected"


class RunUnreadableError(ServingError):
    """The deployed run's record, index or title table is missing or malformed."""

    status = 503
    code = "run_unreadable"


# --------------------------------------------------------------------------------------------- pipeline


class InvalidRunInputError(LoftrecError, ValueError):
    """The execution input is not allowed; the message names the field."""


class EndpointBusyError(LoftrecError, RuntimeError):
    """The endpoint is being created or updated; the state machine retries with backoff."""


class EndpointFailedError(LoftrecError, RuntimeError):
    """The endpoint is Failed: only deleting it helps; the message says how."""


class ServingDataError(LoftrecError, ValueError):
    """An input of the serving-data export (model, index, shard, title table) is missing or malformed; the
    message names the file."""


class GateInputError(LoftrecError, ValueError):
    """An input of the quality gate (the test shard, the candidate's or the baselines' predictions) is
    missing, malformed or does not match the test rows; the message names the file."""
