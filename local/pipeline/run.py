"""One local run's steps (its folder and what it is told, checked, are local/pipeline/start.py's), in the
order the state machine runs them:
prepare data, (--tune: a random search on the validation rows), train FM (its "test" channel the validation
shard) and the title embeddings (then export the title table), export the FM factors (serving/fm/,
ranking.json with the test ranking table, cold_start.json), the paired quality gate on the test rows, then
what the local twin adds: the evaluation (validation and test), serving through the real shims (predictions,
top-N checked against the endpoint, the cold-start experiment), the batch recommendations, the deployment
the gate allows (serving/current.json, only when it deploys), the title map and the report."""

from __future__ import annotations

import json
import resource
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from contract import layout
from contract.algorithms import ENDPOINT_NAMES, FM
from contract.documents import GateDecision, Manifest, RunMetrics
from contract.features import RATING_RANGE
from contract.hyperparameters import HyperparameterError as ContractHyperparameterError
from contract.hyperparameters import check_fm
from jobs.prep.failure import PrepError
from jobs.prep.job import PrepConfig, run_prep
from local import movielens
from local.fm import load_model, predict, read_shards
from local.pipeline import PipelineError
from local.pipeline.cold_start import cold_start_experiment
from local.pipeline.evaluation import paired_table, range_violations
from local.pipeline.gate import TestPredictions, paired_gate
from local.pipeline.recommendations import batch_recommendations, check_recommendations, run_date
from local.pipeline.shims import (
    deploy_models,
    export_serving_files,
    sample_requests,
    serving_environment,
    write_record,
)
from local.pipeline.start import (
    BUNDLED,
    Run,
    blazingtext_table,
    check_cold_start_fraction,
    check_input,
    check_output,
    fm_table,
    load_defaults,
    new_run,
    prep_defaults,
)
from local.pipeline.titles import title_map
from local.pipeline.training import (
    FM_SEED,
    channel_rows,
    export_titles,
    train_fm_job,
    train_title_embeddings_job,
)
from local.pipeline.tuning import TUNE_OPTION, tune, tuning_space
from local.runtime_server import RuntimeServer
from stacks.config import Config, default_context

__all__ = ["run_pipeline"]

RESULTS_FILE = "results.json"
REPORT = "report/"

# ---------------------------------------------------------------------------------------------------------
# Steps


def convert_bundled(run: Run) -> Path:
    folder = run.folder / "input"
    count = movielens.convert(BUNDLED, folder / "movielens.tsv")
    print(f"converted {count:,} MovieLens ratings to the Amazon reviews schema", file=sys.stderr)
    return folder


def prepare(run: Run, input_dir: Path, prep_config: PrepConfig) -> Manifest:
    """The prep job's entrypoint, in-process, writing the run's prep/."""
    try:
        return run_prep(
            input_dir, run.folder / layout.PREP, prep_config, log=lambda m: print(m, file=sys.stderr)
        )
    except PrepError as error:
        raise PipelineError(str(error)) from None


def fm_training_hyperparameters(table: Mapping[str, object], manifest: Manifest) -> dict[str, object]:
    """The run's FM hyperparameters (fm_table), and the two the pipeline sets."""
    return {**table, "feature_dim": manifest["feature_dim"], "predictor_type": "regressor"}


def quality_gate(run: Run, config: Config) -> tuple[GateDecision, TestPredictions]:
    """The gate Lambda's paired decision on the run's test rows (local.pipeline.gate), against the baselines
    and the deployed run if any; gate.json in the run folder."""
    decision, predictions = paired_gate(
        run.folder,
        run.record_path,
        min_improvement=config.gate_min_improvement,
        max_regression=config.gate_max_regression,
    )
    print(f"  gate: {'deploy' if decision['deploy'] else 'reject'}", file=sys.stderr)
    for reason in decision["reasons"]:
        print(f"  gate: {reason}", file=sys.stderr)
    return decision, predictions


def evaluate(run: Run, test: TestPredictions, seed: int) -> None:
    """Validation and test figures side by side: each model's RMSE with its bootstrap interval and FM's
    paired difference from each baseline (FM as served, clipped; and raw), and FM's raw predictions outside
    the rating range on each split (a validation shard without a row is left out)."""
    splits = {}
    if channel_rows(run.folder / layout.VALIDATION):
        rows = read_shards(run.folder / layout.VALIDATION)
        raw = predict(load_model(run.folder / layout.FM_OUTPUT), rows.indptr, rows.indices, rows.values)
        baselines = np.load(run.folder / layout.BASELINES_VALIDATION).astype(np.float64)
        splits["validation"] = (
            rows.labels.astype(np.float64),
            raw.astype(np.float64),
            baselines[:, 0],
            baselines[:, 1],
            baselines[:, 2],
        )
    splits["test"] = (test.actual, test.raw, test.global_mean, test.bias, test.user_bias)
    run.results["rmse_by_split"] = {"validation": {"rows": 0, "rmse": {}, "differences": {}}}
    run.results["range_violations"] = {}
    for split, (actual, raw, mean, bias, user) in splits.items():
        run.results["rmse_by_split"][split] = paired_table(
            actual,
            ("FM (clipped to 1..5, as served)", np.clip(raw, *RATING_RANGE)),
            {"global mean": mean, "user + item bias": bias, "user bias": user, "FM raw (unclipped)": raw},
            seed,
        )
        run.results["range_violations"][split] = range_violations(raw)


