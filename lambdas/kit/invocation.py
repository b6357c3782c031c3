"""One Lambda invocation as the logs and metrics see it: the keys every line of it carries, and its
metrics flushed when it ends.

Keys: cold_start (the first invocation of this execution environment, not counting provisioned
concurrency's pre-initialized ones), function_name and function_request_id (from the Lambda context, when
there is one), and what the handler adds, e.g. correlation_id (the API Gateway request id for the shims).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from .logs import LOGGER
from .metrics import Metrics

Handler = TypeVar("Handler", bound=Callable[[Any, Any], Any])


@dataclass
class _Environment:
    invocations: int = 0


@functools.cache
def _environment() -> _Environment:
    """This execution environment (container); `cache_clear()` starts a new one."""
    return _Environment()


def _cold_start() -> bool:
    environment = _environment()
    environment.invocations += 1
    # AWS_LAMBDA_INITIALIZATION_TYPE is "provisioned-concurrency" when the environment was initialized
    # ahead of any request: its first invocation did not wait for the init.
    # https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime
    provisioned = os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "provisioned-concurrency"
    return environment.invocations == 1 and not provisioned


@contextlib.contextmanager
def invocation(context: object, *, metrics: Metrics | None = None, **keys: object) -> Iterator[None]:
    """Log keys for the lines logged inside the block; `metrics` flushed when it ends, however it ends."""
    with LOGGER.append_context_keys(
        cold_start=_cold_start(),
        function_name=getattr(context, "function_name", None),
        function_request_id=getattr(context, "aws_request_id", None),
        **keys,
    ):
        try:
            yield
        finally:
            if metrics is not None:
                metrics.flush()


def lambda_handler(handler: Handler) -> Handler:
    """A handler whose invocations carry the invocation keys (for handlers without metrics)."""

    @functools.wraps(handler)
    def run(event: Any, context: Any) -> Any:
        with invocation(context):
            return handler(event, context)

    return cast(Handler, run)
