"""The quality gate of a local run, on the same test rows: lambdas.pipeline.gate.decide_paired, with the
per-row predictions the cloud's gate gets.

- the candidate: the run's FM (fm/model.tar.gz, the local trainer's model) scoring the test shard, clipped
  to the rating range as served;
- the baselines: prep/baselines/test.npy (the prep job's predictions for every test row);
- the deployed run, when the deployed-run record (serving/current.json) names one: its serving factors and
  index (fm/pairs.py) scoring the candidate's test rows, read back in ids through the candidate's index; only
  the rows whose customer and product the deployed run knows are compared.

Margins are cdk.json's gate_min_improvement and gate_max_regression, as the cloud's gate reads them. The
ranking table on the test rows (serving/ranking.json's "test", the "Export FM factors" step's) goes into
gate.json's "ranking" verbatim.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import numpy.typing as npt

from contract import layout
from contract.documents import BASELINE_COLUMNS, GateDecision, RecordFormatError, parse_run_record
from contract.features import RATING_RANGE
from contract.index import IndexFormatError, load_index
from fm.factors import FactorsFormatError, load_factors
from fm.pairs import PairsFormatError, read_rows, score_rows
from lambdas.pipeline.gate import decide_paired
from local.fm import load_model, predict, read_shards
from local.pipeline import PipelineError

__all__ = ["DeployedScores", "TestPredictions", "deployed_scores", "paired_gate", "test_predictions"]

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class TestPredictions:
    """Per test row: the rating, the candidate's raw score and its served (clipped) rating, the baselines'."""

    actual: F64
    raw: F64
    candidate: F64
    global_mean: F64
    bias: F64
    user_bias: F64


def test_predictions(run_folder: Path) -> TestPredictions:
    """The candidate's and the baselines' predictions for every row of the run's test shard."""
    test = read_shards(run_folder / layout.TEST)
    raw = predict(load_model(run_folder / layout.FM_OUTPUT), test.indptr, test.indices, test.values)
    baselines = np.load(run_folder / layout.BASELINES_TEST).astype(np.float64)
    rows = test.labels.shape[0]
    if baselines.shape != (rows, len(BASELINE_COLUMNS)):
        raise PipelineError(
            f"{layout.BASELINES_TEST}: shape {baselines.shape}, not ({rows}, {len(BASELINE_COLUMNS)}) for "
            f"the {rows} test rows"
        )
    column = {name: baselines[:, n] for n, name in enumerate(BASELINE_COLUMNS)}
    raw = raw.astype(np.float64)
    return TestPredictions(
        actual=test.labels.astype(np.float64),
        raw=raw,
        candidate=np.clip(raw, *RATING_RANGE),
        global_mean=column["global_mean"],
        bias=column["bias"],
        user_bias=column["user_bias"],
    )


@dataclass(frozen=True)
class DeployedScores:
    """The deployed run on the candidate's test rows: its id, the rows it knows, its served ratings there."""

    run_id: str
    known: npt.NDArray[np.bool_]
    scores: F64
    """Clipped to the rating range; NaN where not known."""
    problem: str | None = None
    """Why the deployed run could not score the rows (its files are gone or unreadable); None when it did."""


def _folder(uri: str) -> Path:
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise PipelineError(f"the deployed run's run_uri {uri} is not a file:// URI: not a local run")
    return Path(unquote(parsed.path))


def deployed_scores(record_path: Path, run_folder: Path) -> DeployedScores | None:
    """The deployed run's scores of the candidate's test rows; None when no run is deployed."""
    if not record_path.is_file():
        return None
    try:
        record = parse_run_record(record_path.read_bytes(), str(record_path))
    except RecordFormatError as error:
        raise PipelineError(str(error)) from None
    candidate_index = load_index(run_folder / layout.INDEX)
    with (run_folder / layout.TEST_SHARD).open("rb") as shard:
        rows = read_rows([shard], candidate_index, where=layout.TEST_SHARD)
    nothing = np.zeros(len(rows), bool)
    deployed = _folder(record["run_uri"])
    try:
        index = load_index(deployed / layout.INDEX)
        factors = load_factors(deployed / layout.SERVING_FACTORS, features=index.features)
        scored = score_rows(factors, index, rows)
    except (OSError, IndexFormatError, FactorsFormatError, PairsFormatError) as error:
        problem = (
            f"the deployed run {record['run_id']}'s serving factors cannot score the test rows ({error})"
        )
        return DeployedScores(record["run_id"], nothing, np.full(len(rows), np.nan), problem)
    return DeployedScores(record["run_id"], scored.known, np.clip(scored.scores, *RATING_RANGE))


def paired_gate(
    run_folder: Path,
    record_path: Path,
    *,
    min_improvement: float,
    max_regression: float,
) -> tuple[GateDecision, TestPredictions]:
    """The decision on the run's test rows, written to gate.json; and the predictions it was made on."""
    predictions = test_predictions(run_folder)
    deployed = deployed_scores(record_path, run_folder)
    against: tuple[str, F64, F64, F64] | None = None
    if deployed is not None:
        known = deployed.known
        against = (
            deployed.run_id,
            predictions.actual[known],
            predictions.candidate[known],
            deployed.scores[known],
        )
    decision = decide_paired(
        actual=predictions.actual,
        candidate=predictions.candidate,
        global_mean=predictions.global_mean,
        bias=predictions.bias,
        deployed=against,
        min_improvement=min_improvement,
        max_regression=max_regression,
    )
    if deployed is not None and deployed.problem is not None:
        decision["reasons"].append(deployed.problem)
    ranking = run_folder / layout.RANKING
    if ranking.is_file():
        test = json.loads(ranking.read_text()).get("test")
        if test is not None:
            decision["ranking"] = test
    (run_folder / layout.GATE).write_text(json.dumps(decision, indent=1, allow_nan=False) + "\n")
    return decision, predictions