def serve(
    run: Run,
    config: Config,
    metrics: RunMetrics,
    *,
    blazingtext_hyperparameters: Mapping[str, object],
    cold_start_fraction: float,
    seed: int,
) -> None:
    """Both models on the local runtime, the shims pointed at the run's own record (shims_record_path, as
    the state machine writes a record), answering sample requests and top-N (checked against the FM
    endpoint); then the cold-start experiment on the same server and shims."""
    results = run.results
    with RuntimeServer() as server:
        with run.step("serve"):
            deploy_models(server, run.folder, ENDPOINT_NAMES)
            write_record(run.shims_record_path, run.folder, run.run_id, metrics)
        record_uri = run.shims_record_path.resolve().as_uri()
        with serving_environment(record_uri, server.url, config) as handlers:
            with run.step("serve"):
                results["samples"] = sample_requests(
                    run.folder, handlers, read_shards(run.folder / layout.TEST)
                )
            with run.step("top-N through the shim"):
                results["recommendations_check"] = check_recommendations(
                    run.folder, handlers, server, ENDPOINT_NAMES[FM], date=run_date(run.folder), seed=seed
                )
            if cold_start_fraction > 0:
                with run.step("cold start experiment"):
                    results["cold_start"] = cold_start_experiment(
                        run_folder=run.folder,
                        record_path=run.shims_record_path,
                        run_id=run.run_id,
                        handlers=handlers,
                        server=server,
                        config=config,
                        hyperparameters=results["fm_hyperparameters"],
                        blazingtext_hyperparameters=blazingtext_hyperparameters,
                        metrics=metrics,
                        fraction=cold_start_fraction,
                        seed=seed,
                    )
                # Leave the record on the run (the experiment switched it).
                write_record(run.shims_record_path, run.folder, run.run_id, metrics)


def tune_step(
    run: Run,
    table: Mapping[str, object],
    manifest: Manifest,
    tuning: tuple[dict[str, dict[str, Any]], int, str],
    seed: int,
) -> dict[str, object]:
    """The random search on the validation rows (local.pipeline.tuning): results' "tuning", and the run's
    FM table with the best trial's values, checked as the run's overrides are (fm_table's rules)."""
    ranges, trials, ranges_from = tuning
    searched = tune(
        run.folder,
        fm_training_hyperparameters(table, manifest),
        ranges,
        trials=trials,
        seed=seed,
        fm_seed=FM_SEED,
    )
    run.results["tuning"] = {**searched, "ranges_from": ranges_from}
    best = {**table, **searched["best"]["hyperparameters"]}
    try:
        check_fm(best)
    except ContractHyperparameterError as error:
        raise PipelineError(f"{TUNE_OPTION}: the best trial's hyperparameters: {error}") from None
    return best


def deploy(run: Run, decision: GateDecision, metrics: RunMetrics) -> None:
    """Honour the gate: a deployed run gets the deployed-run record (serving/current.json, pointing at its
    batch recommendations); a rejected run leaves the record as it was."""
    run.results["deployed"] = decision["deploy"]
    if decision["deploy"]:
        write_record(run.record_path, run.folder, run.run_id, metrics, recommendations=True)
        print(f"  deployed: {run.record_path} names {run.run_id}", file=sys.stderr)
    else:
        print(f"  not deployed: {run.record_path} is left as it was", file=sys.stderr)


# ---------------------------------------------------------------------------------------------------------
# The run


