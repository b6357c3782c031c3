"""Metrics as CloudWatch embedded metric format (EMF) records, written with Powertools for AWS Lambda's
EMF provider: CloudWatch Logs extracts the metrics from the function's log lines, so no PutMetricData call
and no IAM permission are needed. https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html

One invocation's counts go out as one record when it ends (dimension: service). A count with its own
dimensions (e.g. rejections by status and code) is one more record per distinct set of dimensions.

Environment (Powertools' own variables):
- POWERTOOLS_METRICS_NAMESPACE: the CloudWatch namespace (default "loftrec").
- POWERTOOLS_SERVICE_NAME: the "service" dimension (default "loftrec", as the logs' service key).
- POWERTOOLS_METRICS_DISABLED=true: nothing is written (the local twin; a test that reads stdout).
"""

from __future__ import annotations

import os

from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

from .logs import LOGGER

NAMESPACE_DEFAULT = "loftrec"


def namespace() -> str:
    return os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "").strip() or NAMESPACE_DEFAULT


class Metrics:
    """Counts of one function, flushed at the end of each invocation (invocation.py)."""

    def __init__(self) -> None:
        self.namespace = namespace()
        self.service = LOGGER.service
        self._provider = AmazonCloudWatchEMFProvider(namespace=self.namespace, service=self.service)
        self._dimensioned: dict[tuple[tuple[str, str], ...], dict[str, float]] = {}

    def count(self, name: str, value: float, **dimensions: str) -> None:
        """Add `value` to the count `name` of this invocation; with dimensions, in a record of its own."""
        if not dimensions:
            self._provider.add_metric(name=name, unit="Count", value=value)
            return
        counts = self._dimensioned.setdefault(tuple(sorted(dimensions.items())), {})
        counts[name] = counts.get(name, 0.0) + value

    def flush(self) -> None:
        """Write this invocation's records to stdout (unless POWERTOOLS_METRICS_DISABLED) and start over."""
        try:
            if self._provider.metric_set:
                self._provider.flush_metrics()
            for dimensions, counts in self._dimensioned.items():
                record = AmazonCloudWatchEMFProvider(namespace=self.namespace, service=self.service)
                for dimension, value in dimensions:
                    record.add_dimension(name=dimension, value=value)
                for name, total in counts.items():
                    record.add_metric(name=name, unit="Count", value=total)
                record.flush_metrics()
        finally:
            # Powertools keeps the values when metrics are disabled, and writes them anyway once a
            # metric holds 100 values: cleared here, whatever happened.
            self._provider.clear_metrics()
            self._dimensioned.clear()
