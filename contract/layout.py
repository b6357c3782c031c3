"""Where a run's files live. One run is one folder, `runs/<run-id>/`, in the data bucket and, with the same
layout, under the local twin's output folder; the deployed-run record sits beside `runs/`.

Paths inside a run are relative (`prep/index/`); folders end with "/". The helpers build what each side needs
from them: object keys, URIs under a run's URI, the object-key patterns that IAM grants name, and the
container paths of the prep job.
"""

from __future__ import annotations

RAW_INPUT_SUFFIXES = (".tsv", ".tsv.gz")
"""The raw reviews: every non-hidden file with one of these suffixes under the raw-data prefix."""

RUNS_PREFIX = "runs/"
RUN_RECORD_KEY = "serving/current.json"
"""The deployed-run record: which run serves now (documents.RunRecord). Beside runs/, not in a run."""

# Inside runs/<run-id>/.
PREP = "prep/"
MANIFEST = "prep/manifest.json"
TRAIN = "prep/train/"
TEST = "prep/test/"
TEST_SHARD = "prep/test/part-00000.rio"
"""The test rows, one shard: touched only by the gate and the final report."""
VALIDATION = "prep/validation/"
"""One shard: every choice (tuning, early stopping, blend weights, shrinkage) is made on it; test rows give
the final figure and the gate only. FM's training job takes it as its "test" channel."""
VALIDATION_SHARD = "prep/validation/part-00000.rio"
BASELINES = "prep/baselines/"
"""What the baselines predict for every test and validation row (documents.BaselinePredictions): one .npy
file per shard, row i predicting the shard's row i. Beside the shards, not in their folders: an FM channel
reads every object under its prefix."""
BASELINES_TEST = "prep/baselines/test.npy"
BASELINES_VALIDATION = "prep/baselines/validation.npy"
CORPUS = "prep/corpus/"
CORPUS_FILE = "prep/corpus/corpus.txt"
INDEX = "prep/index/"
FM_OUTPUT = "fm/"
BLAZINGTEXT_OUTPUT = "blazingtext/"
SERVING = "serving/"
"""What the shims load besides the index: the title table (titles.txt, titles.f32, titles.json) and, under
fm/, the FM factors for top-N (SERVING_FACTORS)."""
TITLE_TABLE_FILES = ("titles.txt", "titles.f32", "titles.json")
HELD_OUT_TITLE_FILES = ("held_out_titles.txt", "held_out_titles.f32", "held_out_titles.json")
"""The held-out titles' vectors (contract.index.held_out_title), built from their n-grams as a new title's
are, in the title table's format: what the cold start's shrinkage is chosen on."""
SERVING_FACTORS = "serving/fm/"
"""FM's parameters laid out for top-N scoring (fm/factors.py writes and reads them): items.npy and
customers.npy (one row per product / customer: its factors, its linear weight and its precomputed product
with the time feature's factors), time_factor.npy, the reviewed products per customer (reviewed_indptr.npy,
reviewed_indices.npy: CSR), popularity.npy (review counts), and factors.json, written last."""
SERVING_FACTORS_MANIFEST = "serving/fm/factors.json"
COLD_START = "serving/cold_start.json"
"""The cold start's shrinkage (fm/coldstart.py), chosen on the validation rows."""
RANKING = "serving/ranking.json"
"""The top-N ranking's popularity weight (fm/ranking.py), chosen on the validation rows."""
RECOMMENDATIONS = "recommendations/"
"""Batch top-k for every customer (jobs/recommend): gzipped JSON Lines shards part-NNNNN.jsonl.gz and
manifest.json, written last."""
RECOMMENDATIONS_MANIFEST = "recommendations/manifest.json"
GATE = "gate.json"
TEST_PREDICTIONS = "predictions/test/"
"""The candidate FM's predictions of the test rows: the quality gate's Batch Transform job writes, for the
test shard, part-00000.rio.out (TEST_PREDICTIONS_FILE): JSON Lines, one {"score": x} per record, line i
for the shard's record i."""
TEST_PREDICTIONS_FILE = TEST_PREDICTIONS + TEST_SHARD.rsplit("/", 1)[1] + ".out"
"""Batch Transform names an input object's output after it, ".out" appended (API_TransformOutput.html)."""

# The prep job's container (SageMaker Processing mounts the input and uploads the output folder).
CONTAINER_INPUT = "/opt/ml/processing/input/reviews"
CONTAINER_OUTPUT = "/opt/ml/processing/output/prep"
CONTAINER_FAILURE_MESSAGE = "/opt/ml/output/message"
"""SageMaker Processing copies the first 1 KB of this file into DescribeProcessingJob's ExitMessage."""

# The batch recommendations job's container (the prep image, entrypoint python -m jobs.recommend): the run's
# serving/fm/ and prep/index/ come in, recommendations/ goes out; failures use CONTAINER_FAILURE_MESSAGE.
RECOMMEND_CONTAINER_FACTORS = "/opt/ml/processing/input/factors"
RECOMMEND_CONTAINER_INDEX = "/opt/ml/processing/input/index"
RECOMMEND_CONTAINER_OUTPUT = "/opt/ml/processing/output/recommendations"


def run_prefix(run_id: str) -> str:
    """The key prefix of one run: runs/<run-id>/."""
    return f"{RUNS_PREFIX}{run_id}/"


def run_key(run_id: str, path: str) -> str:
    """The object key of a path in a run, e.g. run_key("r1", MANIFEST) = runs/r1/prep/manifest.json."""
    return run_prefix(run_id) + path


def any_run(path: str = "") -> str:
    """The key pattern of a path in every run, as IAM grants name it: runs/*/<path>, a folder's objects as
    runs/*/<folder>/*, every object of every run as runs/*."""
    if not path:
        return f"{RUNS_PREFIX}*"
    return f"{RUNS_PREFIX}*/{path}{'*' if path.endswith('/') else ''}"


def under(base_uri: str, path: str) -> str:
    """A path under a folder URI (s3:// or file://, with or without its trailing slash)."""
    return base_uri.rstrip("/") + "/" + path


def in_prep(path: str) -> str:
    """A prep/ path relative to the prep folder (what the prep job writes under its output folder)."""
    if not path.startswith(PREP):
        raise ValueError(f"{path!r} is not under {PREP}")
    return path[len(PREP) :]
