"""The run layout: keys, URIs and the patterns IAM grants name."""

from __future__ import annotations

import re

import pytest

from contract import layout


def test_keys_of_a_run() -> None:
    assert layout.run_prefix("r1") == "runs/r1/"
    assert layout.run_key("r1", layout.MANIFEST) == "runs/r1/prep/manifest.json"
    assert layout.run_key("r1", layout.GATE) == "runs/r1/gate.json"
    assert layout.RUN_RECORD_KEY == "serving/current.json"
    assert not layout.RUN_RECORD_KEY.startswith(layout.RUNS_PREFIX)  # beside runs/, not in a run


def test_grant_patterns() -> None:
    assert layout.any_run() == "runs/*"
    assert layout.any_run(layout.INDEX) == "runs/*/prep/index/*"
    assert layout.any_run(layout.SERVING) == "runs/*/serving/*"
    assert layout.any_run(layout.GATE) == "runs/*/gate.json"
    assert layout.any_run(layout.MANIFEST) == "runs/*/prep/manifest.json"
    assert layout.any_run(layout.SERVING_FACTORS) == "runs/*/serving/fm/*"
    assert layout.any_run(layout.RECOMMENDATIONS) == "runs/*/recommendations/*"


def test_uris_under_a_run() -> None:
    assert layout.under("s3://b/runs/r1/", layout.INDEX) == "s3://b/runs/r1/prep/index/"
    assert layout.under("s3://b/runs/r1", "gate.json") == "s3://b/runs/r1/gate.json"
    assert layout.under("file:///tmp/runs/r1/", layout.MANIFEST) == "file:///tmp/runs/r1/prep/manifest.json"


def test_paths_in_the_prep_folder() -> None:
    assert layout.in_prep(layout.TRAIN) == "train/"
    assert layout.in_prep(layout.CORPUS_FILE) == "corpus/corpus.txt"
    with pytest.raises(ValueError, match=re.escape("'gate.json' is not under prep/")):
        layout.in_prep(layout.GATE)


def test_every_folder_ends_with_a_slash_and_every_file_does_not() -> None:
    folders = [layout.PREP, layout.TRAIN, layout.TEST, layout.CORPUS, layout.INDEX]
    folders += [layout.FM_OUTPUT, layout.BLAZINGTEXT_OUTPUT, layout.SERVING]
    folders += [layout.SERVING_FACTORS, layout.RECOMMENDATIONS, layout.VALIDATION, layout.BASELINES]
    files = [layout.MANIFEST, layout.CORPUS_FILE, layout.GATE, layout.TEST_SHARD, layout.VALIDATION_SHARD]
    files += [layout.BASELINES_TEST, layout.BASELINES_VALIDATION]
    files += [layout.SERVING_FACTORS_MANIFEST, layout.RECOMMENDATIONS_MANIFEST]
    assert all(f.endswith("/") for f in folders)
    assert not any(f.endswith("/") for f in files)


def test_the_serving_factors_sit_beside_the_title_table_and_their_manifests_in_their_folders() -> None:
    assert layout.SERVING_FACTORS.startswith(layout.SERVING)
    assert layout.SERVING_FACTORS_MANIFEST.startswith(layout.SERVING_FACTORS)
    assert layout.RECOMMENDATIONS_MANIFEST.startswith(layout.RECOMMENDATIONS)
    assert layout.run_key("r1", layout.SERVING_FACTORS_MANIFEST) == "runs/r1/serving/fm/factors.json"


def test_the_recommend_job_reads_and_writes_processing_paths() -> None:
    inputs = (layout.RECOMMEND_CONTAINER_FACTORS, layout.RECOMMEND_CONTAINER_INDEX)
    assert all(p.startswith("/opt/ml/processing/input/") for p in inputs)
    assert layout.RECOMMEND_CONTAINER_OUTPUT.startswith("/opt/ml/processing/output/")
    assert len({*inputs, layout.CONTAINER_INPUT}) == 3  # distinct mounts


def test_each_shard_lies_in_its_channel_and_the_baseline_predictions_in_neither() -> None:
    assert layout.in_prep(layout.TEST_SHARD) == "test/part-00000.rio"
    assert layout.in_prep(layout.VALIDATION_SHARD) == "validation/part-00000.rio"
    assert layout.in_prep(layout.BASELINES_TEST) == "baselines/test.npy"
    assert layout.in_prep(layout.BASELINES_VALIDATION) == "baselines/validation.npy"
    channels = (layout.TRAIN, layout.TEST, layout.VALIDATION)
    for path in (layout.BASELINES_TEST, layout.BASELINES_VALIDATION):
        assert path.startswith(layout.BASELINES)
        assert not any(path.startswith(channel) for channel in channels), path
