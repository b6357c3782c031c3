"""The serving-data export on the hand-made run of tests/fm/topn_support.py (every figure worked out there and
below), in a folder, through a writer, and through the Lambda handler on file:// and on moto's S3."""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from moto import mock_aws

from contract import layout
from contract.features import TimeTransform
from contract.index import ServingIndex, index_files, parse_index
from fm.artifact import FmParameters, write_fm_artifact
from fm.coldstart import Shrinkage
from fm.factors import FACTORS_FILES, load_factors
from fm.ranking import Ranking
from lambdas.kit import clients
from lambdas.kit.errors import ConfigError, LoftrecError, ServingDataError
from lambdas.pipeline import export_factors
from lambdas.pipeline.export_factors import export_serving_data
from lambdas.pipeline.serving_choices import title_neighbours
from lambdas.serving.vectors import TitleTable, parse_title_table
from tests.fm.topn_support import (
    FEATURES,
    TEST_ROWS,
    TRAIN_ROWS,
    VALIDATION_ROWS,
    factors,
    random_parameters,
    shard,
    title_table_files,
    write_export_run,
)

NDCG_SECOND = 1 / math.log2(3)  # the held-out product second of two
SERVING_FILES = [
    layout.COLD_START,
    layout.RANKING,
    *(layout.SERVING_FACTORS + name for name in FACTORS_FILES),
]


def titles(without: str | None = None, names: tuple[str, str, str] = layout.TITLE_TABLE_FILES) -> TitleTable:
    files = title_table_files(without, names)
    return parse_title_table(*(files[name] for name in names))


def channel(run: Path, folder: str) -> list[Path]:
    return sorted((run / folder).iterdir())


def export(run: Path, index: ServingIndex, **overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "model": run / "fm" / "model.tar.gz",
        "index": index,
        "train": channel(run, layout.TRAIN),
        "validation": channel(run, layout.VALIDATION),
        "test": channel(run, layout.TEST),
        "titles": titles(),
        "held_out_titles": titles(names=layout.HELD_OUT_TITLE_FILES),
        "output": run,
        "neighbours": 2,
    }
    arguments.update(overrides)
    return export_serving_data(**arguments)


@pytest.fixture
def run(tmp_path: Path) -> tuple[Path, ServingIndex]:
    folder = tmp_path / "runs" / "r1"
    return folder, write_export_run(folder)


# ---------------------------------------------------------------------------------------------- the function


def test_the_factors_exclude_and_count_every_prep_row(run: tuple[Path, ServingIndex]) -> None:
    folder, index = run
    summary = export(folder, index)
    served = load_factors(folder / layout.SERVING_FACTORS, features=index.features)
    # Train: C1 P3, P0; C2 P1, P0 (twice). Validation: C1 P1, C2 P3. Test: C1 P2.
    assert served.reviewed(0).tolist() == [0, 1, 2, 3]
    assert served.reviewed(1).tolist() == [0, 1, 3]
    assert served.popularity.tolist() == [3, 2, 1, 2]
    assert served.reviewed_rows == len(TRAIN_ROWS) + len(VALIDATION_ROWS) + len(TEST_ROWS) == 8
    np.testing.assert_array_equal(served.items, factors().items)  # the model's parameters, laid out
    np.testing.assert_array_equal(served.customers, factors().customers)
    assert summary["reviewed_rows"] == {"train": 5, "validation": 2, "test": 1}
    assert summary["reviewed_pairs"] == 7
    assert summary["files"] == SERVING_FILES  # factors.json last


