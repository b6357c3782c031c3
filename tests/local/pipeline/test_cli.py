"""python -m local.pipeline: its help under its real name, every option of the prep job, hyperparameters
merged key by key (through the Makefile's own command line), and every bad argument as one line before any
work, leaving nothing behind."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from contract.documents import RunMetrics
from jobs.prep.__main__ import build_parser as prep_parser
from jobs.prep.job import PrepConfig
from jobs.prep.prepare import Thresholds
from local.movielens import AMAZON_COLUMNS
from local.pipeline import PipelineError, cli, start
from local.pipeline import run as run_module
from local.pipeline.cli import PREP_OPTIONS, PREP_OPTIONS_NOT_TAKEN, main, run_arguments
from local.pipeline.shims import write_record
from local.pipeline.start import load_defaults, prep_defaults
from stacks.config import Config

ROOT = Path(__file__).resolve().parents[3]
METRICS: RunMetrics = {"fm_test_rmse": 1.0, "baseline_global_mean_rmse": 1.2, "baseline_bias_rmse": 1.1}


@pytest.fixture(scope="module")
def config() -> Config:
    return load_defaults()


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails the test if the run reaches its first step."""

    def prepare(*_: object) -> None:
        raise AssertionError("the run started working before it refused its arguments")

    monkeypatch.setattr(run_module, "prepare", prepare)


