"""Calls to the SageMaker runtime (InvokeEndpoint) with bounded, jittered retries.

botocore's own retries are off (one attempt per call), so the total is known: at most ATTEMPTS calls per
model per request, each bounded by the connect and read timeouts, with a full-jitter backoff between them.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from lambdas.kit.errors import ModelRejectedError, ModelUnavailableError, NotDeployedError

ATTEMPTS = 3
CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 5.0
BACKOFF_BASE_S = 0.05
BACKOFF_CAP_S = 1.0
# Codes that a later attempt may not meet: throttling, a model still loading, the service's own faults.
RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "ModelNotReadyException",
        "ServiceUnavailable",
        "InternalFailure",
        "InternalDependencyException",
    }
)
_ENDPOINT_NOT_FOUND = re.compile(r"Endpoint \S+ of account \S+ not found", re.IGNORECASE)


class EndpointInvoker:
    """JSON in, JSON out, against named endpoints. The boto3 client is created on the first call."""

    def __init__(
        self,
        endpoint_url: str | None = None,
        *,
        attempts: int = ATTEMPTS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._endpoint_url = endpoint_url
        self._attempts = attempts
        self._sleep = sleep
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = boto3.client(
                "sagemaker-runtime",
                endpoint_url=self._endpoint_url,
                config=Config(
                    retries={"mode": "standard", "total_max_attempts": 1},
                    connect_timeout=CONNECT_TIMEOUT_S,
                    read_timeout=READ_TIMEOUT_S,
                ),
            )
        return self._client

    def invoke(self, model: str, endpoint: str, payload: object) -> Any:
        """POST payload as application/json to the endpoint; the parsed JSON answer.

        Raises NotDeployedError (the endpoint does not exist), ModelRejectedError (the model refused the
        input, or answered something that is not JSON), ModelUnavailableError (still failing after the
        retries).
        """
        body = json.dumps(payload, separators=(",", ":"))
        where = f"the {model} model (endpoint {endpoint})"
        last = ""
        for attempt in range(1, self._attempts + 1):
            try:
                response = self.client.invoke_endpoint(
                    EndpointName=endpoint,
                    Body=body,
                    ContentType="application/json",
                    Accept="application/json",
                )
                raw = response["Body"].read()
            except ClientError as exc:
                error = exc.response.get("Error", {})
                code = str(error.get("Code", ""))
                message = str(error.get("Message", ""))
                status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
                if code == "ValidationError" and _ENDPOINT_NOT_FOUND.search(message):
                    raise NotDeployedError(f"{where} is not deployed: the endpoint does not exist") from None
                if code not in RETRYABLE_CODES and status != 429 and status < 500:
                    raise ModelRejectedError(f"{where} rejected the request: {code}: {message}") from None
                last = f"{code or status}: {message}"
            except (BotoConnectionError, HTTPClientError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                try:
                    return json.loads(raw)
                except ValueError:
                    raise ModelRejectedError(
                        f"{where} answered something that is not JSON: {raw[:80]!r}"
                    ) from None
            if attempt < self._attempts:
                self._sleep(random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1))))
        raise ModelUnavailableError(f"{where} is unavailable: failed {self._attempts} times, last {last}")