def test_the_popularity_weight_is_chosen_on_validation_among_products_not_reviewed_in_train(
    run: tuple[Path, ServingIndex],
) -> None:
    folder, index = run
    summary = export(folder, index)
    ranking = json.loads((folder / layout.RANKING).read_text())
    # Train popularity P0 3, P1 1, P2 0, P3 1. At t 0, C1 (train: P0, P3) holds out P1 among P1, P2:
    # P1 3.7 + w log 2 vs P2 4.05, first once w > 0.505. C2 (train: P0, P1) holds out P3 among P2, P3:
    # P3 1.75 + w log 2 vs P2 3.3, first once w > 2.236. So NDCG@10: both second up to 0.5, C1 first from
    # 0.75 to 2, both first from 3 (the smallest of the equals). Counting the validation rows in the
    # popularity (P1 2, P3 2, P2 0 + the test review 1) would move both thresholds and choose 5.
    grid = {entry["weight"]: entry["ndcg@10"] for entry in ranking["grid"]}
    assert grid[0.0] == grid[0.5] == pytest.approx(NDCG_SECOND)
    assert grid[0.75] == grid[2.0] == pytest.approx((1 + NDCG_SECOND) / 2)
    assert grid[3.0] == grid[10.0] == 1.0
    assert Ranking.from_json((folder / layout.RANKING).read_bytes()) == Ranking(3.0)
    assert ranking["chosen_on"] == "validation"
    assert (ranking["metric"], ranking["rows"], ranking["validation_rows"]) == ("ndcg@10", 2, 2)
    assert ranking["most_popular"] == {"recall@10": 1.0, "ndcg@10": 1.0}  # P1 over P2, P3 over P2
    assert ranking["versus"]["fm_alone"]["mean"] == pytest.approx(1 - NDCG_SECOND)
    assert summary["ranking"] == {
        "popularity_weight": 3.0,
        "rows": 2,
        "ndcg@10": 1.0,
        "fm_alone": pytest.approx(NDCG_SECOND),
        "most_popular": 1.0,
    }


def test_the_test_table_ranks_among_what_train_and_validation_leave(run: tuple[Path, ServingIndex]) -> None:
    folder, index = run
    export(folder, index)
    table = json.loads((folder / layout.RANKING).read_text())["test"]
    # The test row C1 P2 (t 1): C1 reviewed P3, P0 in train and P1 in validation, so P2 is the only
    # candidate and every ranking finds it first. (Excluding train alone would leave P1 too, which is more
    # popular than P2: most-popular and random would lose it.)
    assert (table["rows"], table["test_rows"], table["popularity_weight"]) == (1, 1, 3.0)
    assert set(table["rankings"]) == {"fm", "fm_popularity", "most_popular", "random"}
    for figures in table["rankings"].values():
        assert figures["recall@10"] == figures["ndcg@10"] == {"mean": 1.0, "interval": [1.0, 1.0]}
    assert table["differences"]["fm_popularity - most_popular"]["ndcg@10"]["mean"] == 0.0


def test_the_test_table_counts_popularity_on_train_and_validation(run: tuple[Path, ServingIndex]) -> None:
    folder, index = run
    export(folder, index, validation=[("empty.rio", shard([]))])
    table = json.loads((folder / layout.RANKING).read_text())["test"]
    # No validation rows: C1's candidates are P1 and P2. FM at t 1: P2 4.8 over P1 4.4, first. Popularity
    # (train): P1 1 over P2 0, so P2 second. Random: the two tie. The weight defaults to 0.
    figures = {name: table["rankings"][name]["ndcg@10"]["mean"] for name in table["rankings"]}
    assert figures == {
        "fm": 1.0,
        "fm_popularity": 1.0,
        "most_popular": pytest.approx(NDCG_SECOND),
        "random": pytest.approx((1 + NDCG_SECOND) / 2),
    }
    assert table["rankings"]["random"]["recall@10"]["mean"] == 1.0
    difference = table["differences"]["fm - most_popular"]["ndcg@10"]
    assert difference["mean"] == pytest.approx(1 - NDCG_SECOND)
    assert difference["interval"] == [pytest.approx(1 - NDCG_SECOND)] * 2  # one customer: every draw alike


def test_two_test_rows_of_one_customer_are_an_error_naming_the_test_shard(
    run: tuple[Path, ServingIndex],
) -> None:
    folder, index = run
    with pytest.raises(ServingDataError, match=r"^twice\.rio: .*more than one held-out row"):
        export(folder, index, test=[("twice.rio", shard([(0, 2, 1.0), (0, 1, 0.5)]))])