def run_pipeline(
    *,
    input_dir: Path | None,
    output_root: Path,
    fm_overrides: Mapping[str, object],
    cold_start_fraction: float,
    blazingtext_overrides: Mapping[str, object] | None = None,
    prep: PrepConfig | None = None,
    config: Config | None = None,
    seed: int = 42,
    tune_trials: int | None = None,
) -> Run:
    """The whole run; its results (results.json) and report (report/report.md) in the run folder.

    Every setting is checked before any work, a PipelineError naming the option and the value: the
    hyperparameter tables (cdk.json's with the overrides), the cold-start fraction, the input folder, the
    output root. prep defaults to cdk.json's settings (prep_defaults), config to cdk.json's. A run that
    fails leaves nothing behind (new_run). With tune_trials (None: no tuning; 0: fm_tuning.max_jobs or the
    default) a random search on the validation rows chooses FM's hyperparameters first
    (local.pipeline.tuning).
    """
    config = config if config is not None else load_defaults()
    fm_hyperparameters = fm_table(config, fm_overrides)
    bt_hyperparameters = blazingtext_table(config, blazingtext_overrides or {})
    prep_config = prep if prep is not None else prep_defaults(config)
    check_cold_start_fraction(cold_start_fraction)
    if input_dir is not None:
        check_input(input_dir)
    check_output(output_root)
    tuning = None
    if tune_trials is not None:
        ranges, default_trials, ranges_from = tuning_space(default_context())
        if tune_trials < 0:
            raise PipelineError(f"{TUNE_OPTION}: trials must be at least 1, got {tune_trials}")
        tuning = (ranges, tune_trials or default_trials, ranges_from)
    with new_run(output_root) as run:
        _run_steps(
            run,
            input_dir=input_dir,
            config=config,
            prep_config=prep_config,
            fm_hyperparameters=fm_hyperparameters,
            bt_hyperparameters=bt_hyperparameters,
            cold_start_fraction=cold_start_fraction,
            seed=seed,
            tuning=tuning,
        )
    return run


def _run_steps(
    run: Run,
    *,
    input_dir: Path | None,
    config: Config,
    prep_config: PrepConfig,
    fm_hyperparameters: Mapping[str, object],
    bt_hyperparameters: Mapping[str, object],
    cold_start_fraction: float,
    seed: int,
    tuning: tuple[dict[str, dict[str, Any]], int, str] | None,
) -> None:
    results = run.results
    results["run_id"] = run.run_id

    with run.step("prepare data"):
        source = input_dir if input_dir is not None else convert_bundled(run)
        results["input"] = str(input_dir or BUNDLED)
        manifest = prepare(run, source, prep_config)
    results["manifest"] = manifest

    if tuning is not None:
        with run.step("tune FM on validation"):
            fm_hyperparameters = tune_step(run, fm_hyperparameters, manifest, tuning, seed)

    with run.step("train FM"):
        hyperparameters = fm_training_hyperparameters(fm_hyperparameters, manifest)
        results["fm_hyperparameters"] = hyperparameters
        fm_metrics = train_fm_job(run.folder, hyperparameters, "FM (test channel: validation)")
        results["fm_metrics"] = fm_metrics

    with run.step("train title embeddings"):
        results["blazingtext_hyperparameters"] = dict(bt_hyperparameters)
        train_title_embeddings_job(run.folder, bt_hyperparameters, "BlazingText (FastText)")
        results["title_table"] = export_titles(run.folder)

    with run.step("export FM factors"):
        export_serving_files(run.folder, neighbours=config.serving_neighbours)
        results["ranking"] = json.loads((run.folder / layout.RANKING).read_text())
        results["cold_start_choice"] = json.loads((run.folder / layout.COLD_START).read_text())

    with run.step("quality gate"):
        decision, test_predictions = quality_gate(run, config)
        results["gate"] = decision

    with run.step("evaluate"):
        evaluate(run, test_predictions, seed)

    baselines = manifest["baselines"]
    metrics: RunMetrics = {
        "fm_test_rmse": decision["fm_test_rmse"],
        "baseline_global_mean_rmse": baselines["global_mean"]["rmse"],
        "baseline_bias_rmse": baselines["bias"]["rmse"],
    }
    serve(
        run,
        config,
        metrics,
        blazingtext_hyperparameters=bt_hyperparameters,
        cold_start_fraction=cold_start_fraction,
        seed=seed,
    )

    with run.step("batch recommendations"):
        results["batch_recommendations"] = batch_recommendations(
            run.folder,
            date=run_date(run.folder),
            popularity_weight=float(results["ranking"]["popularity_weight"]),
        )

    results["recommendations_folder"] = str(run.folder / layout.RECOMMENDATIONS)
    results["record"] = str(run.record_path)
    with run.step("deploy"):
        deploy(run, decision, metrics)

    with run.step("title map"):
        results["title_map"] = title_map(run.folder, read_shards(run.folder / layout.TRAIN), seed)

    results["timings_s"] = run.timings
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    (run.folder / RESULTS_FILE).write_text(json.dumps(results, indent=1, default=str))
    from local.pipeline.report import write_report  # noqa: PLC0415 -- matplotlib only when a report is written

    results["report"] = str(write_report(run.folder / REPORT, results))