def reviews(folder: Path) -> Path:
    """Three customers who each rated three products: a run that gets past prep with thresholds of 1."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(AMAZON_COLUMNS)]
    for c in range(3):
        for p in range(3):
            row = dict.fromkeys(AMAZON_COLUMNS, "x")
            row |= {
                "customer_id": f"C{c}",
                "product_id": f"P{p}",
                "product_title": f"Film {p}",
                "star_rating": str(1 + (c + p) % 5),
                "review_date": f"2015-01-0{1 + c + p}",
            }
            lines.append("\t".join(row[name] for name in AMAZON_COLUMNS))
    (folder / "reviews.tsv").write_text("\n".join(lines) + "\n")
    return folder


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The last line on stderr, after checking it is the only line that is not a step's progress."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


def test_help_prints_the_whole_description_under_the_real_program_name() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "local.pipeline", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert done.stdout.startswith("usage: python -m local.pipeline [-h] [--input INPUT]")
    assert cli.__doc__ is not None
    paragraphs = [" ".join(p.split()) for p in cli.__doc__.strip().split("\n\n")]
    assert len(paragraphs) == 3
    flowing = " ".join(done.stdout.split())
    for paragraph in paragraphs:  # every paragraph, its line breaks kept
        assert paragraph in flowing
    assert cli.__doc__.strip().split("\n")[2] in done.stdout.split("\n")
    options = ("--output", "--fm-hyperparameters", "--blazingtext-hyperparameters", "--cold-start-fraction")
    for option in (*options, *PREP_OPTIONS):
        assert option in done.stdout


def test_every_option_of_the_prep_job_is_taken_or_said_why_not() -> None:
    prep_options = {action.option_strings[-1] for action in prep_parser()._actions}
    assert prep_options == set(PREP_OPTIONS) | set(PREP_OPTIONS_NOT_TAKEN)


def test_prep_options_default_to_cdk_json_and_reach_the_prep_job(config: Config) -> None:
    assert (
        run_arguments([], config)["prep"]
        == prep_defaults(config)
        == PrepConfig(
            thresholds=Thresholds(config.min_customer_reviews, config.min_product_reviews),
            max_bad_row_fraction=config.max_bad_row_fraction,
            fm_instance_count=config.fm_instance_count,
        )
    )
    argv = ["--min-customer-reviews", "1", "--min-product-reviews", "2", "--max-bad-row-fraction", "0.5"]
    argv += ["--fm-instance-count", "3", "--shards-per-instance", "2", "--seed", "7"]
    arguments = run_arguments(argv, config)
    assert arguments["prep"] == PrepConfig(
        thresholds=Thresholds(1, 2),
        max_bad_row_fraction=0.5,
        fm_instance_count=3,
        shards_per_instance=2,
        seed=7,
    )
    assert arguments["seed"] == 7


@pytest.mark.usefixtures("no_work")
@pytest.mark.parametrize(
    ("argv", "message"),
    [  # the prep job's own rules (jobs/prep/__main__.py), under the local run's name
        (["--min-customer-reviews", "0"], "loftrec: --min-customer-reviews: must be an integer >= 1, got 0"),
        (
            ["--min-product-reviews", "ten"],
            "loftrec: --min-product-reviews: must be an integer >= 1, got ten",
        ),
        (
            ["--max-bad-row-fraction", "1.5"],
            "loftrec: --max-bad-row-fraction: must be a fraction within 0..1",
        ),
        (["--fm-instance-count", "-1"], "loftrec: --fm-instance-count: must be an integer >= 1, got -1"),
        (["--shards-per-instance", "0"], "loftrec: --shards-per-instance: must be an integer >= 1, got 0"),
        (["--seed", "x"], "loftrec: --seed: invalid int value: 'x'"),
        (["--failure-message", "x"], "loftrec: unrecognized arguments: --failure-message x"),
    ],
)
def test_prep_options_are_checked_by_the_prep_jobs_rules(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--output", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(message)
    assert not list(tmp_path.iterdir())


def make_run_command(run_args: str) -> list[str]:
    """The arguments `make run RUN_ARGS=...` passes to python -m local.pipeline, read from `make -n`."""
    environ = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    done = subprocess.run(
        ["make", "-n", "--no-print-directory", "run", f"RUN_ARGS={run_args}"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    (command,) = [line for line in done.stdout.splitlines() if " -m local.pipeline " in line]
    words = shlex.split(command)
    return words[words.index("local.pipeline") + 1 :]


def test_make_runs_fm_hyperparameters_override_the_makefiles_key_by_key(config: Config) -> None:
    argv = make_run_command(
        "--fm-hyperparameters '{\"epochs\": 2}' --fm-hyperparameters '{\"bias_lr\": 0.2}'"
    )
    assert argv[0] == "--fm-hyperparameters"  # the Makefile's LOCAL_FM comes first

    arguments = run_arguments(argv, config)

    assert arguments["fm_overrides"] == {"num_factors": 256, "epochs": 2, "factors_lr": 0.001, "bias_lr": 0.2}
    table = start.fm_table(config, arguments["fm_overrides"])
    assert table == {**config.fm_hyperparameters, **arguments["fm_overrides"]}
    assert table["linear_lr"] == config.fm_hyperparameters["linear_lr"]  # cdk.json's, kept


def test_make_run_without_run_args_trains_with_the_makefiles_hyperparameters(config: Config) -> None:
    arguments = run_arguments(make_run_command(""), config)
    assert arguments["fm_overrides"] == {"num_factors": 256, "epochs": 10, "factors_lr": 0.001}
    assert arguments["blazingtext_overrides"] == {}


def test_blazingtext_hyperparameters_merge_over_cdk_json(config: Config) -> None:
    argv = [
        "--blazingtext-hyperparameters",
        '{"epochs": 2}',
        "--blazingtext-hyperparameters",
        '{"epochs": 3}',
    ]
    arguments = run_arguments(argv, config)
    table = start.blazingtext_table(config, arguments["blazingtext_overrides"])
    assert table == {**config.blazingtext_hyperparameters, "epochs": 3}


def test_a_hyperparameter_table_may_come_from_a_file(config: Config, tmp_path: Path) -> None:
    (tmp_path / "fm.json").write_text('{"epochs": 4}')
    arguments = run_arguments(["--fm-hyperparameters", f"@{tmp_path / 'fm.json'}"], config)
    assert arguments["fm_overrides"] == {"epochs": 4}


BAD_ARGUMENTS: list[tuple[list[str], str]] = [
    (["--fm-hyperparameters", "[1]"], "loftrec: --fm-hyperparameters: must be a JSON object, got '[1]'"),
    (
        ["--fm-hyperparameters", ""],
        "loftrec: --fm-hyperparameters: not valid JSON (Expecting value: line 1 column 1 (char 0)): ''",
    ),
    (
        ["--fm-hyperparameters", "{nope"],
        "loftrec: --fm-hyperparameters: not valid JSON (Expecting property name enclosed in double quotes",
    ),
    (
        ["--fm-hyperparameters", "@/nonexistent/fm.json"],
        "loftrec: --fm-hyperparameters: cannot read /nonexistent/fm.json (No such file or directory)",
    ),
    (
        ["--fm-hyperparameters", '{"epochs": 0}'],
        "loftrec: --fm-hyperparameters: fm_hyperparameters.epochs=0 is not allowed: an integer >= 1",
    ),
    (
        ["--fm-hyperparameters", '{"epochs": 2}', "--fm-hyperparameters", '{"epoch": 2}'],
        "loftrec: --fm-hyperparameters: fm_hyperparameters.epoch=2 is not allowed: one of bias_init_method,",
    ),
    (
        ["--fm-hyperparameters", '{"feature_dim": 7}'],
        "loftrec: --fm-hyperparameters: fm_hyperparameters.feature_dim=7 is not allowed: nothing: the "
        "pipeline sets it",
    ),
    (  # what SageMaker would take, as a string, and the local trainer does not
        ["--fm-hyperparameters", '{"epochs": "5"}'],
        "loftrec: --fm-hyperparameters: Factorization Machines hyperparameter 'epochs' must be an integer, "
        "got '5' (str)",
    ),
    (
        ["--blazingtext-hyperparameters", '{"vector_dim": 1001}'],
        "loftrec: --blazingtext-hyperparameters: blazingtext_hyperparameters.vector_dim=1001 is not allowed: "
        "an integer >= 1 and <= 1000",
    ),
    (
        ["--blazingtext-hyperparameters", '{"mode": "supervised"}'],
        "loftrec: --blazingtext-hyperparameters: blazingtext_hyperparameters.mode='supervised' is not",
    ),
    (
        ["--blazingtext-hyperparameters", '{"epochs": 2.5}'],
        "loftrec: --blazingtext-hyperparameters: blazingtext_hyperparameters.epochs=2.5 is not allowed",
    ),
    (
        ["--cold-start-fraction", "1"],
        "loftrec: --cold-start-fraction: must be at least 0 and below 1, got 1.0",
    ),
    (["--cold-start-fraction", "half"], "loftrec: --cold-start-fraction: invalid float value: 'half'"),
    (["--epochs", "3"], "loftrec: unrecognized arguments: --epochs 3"),
]


@pytest.mark.usefixtures("no_work")
@pytest.mark.parametrize(("argv", "message"), BAD_ARGUMENTS)
def test_bad_arguments_are_one_line_before_any_work(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--input", str(reviews(tmp_path / "in")), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message), err
    assert err.count("\n") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.usefixtures("no_work")
def test_an_input_folder_without_raw_files_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "in" / "sub" / "reviews.csv").write_text("a,b\n")
    (tmp_path / "in" / ".hidden.tsv").write_text("")
    folder = tmp_path / "in"

    assert main(["--input", str(folder), "--output", str(tmp_path / "out")]) == 2

    assert capsys.readouterr().err == (
        f"loftrec: --input {folder}: no input files: no .tsv or .tsv.gz file under {folder}\n"
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.usefixtures("no_work")
def test_an_input_that_is_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = reviews(tmp_path / "in") / "reviews.tsv"
    assert main(["--input", str(path), "--output", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"loftrec: --input {path}: not a folder\n"


def _unwritable(tmp_path: Path) -> Path:
    """A place no run folder can be made: a read-only folder, or for root, whom permissions do not stop,
    sysfs (mkdir there is not permitted to anyone)."""
    if os.geteuid() == 0:
        return Path("/sys/loftrec-local-bucket")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder / "local-bucket"


@pytest.mark.usefixtures("no_work")
@pytest.mark.parametrize("where", ["file", "under a file", "unwritable"])
def test_an_output_that_cannot_hold_runs_is_one_line(
    where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "bucket.txt"
    file.write_text("not a folder")
    output, message = {
        "file": (file, f"{file}: a file, not a folder"),
        "under a file": (file / "x" / "y", f"{file / 'x' / 'y'}: under {file}, a file, not a folder"),
        "unwritable": (_unwritable(tmp_path), "cannot make a run folder there ("),
    }[where]

    assert main(["--input", str(reviews(tmp_path / "in")), "--output", str(output)]) == 2

    err = capsys.readouterr().err
    assert err.startswith(f"loftrec: --output {output}: "), err
    assert message in err and err.count("\n") == 1
    assert file.read_text() == "not a folder"


def test_a_run_that_fails_half_way_leaves_nothing_behind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Past prep and FM training, the title embeddings find no token frequent enough: one line, and the
    output root is as it was (an earlier run and the deployed-run record untouched)."""
    output = tmp_path / "bucket"
    (output / "runs" / "local-earlier").mkdir(parents=True)
    (output / "serving").mkdir()
    (output / "serving" / "current.json").write_text('{"run_id": "local-earlier"}')
    before = sorted(p.relative_to(output) for p in output.rglob("*"))
    argv = ["--input", str(reviews(tmp_path / "in")), "--output", str(output)]
    argv += ["--min-customer-reviews", "1", "--min-product-reviews", "1", "--fm-instance-count", "1"]
    argv += ["--fm-hyperparameters", '{"epochs": 1, "num_factors": 2}', "--cold-start-fraction", "0"]
    argv += ["--blazingtext-hyperparameters", '{"min_count": 1000}']

    assert main(argv) == 2

    err = capsys.readouterr().err
    assert "== train FM" in err and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("loftrec: the corpus ")
    assert "has no token that occurs min_count=1000 times" in err
    assert sorted(p.relative_to(output) for p in output.rglob("*")) == before
    assert (output / "serving" / "current.json").read_text() == '{"run_id": "local-earlier"}'


