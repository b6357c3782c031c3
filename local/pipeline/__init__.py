"""The local twin's run: the cloud pipeline's steps on one machine, and what they measure.

- run: the run folder and its steps, in the state machine's order (``run_pipeline``).
- training: the two training jobs on a run folder (local.fm, local.embeddings) and the title-table export.
- records: prep's RecordIO rows read back as customer, product and time (contract.features), and subsets.
- evaluation: test RMSE with bootstrap intervals, predictions outside the rating range, the bias model.
- shims: the real serving handlers under a Lambda-like environment pointed at the local runtime server.
- cold_start: products held out entirely, both models trained again without them, asked for by title.
- titles: the title map and the similarity probe.
- report: report.md and its plots.
- cli: ``python -m local.pipeline``.
"""


class PipelineError(RuntimeError):
    """The run cannot go on; the message is one line naming the cause."""