def test_title_neighbours_leave_the_products_own_title_out(run: tuple[Path, ServingIndex]) -> None:
    _, index = run
    # one (0.6, 0.8): two 0.96, three 0.8, zero 0.6. three (0, 1): one 0.8, two 0.6, zero 0 (not kept).
    rows, sims, has_vector = title_neighbours(index, titles(), np.array([1, 3]), 3)
    assert rows.tolist() == [[2, 3, 0], [1, 2, -1]]
    np.testing.assert_allclose(sims, [[0.96, 0.8, 0.6], [0.8, 0.6, 0.0]], atol=1e-6)
    assert has_vector.tolist() == [True, True]


def test_title_neighbours_are_what_the_shims_title_search_answers() -> None:
    rng = np.random.default_rng(3)
    count, dim = 700, 6
    product_titles = [f"Title {i}" for i in range(count)]
    vectors = rng.standard_normal((count, dim)).astype(np.float32)
    vectors[5] = vectors[4]  # a tie: the lower table row first
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    # The table lacks title 7 (no vector) and holds a title that is no product's.
    tokens = [f"title-{i}" for i in range(count) if i != 7] + ["not-a-product"]
    matrix = np.concatenate([np.delete(vectors, 7, axis=0), vectors[:1]])
    table = TitleTable(tokens=tokens, matrix=matrix, rows={t: n for n, t in enumerate(tokens)})
    files = index_files(
        customer_ids=["C1"],
        first_review_days=[0],
        product_ids=[f"P{i}" for i in range(count)],
        titles=product_titles,
        time_transform=TimeTransform(100),
        global_mean=4.0,
    )
    index = parse_index(files["index.json"], files["customers.tsv"], files["products.tsv"])
    products = np.arange(count)
    rows, sims, has_vector = title_neighbours(index, table, products, 10)
    assert has_vector.tolist() == [p != 7 for p in range(count)]
    for p in products.tolist():
        if p == 7:
            assert rows[p].tolist() == [-1] * 10
            continue
        token = f"title-{p}"
        (answer,) = table.nearest([table.matrix[table.rows[token]]], 10, exclude=[token])
        expected = [(index.title_rows[t], s) for t, s in answer if s > 0 and t in index.title_rows]
        got = [(int(r), float(s)) for r, s in zip(rows[p], sims[p], strict=True) if r >= 0]
        assert [r for r, _ in got] == [r for r, _ in expected], p
        np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], atol=1e-6)


# Every prep row reviews P0 3 times, P1 2, P2 1, P3 2: the typical product is v (0.46875, -0.09375), w 0.125.
# Validation, each product treated as new: C1 on P1, neighbours P2 (similarity 0.96, w + <v_C1, v> = 0.55)
# and P3 (0.8, 1.0), mass 1.76, their average's item side 0.7545 against the typical product's 0.59375;
# C2 on P3, neighbours P1 (0.8, 0.7) and P2 (0.6, 0.55), mass 1.4, 0.6357 against 0.03125. Every train
# rating is 4: the base (mu + b_u) is 4 for both customers.
ITEM_C1 = (0.96 * 0.55 + 0.8 * 1.0) / 1.76 - (0.125 + 0.46875)
ITEM_C2 = (0.8 * 0.7 + 0.6 * 0.55) / 1.4 - (0.125 - 0.09375)


def test_neighbours_that_do_not_beat_the_user_bias_on_validation_get_no_weight(
    run: tuple[Path, ServingIndex],
) -> None:
    folder, index = run
    summary = export(folder, index)
    document = json.loads((folder / layout.COLD_START).read_text())
    # Validation ratings 4 (C1) and 3 (C2): the base errs by 0 and 1; the neighbours push both up, away.
    assert Shrinkage.from_json((folder / layout.COLD_START).read_bytes()) == Shrinkage(1e9, 0.0)
    assert document["base_rmse"] == pytest.approx(math.sqrt(0.5), abs=1e-6)
    assert document["rmse"] == document["base_rmse"]
    assert document["versus_base"] is None and document["never_loses"] is True
    assert (document["rows"], document["validation_rows"], document["neighbours"]) == (2, 2, 2)
    assert document["rows_not_held_out"] == document["rows_without_neighbour"] == 0
    assert len(document["grid"]) == 45  # 9 alphas x 5 minimum similarities
    full = next(g for g in document["grid"] if g["alpha"] == 0 and g["min_similarity"] == 0)
    errors = (ITEM_C1, 1 + ITEM_C2)
    assert full["rmse"] == pytest.approx(math.hypot(*errors) / math.sqrt(2), abs=1e-5)  # float32 vectors
    assert all("interval" not in g for g in document["grid"])  # none beats the base's RMSE
    assert "held_out_title" in document["method"] and "user-bias" in document["base"]
    assert summary["cold_start"]["alpha"] == 1e9
    base = load_factors(folder / layout.SERVING_FACTORS)
    assert base.base_mean == pytest.approx(4.0) and base.customer_base.tolist() == [4.0, 4.0]