def _failing_run(output: Path, error: BaseException) -> Path:
    """A run that writes its folder and the deployed-run record, then fails with `error`."""
    with pytest.raises(type(error)), start.new_run(output) as run:
        (run.folder / "prep").mkdir()
        (run.folder / "prep" / "manifest.json").write_text("{}")
        write_record(run.record_path, run.folder, run.run_id, METRICS)
        assert run.record_path.is_file()
        raise error
    return run.folder


@pytest.mark.parametrize("error", [RuntimeError("a bug"), KeyboardInterrupt()])
def test_a_failed_run_puts_the_deployed_run_record_back(tmp_path: Path, error: BaseException) -> None:
    output = tmp_path / "bucket"
    (output / "serving").mkdir(parents=True)
    (output / "serving" / "current.json").write_bytes(b'{"run_id": "earlier"}\n')

    folder = _failing_run(output, error)

    assert not folder.exists()
    assert not (output / "runs").exists()
    assert (output / "serving" / "current.json").read_bytes() == b'{"run_id": "earlier"}\n'


def test_a_failed_first_run_removes_every_folder_it_made(tmp_path: Path) -> None:
    _failing_run(tmp_path / "new" / "bucket", RuntimeError("a bug"))
    assert list(tmp_path.iterdir()) == []


def test_the_first_steps_of_a_good_run_still_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The checks refuse nothing that is good: the Makefile's own arguments reach prep with its settings."""
    seen: dict[str, Any] = {}

    def prepare(run: start.Run, source: Path, prep_config: PrepConfig) -> None:
        seen.update(folder=run.folder, source=source, prep=prep_config)
        raise PipelineError("stopped after the checks")

    monkeypatch.setattr(run_module, "prepare", prepare)
    argv = [*make_run_command("--min-customer-reviews 2"), "--output", str(tmp_path / "out")]
    argv += ["--input", str(reviews(tmp_path / "in"))]

    assert main(argv) == 2

    assert capsys.readouterr().err.endswith("loftrec: stopped after the checks\n")
    assert seen["source"] == tmp_path / "in"
    assert seen["prep"].thresholds == Thresholds(2, 10)
    assert seen["folder"].parent == tmp_path / "out" / "runs"
    assert not (tmp_path / "out").exists()
