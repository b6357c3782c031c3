"""The failures the shims turn into HTTP answers; shared by the logic and the AWS-facing modules."""

from __future__ import annotations


class ServingError(Exception):
    """A failure with an HTTP status and a stable machine-readable code."""

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