def test_neighbours_that_beat_the_user_bias_on_every_resample_are_trusted(
    run: tuple[Path, ServingIndex],
) -> None:
    folder, index = run
    # Validation ratings where the full blend is right: the base errs by ITEM_C1 and ITEM_C2 on both rows
    # of every resample, the blend by float32 noise: the paired interval is wholly below 0.
    ratings = [4 + ITEM_C1, 4 + ITEM_C2]
    summary = export(folder, index, validation=[("v.rio", shard(VALIDATION_ROWS, ratings=ratings))])
    document = json.loads((folder / layout.COLD_START).read_text())
    # min_similarity 0 to 0.6 keep every neighbour (ties go to the larger); 0.8 drops C2's P2.
    assert Shrinkage.from_json(json.dumps(document)) == Shrinkage(0.0, 0.6)
    assert document["rmse"] == pytest.approx(0.0, abs=1e-5)
    assert document["base_rmse"] == pytest.approx(math.hypot(ITEM_C1, ITEM_C2) / math.sqrt(2), abs=1e-5)
    versus = document["versus_base"]
    assert versus["relative"] == pytest.approx(-1.0, abs=1e-4) and versus["interval"][1] < 0
    assert summary["cold_start"]["alpha"] == 0.0


def test_only_products_with_a_held_out_title_choose_the_shrinkage(run: tuple[Path, ServingIndex]) -> None:
    folder, index = run
    export(folder, index, held_out_titles=titles(without="three", names=layout.HELD_OUT_TITLE_FILES))
    document = json.loads((folder / layout.COLD_START).read_text())
    assert (document["rows"], document["rows_not_held_out"]) == (1, 1)


def test_without_a_held_out_title_the_cold_start_is_the_user_bias_answer(
    run: tuple[Path, ServingIndex],
) -> None:
    folder, index = run
    # The ratings that make the neighbours exact (the test below) do not matter without held-out titles.
    ratings = [4 + ITEM_C1, 4 + ITEM_C2]
    validation = [("v.rio", shard(VALIDATION_ROWS, ratings=ratings))]
    for held in (None, parse_title_table(b"", b"", b'{"dim": 2, "count": 0}')):
        export(folder, index, validation=validation, held_out_titles=held)
        document = json.loads((folder / layout.COLD_START).read_text())
        assert Shrinkage.from_json(json.dumps(document)).alpha == 1e9
        assert (document["chosen_on"], document["rows"], document["rows_not_held_out"]) == ("default", 0, 2)
        assert "held-out title" in document["reason"]


def test_an_empty_validation_shard_gives_the_cautious_defaults(run: tuple[Path, ServingIndex]) -> None:
    folder, index = run
    summary = export(folder, index, validation=[("empty.rio", shard([]))])
    ranking = json.loads((folder / layout.RANKING).read_text())
    cold_start = json.loads((folder / layout.COLD_START).read_text())
    assert (ranking["popularity_weight"], ranking["chosen_on"], ranking["rows"]) == (0.0, "default", 0)
    assert Shrinkage.from_json(json.dumps(cold_start)).alpha == 1e9  # the user-bias prediction alone
    assert cold_start["chosen_on"] == "default"
    assert summary["reviewed_rows"]["validation"] == 0


def test_a_writer_gets_the_same_files_in_order_factors_json_last(run: tuple[Path, ServingIndex]) -> None:
    folder, index = run
    export(folder, index)
    written: list[tuple[str, bytes]] = []
    export(folder, index, output=lambda path, data: written.append((path, bytes(data))))
    assert [path for path, _ in written] == SERVING_FILES
    for path, data in written:
        assert (folder / path).read_bytes() == data, path


