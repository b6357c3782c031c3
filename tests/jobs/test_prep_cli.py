"""The entrypoint the container runs (python -m jobs.prep), run as a process, and the image's definition.

There is no Docker engine here: the image is checked through what it is built from (Dockerfile,
requirements.txt) and the entrypoint is run directly, as the image's ENTRYPOINT runs it.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

from jobs.prep.failure import MESSAGE_LIMIT_BYTES, write_failure_message
from tests.jobs.test_prep_support import REPO, ROWS, run_cli, tsv_bytes, write_tsv

PREP = REPO / "jobs" / "prep"


def test_cli_writes_a_run(tmp_path: Path) -> None:
    write_tsv(tmp_path / "in" / "reviews.tsv.gz", tsv_bytes(ROWS))
    result = run_cli(
        "--input", tmp_path / "in", "--output", tmp_path / "out",
        "--min-customer-reviews", "2", "--min-product-reviews", "2",
        "--fm-instance-count", "3", "--shards-per-instance", "1", "--seed", "5",
        "--max-bad-row-fraction", "0.5",
        "--failure-message", tmp_path / "message",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "done: N=3 M=2 feature_dim=6 train=3 validation=0 test=3" in result.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["feature_dim"] == 6
    assert manifest["seed"] == manifest["split"]["seed"] == 5
    assert manifest["thresholds"] == {
        "min_customer_reviews": 2,
        "min_product_reviews": 2,
        "max_bad_row_fraction": 0.5,
    }
    assert manifest["shards"]["train_rows_per_shard"] == [1, 1, 1]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "baselines",
        "corpus",
        "index",
        "manifest.json",
        "test",
        "train",
        "validation",
    ]
    assert sorted(p.name for p in (tmp_path / "out" / "index").iterdir()) == [
        "customers.tsv",
        "index.json",
        "products.tsv",
    ]
    assert not (tmp_path / "message").exists()


def test_cli_failure_writes_the_message_file(tmp_path: Path) -> None:
    write_tsv(tmp_path / "in" / "reviews.tsv", tsv_bytes(ROWS))
    message_file = tmp_path / "opt" / "ml" / "output" / "message"
    result = run_cli(
        "--input", tmp_path / "in", "--output", tmp_path / "out", "--failure-message", message_file,
        "--max-bad-row-fraction", "0.02",
    )  # fmt: skip
    assert result.returncode == 1
    expected = (
        "prep failed: nothing survives the filters: 0 of 4 customers have >= 5 reviews "
        "(--min-customer-reviews) and 0 of 3 products have >= 10 reviews (--min-product-reviews), "
        "but no review among 9 usable rows has both"
    )
    assert message_file.read_text(encoding="utf-8") == expected
    assert result.stderr.rstrip("\n").splitlines()[-1] == expected
    assert "Traceback" not in result.stderr


def test_cli_rejects_bad_arguments(tmp_path: Path) -> None:
    result = run_cli("--input", tmp_path, "--output", tmp_path / "out", "--fm-instance-count", "0")
    assert result.returncode == 2
    assert "--fm-instance-count: must be an integer >= 1, got 0" in result.stderr
    result = run_cli("--input", tmp_path, "--max-bad-row-fraction", "1.5")
    assert result.returncode == 2
    assert "--max-bad-row-fraction: must be a fraction within 0..1, got 1.5" in result.stderr


def test_failure_message_is_cut_to_sagemakers_1_kb(tmp_path: Path) -> None:
    path = tmp_path / "message"
    write_failure_message(path, "prep failed: " + "é" * 2000)
    data = path.read_bytes()
    assert len(data) <= MESSAGE_LIMIT_BYTES
    assert data.decode("utf-8").endswith("é...")


# ------------------------------------------------------------------------------------------------- image


def pins(path: Path) -> dict[str, str]:
    out = {}
    for raw in path.read_text().splitlines():
        text = raw.split("#", 1)[0].strip()
        if text:
            name, _, version = text.partition("==")
            assert version, f"{path.name}: {raw!r} is not pinned with =="
            out[name.strip().lower()] = version.strip()
    return out


def test_image_requirements_match_the_project_pins() -> None:
    image = pins(PREP / "requirements.txt")
    project = pins(REPO / "constraints.txt")
    assert set(image) == {"numpy", "pyarrow"}
    assert {name: project.get(name) for name in image} == image


def test_job_imports_only_what_the_image_installs() -> None:
    allowed = set(sys.stdlib_module_names) | {"numpy", "pyarrow", "jobs", "contract", "fm"}
    for source in sorted(PREP.glob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            for name in names:
                assert name.split(".")[0] in allowed, f"{source.name} imports {name}, which the image lacks"


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(instruction, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        op, _, arg = (pending + stripped).partition(" ")
        out.append((op.upper(), arg.strip()))
        pending = ""
    return out


def test_dockerfile_builds_the_entrypoint_from_the_repository_context() -> None:
    text = (PREP / "Dockerfile").read_text()
    instructions = dockerfile_instructions(text)
    froms = [arg for op, arg in instructions if op == "FROM"]
    assert len(froms) == 1 and re.fullmatch(r"python:3\.11\.\d+-slim-\w+", froms[0]), froms
    # Root, as SageMaker Processing expects: its mounts replace what a non-root user was given.
    assert [arg.strip() for op, arg in instructions if op == "USER"] in ([], ["root"])
    entrypoint = json.loads(next(arg for op, arg in instructions if op == "ENTRYPOINT"))
    # The state machine passes every argument, the failure-message path among them.
    assert entrypoint == ["python", "-m", "jobs.prep"]
    # Every COPY source exists in the build context (the repository; the stack sends jobs/ and contract/).
    context = REPO
    for op, arg in instructions:
        if op == "COPY":
            *sources, _ = arg.split()
            for src in sources:
                if not src.startswith("--"):
                    assert (context / src).exists(), f"COPY {src}: not in the build context"
    assert "pip install" in text and "-r" in text and "--no-cache-dir" in text


def test_an_unwritable_failure_message_file_is_one_more_line(tmp_path: Path) -> None:
    write_tsv(tmp_path / "in" / "reviews.tsv", tsv_bytes(ROWS))
    (tmp_path / "opt").write_text("a file where /opt/ml/output should be")
    result = run_cli(
        "--input", tmp_path / "in", "--output", tmp_path / "out",
        "--failure-message", tmp_path / "opt" / "message",
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-2:] == [
        "prep failed: nothing survives the filters: 0 of 4 customers have >= 5 reviews "
        "(--min-customer-reviews) and 0 of 3 products have >= 10 reviews (--min-product-reviews), but no "
        "review among 9 usable rows has both",
        f"prep: cannot write the failure message to {tmp_path / 'opt' / 'message'}: "
        "a file or folder of that name is in the way (EEXIST)",
    ]
