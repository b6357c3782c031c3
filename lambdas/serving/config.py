"""The shims' settings (the Predict, SimilarTitles and Recommendations functions): environment variables
parsed and validated once, at cold start."""

from __future__ import annotations

from dataclasses import dataclass

from lambdas.kit.errors import ConfigError
from lambdas.kit.settings import http_url_or_unset, integer, number, storage_uri, variable

MAX_ANSWER_ENTRIES = 20_000
"""Most entries a predict answer may list: an item each, and each cold start's neighbours."""


@dataclass(frozen=True)
class ServingConfig:
    run_record_uri: str = variable("RUN_RECORD_URI", storage_uri("the run record"))
    """Where the deployed-run record is: s3://bucket/key or file:///path."""
    max_batch_size: int = variable("MAX_BATCH_SIZE", integer(1, 1000), default="100")
    """Most items in one predict request, and most titles in one similar-titles request."""
    neighbours: int = variable("NEIGHBOURS", integer(1, 100), default="10")
    """k: how many nearest known titles a cold-start item's rating is made from (those at or above the run's
    min_similarity are kept)."""
    max_similar: int = variable("MAX_SIMILAR", integer(1, 1000), default="50")
    """Largest k a similar-titles request may ask for (also its default when the request names none)."""
    record_ttl_seconds: float = variable("RECORD_TTL_SECONDS", number(0, 60, of="seconds"), default="60")
    """How long the run record is cached before it is read again (at most 60 s)."""
    sagemaker_runtime_endpoint_url: str | None = variable(
        "SAGEMAKER_RUNTIME_ENDPOINT_URL", http_url_or_unset(), default=""
    )
    """Another SageMaker runtime URL (the local runtime server); None = the AWS regional endpoint."""

    def __post_init__(self) -> None:
        if self.max_batch_size * (1 + self.neighbours) > MAX_ANSWER_ENTRIES:
            # Every item of a batch may be a cold start: its answer lists its neighbours (about 150 bytes
            # each), and the answer must stay well under Lambda's 6 MB limit on a synchronous response
            # (https://docs.aws.amazon.com/lambda/latest/dg/API_Invoke.html).
            raise ConfigError(
                f"MAX_BATCH_SIZE={self.max_batch_size} with NEIGHBOURS={self.neighbours} is not allowed: "
                f"MAX_BATCH_SIZE * (1 + NEIGHBOURS) must be at most {MAX_ANSWER_ENTRIES}"
            )