def test_the_choices_are_the_same_from_bytes_and_streams(run: tuple[Path, ServingIndex]) -> None:
    folder, index = run
    export(folder, index)
    expected = {path: (folder / path).read_bytes() for path in SERVING_FILES}
    written: dict[str, bytes] = {}
    export(
        folder,
        index,
        model=("model", io.BytesIO((folder / "fm" / "model.tar.gz").read_bytes())),
        train=[("train", io.BytesIO(p.read_bytes())) for p in channel(folder, layout.TRAIN)],
        validation=[p.read_bytes() for p in channel(folder, layout.VALIDATION)],
        test=[io.BytesIO(p.read_bytes()) for p in channel(folder, layout.TEST)],
        output=lambda path, data: written.update({path: bytes(data)}),
    )
    assert written == expected


# ---------------------------------------------------------------------------------------------- bad input


def test_a_damaged_validation_shard_is_one_error_naming_it(run: tuple[Path, ServingIndex]) -> None:
    folder, index = run
    bad = folder / layout.VALIDATION / "part-00000.rio"
    bad.write_bytes(b"not a RecordIO file")
    with pytest.raises(ServingDataError, match=f"^{re.escape(str(bad))}: "):
        export(folder, index)


def test_two_validation_rows_of_one_customer_are_an_error_naming_the_shard(
    run: tuple[Path, ServingIndex],
) -> None:
    folder, index = run
    (folder / layout.VALIDATION / "part-00000.rio").write_bytes(shard([(0, 1, 0.0), (0, 2, 0.0)]))
    with pytest.raises(
        ServingDataError, match=re.escape("part-00000.rio: a customer has more than one held-out row")
    ):
        export(folder, index)


def test_a_model_of_another_run_is_an_error_naming_the_model(run: tuple[Path, ServingIndex]) -> None:
    folder, index = run
    other = folder / "fm" / "other.tar.gz"
    params: FmParameters = random_parameters(type(FEATURES)(3, 4), 2, seed=1)
    write_fm_artifact(other, params, {"predictor_type": "regressor"})
    with pytest.raises(ServingDataError, match=f"^{re.escape(str(other))}: the model has feature_dim 8"):
        export(folder, index, model=other)
    (folder / "fm" / "empty.tar.gz").write_bytes(b"")
    with pytest.raises(ServingDataError, match=re.escape("empty.tar.gz: not an FM model artifact")):
        export(folder, index, model=folder / "fm" / "empty.tar.gz")


def test_a_train_shard_of_another_index_is_an_error_naming_it(run: tuple[Path, ServingIndex]) -> None:
    folder, index = run
    wide = type(FEATURES)(3, 4)
    with pytest.raises(
        ServingDataError, match="^" + re.escape("train shard 0: feature_dim 8, the index's is 7")
    ):
        export(folder, index, train=[shard([(0, 0, 0.0)], wide)])


# ---------------------------------------------------------------------------------------------- the Lambda


@pytest.fixture
def lambda_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("NEIGHBOURS", "2")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    export_factors.settings.cache_clear()
    yield
    export_factors.settings.cache_clear()


def expected_files(tmp_path: Path) -> dict[str, bytes]:
    """The files the function writes into a folder for the hand-made run."""
    reference = tmp_path / "reference"
    export(reference, write_export_run(reference))
    return {path: (reference / path).read_bytes() for path in SERVING_FILES}


@pytest.mark.usefixtures("lambda_environment")
def test_the_handler_on_a_file_uri_writes_what_the_function_writes(
    run: tuple[Path, ServingIndex], tmp_path: Path
) -> None:
    folder, _ = run
    event = {
        "model_artifact_uri": (folder / "fm" / "model.tar.gz").as_uri(),
        "run_uri": folder.as_uri() + "/",
    }
    summary = export_factors.handler(event, None)
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary  # the state's output is JSON
    assert summary["serving_uri"] == folder.as_uri() + "/serving/"
    assert summary["ranking"]["popularity_weight"] == 3.0
    assert summary["cold_start"]["alpha"] == 1e9
    for path, data in expected_files(tmp_path).items():
        assert (folder / path).read_bytes() == data, path


@pytest.mark.usefixtures("lambda_environment")
def test_the_handler_names_what_is_missing_or_malformed(run: tuple[Path, ServingIndex]) -> None:
    folder, _ = run
    model, run_uri = (folder / "fm" / "model.tar.gz").as_uri(), folder.as_uri()
    event = {"model_artifact_uri": model, "run_uri": run_uri}
    for bad, problem in (
        ([], "event must be an object with model_artifact_uri and run_uri"),
        ({"model_artifact_uri": model}, "event.run_uri is None: an s3://bucket/key or file:///path URI"),
        ({**event, "run_uri": "runs/r1"}, "event.run_uri is 'runs/r1'"),
        ({**event, "model_artifact_uri": model + ".missing"}, f"{model}.missing: missing"),
    ):
        with pytest.raises(ServingDataError, match=f"^{re.escape(problem)}"):
            export_factors.handler(bad, None)
    (folder / layout.TEST / "part-00000.rio").rename(folder / layout.TEST / ".part-00000.rio.partial")
    with pytest.raises(ServingDataError, match=re.escape(f"{run_uri}/prep/test/: no shards")):
        export_factors.handler(event, None)
    (folder / layout.SERVING / "titles.json").write_text("{}")
    with pytest.raises(
        ServingDataError, match=re.escape(f"{run_uri}/serving/: titles.json: not {{dim, count}}")
    ):
        export_factors.handler(event, None)
    (folder / layout.SERVING / "titles.json").unlink()
    with pytest.raises(ServingDataError, match=re.escape(f"{run_uri}/serving/titles.json: missing")):
        export_factors.handler(event, None)
    (folder / layout.INDEX / "index.json").write_text("[")
    with pytest.raises(ServingDataError, match=re.escape(f"{run_uri}/prep/index/: index.json: not JSON")):
        export_factors.handler(event, None)
    assert issubclass(ServingDataError, LoftrecError)
    assert not (folder / layout.SERVING_FACTORS_MANIFEST).exists()  # nothing was written


def test_a_bad_setting_is_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEIGHBOURS", "0")
    export_factors.settings.cache_clear()
    with pytest.raises(
        ConfigError, match=re.escape("NEIGHBOURS='0' is not allowed: an integer from 1 to 100")
    ):
        export_factors.settings()
    monkeypatch.delenv("NEIGHBOURS")
    export_factors.settings.cache_clear()
    assert export_factors.settings() == export_factors.ExportSettings(neighbours=10, ranking_customers=10_000)
    export_factors.settings.cache_clear()


@pytest.fixture
def bucket(monkeypatch: pytest.MonkeyPatch, lambda_environment: None) -> Iterator[Any]:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    clients.client.cache_clear()
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="data")
        yield s3
    clients.client.cache_clear()


def test_the_handler_on_s3_uploads_what_the_function_writes(
    bucket: Any, run: tuple[Path, ServingIndex], tmp_path: Path
) -> None:
    folder, _ = run
    for local in sorted(p for p in folder.rglob("*") if p.is_file()):
        bucket.put_object(Bucket="data", Key=f"runs/r1/{local.relative_to(folder)}", Body=local.read_bytes())
    event = {"model_artifact_uri": "s3://data/runs/r1/fm/model.tar.gz", "run_uri": "s3://data/runs/r1/"}
    summary = export_factors.handler(event, None)
    assert summary["serving_uri"] == "s3://data/runs/r1/serving/"
    for path, data in expected_files(tmp_path).items():
        stored = bucket.get_object(Bucket="data", Key=f"runs/r1/{path}")
        assert stored["Body"].read() == data, path
        kind = "application/json" if path.endswith(".json") else "application/octet-stream"
        assert stored["ContentType"] == kind
    bucket.delete_object(Bucket="data", Key="runs/r1/prep/validation/part-00000.rio")
    with pytest.raises(ServingDataError, match=re.escape("s3://data/runs/r1/prep/validation/: no shards")):
        export_factors.handler(event, None)


def test_no_validation_shard_reads_as_no_rows() -> None:
    from lambdas.pipeline.export_factors import _records  # noqa: PLC0415 -- the helper under test

    records = _records([], feature_dim=7)
    assert records.labels.shape == (0,) and records.indptr.tolist() == [0]
