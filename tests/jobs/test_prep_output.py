"""The output folder: checked before any input is read, and never left half-written.

The refusals are the operating system's own: a folder under a file, a chmod'ed folder, a read-only mount,
a tmpfs of a few kilobytes (ENOSPC) and a process file-size limit (EFBIG). Mounts need root with
CAP_SYS_ADMIN; where that is missing those cases are skipped with the reason, and the chmod case runs
instead (it is skipped as root, whom permission bits do not stop).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from jobs.prep.__main__ import writes_in_place
from jobs.prep.failure import PrepError
from jobs.prep.job import PrepConfig, run_prep
from jobs.prep.prepare import Thresholds
from tests.jobs.test_prep_support import (
    PREP_ENTRIES,
    ROWS,
    many_rows,
    remount,
    run_cli,
    tmpfs,
    tsv_bytes,
    write_tsv,
)

CONFIG = PrepConfig(thresholds=Thresholds(1, 1), fm_instance_count=1)


def _quiet(_: str) -> None:
    pass


def prep_fails(input_dir: Path, output_dir: Path, *, in_place: bool = False) -> str:
    with pytest.raises(PrepError) as err:
        run_prep(input_dir, output_dir, CONFIG, log=_quiet, in_place=in_place)
    message = str(err.value)
    assert "\n" not in message
    return message


def big_input(folder: Path) -> Path:
    """An input whose run writes a few hundred kilobytes (train shard ~400 KB)."""
    write_tsv(folder / "reviews.tsv", tsv_bytes(many_rows(6000)))
    return folder


def entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --------------------------------------------------------------------------------------- checked first


def test_output_under_a_file_fails_before_any_input_is_read(tmp_path: Path) -> None:
    (tmp_path / "runs").write_text("a file where a folder should be")
    # The input folder does not exist: the output is checked first, so its message is the one shown.
    assert prep_fails(tmp_path / "missing-input", tmp_path / "runs" / "r1" / "prep") == (
        f"output folder {tmp_path}/runs/r1/prep cannot be created: {tmp_path}/runs is a file, not a folder"
    )
    assert entries(tmp_path) == ["runs"]


def test_output_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "prep").write_text("")
    assert prep_fails(tmp_path / "missing-input", tmp_path / "prep") == (
        f"output folder {tmp_path}/prep is a file, not a folder: give a new folder for each run"
    )


def test_chmod_unwritable_output_parent(tmp_path: Path) -> None:
    write_tsv(tmp_path / "in" / "reviews.tsv", tsv_bytes(ROWS))
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip(
                "permission bits do not stop this user (root): the read-only mount case covers the refusal"
            )
        message = prep_fails(tmp_path / "in", locked / "runs" / "prep")
    finally:
        locked.chmod(0o755)
    assert message == (
        f"output folder {locked}/runs/prep: cannot write in {locked}/runs: permission denied (EACCES): "
        f"make it writable for this user (uid {os.getuid()}) or give another output folder"
    )
    assert entries(locked) == []


@pytest.mark.parametrize("in_place", [False, True], ids=["beside", "in-place"])
def test_read_only_mount(tmp_path: Path, in_place: bool) -> None:
    with tmpfs(tmp_path / "ro", size="1m", read_only=True) as mount:
        message = prep_fails(tmp_path / "missing-input", mount / "prep", in_place=in_place)
        # In place the job creates the folder itself (SageMaker would have): the mount refuses that.
        assert message == (
            f"output folder {mount}/prep: cannot write in {mount}: read-only file system (EROFS): "
            "give another output folder"
        )
        assert entries(mount) == []


def test_read_only_mount_through_the_cli_is_one_line(tmp_path: Path) -> None:
    write_tsv(tmp_path / "in" / "reviews.tsv", tsv_bytes(ROWS))
    with tmpfs(tmp_path / "ro", size="1m", read_only=True) as mount:
        result = run_cli("--input", tmp_path / "in", "--output", mount / "prep")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"prep failed: output folder {mount}/prep: cannot write in {mount}: read-only file system (EROFS): "
        "give another output folder"
    ]


# --------------------------------------------------------------------------------------- disk full


def test_disk_full_leaves_no_output_and_a_rerun_works(tmp_path: Path) -> None:
    inputs = big_input(tmp_path / "in")
    with tmpfs(tmp_path / "small", size="64k") as disk:
        output = disk / "runs" / "r1" / "prep"
        message = prep_fails(inputs, output)
        assert message == (
            f"cannot write the output: {output}/train/part-00000.rio: no space left on the device (ENOSPC): "
            "free space there or give an output folder on a disk with more room"
        )
        assert entries(disk) == []  # neither the output, its parents, nor a partial folder
        remount(disk, "size=8m")
        manifest = run_prep(inputs, output, CONFIG, log=_quiet)
        assert json.loads((output / "manifest.json").read_text()) == manifest
        assert entries(output.parent) == ["prep"]


def test_disk_full_in_place_empties_the_folder_and_a_rerun_works(tmp_path: Path) -> None:
    inputs = big_input(tmp_path / "in")
    with tmpfs(tmp_path / "small", size="64k") as disk:
        message = prep_fails(inputs, disk, in_place=True)
        assert message == (
            f"cannot write the output: {disk}/train/part-00000.rio: no space left on the device (ENOSPC): "
            "raise prep_volume_size_gb (the Processing job's storage volume)"
        )
        assert entries(disk) == []
        remount(disk, "size=8m")
        run_prep(inputs, disk, CONFIG, log=_quiet, in_place=True)
        assert entries(disk) == PREP_ENTRIES


def test_file_size_limit_through_the_cli(tmp_path: Path) -> None:
    inputs = big_input(tmp_path / "in")
    output = tmp_path / "out" / "prep"
    message_file = tmp_path / "message"
    result = run_cli(
        "--input", inputs, "--output", output, "--min-customer-reviews", "1", "--min-product-reviews", "1",
        "--fm-instance-count", "1", "--failure-message", message_file,
        file_size_limit=64 * 1024,
    )  # fmt: skip
    expected = (
        f"prep failed: cannot write the output: {output}/train/part-00000.rio: file too large for the file "
        "system or the process's file-size limit (ulimit -f) (EFBIG): raise the file-size limit (ulimit -f) "
        "or give an output folder on another file system"
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == expected
    assert message_file.read_text() == expected
    assert entries(tmp_path) == ["in", "message"]  # no output folder, no parents, no partial folder


# --------------------------------------------------------------------------------------- modes


def test_a_good_run_leaves_only_the_output_folder(tmp_path: Path) -> None:
    write_tsv(tmp_path / "in" / "reviews.tsv", tsv_bytes(ROWS))
    run_prep(tmp_path / "in", tmp_path / "runs" / "prep", CONFIG, log=_quiet)
    assert entries(tmp_path / "runs") == ["prep"]
    assert entries(tmp_path / "runs" / "prep") == PREP_ENTRIES


def test_a_folder_in_use_is_refused_and_left_alone(tmp_path: Path) -> None:
    write_tsv(tmp_path / "in" / "reviews.tsv", tsv_bytes(ROWS))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "other.txt").write_text("someone else's")
    for in_place in (False, True):
        assert prep_fails(tmp_path / "in", tmp_path / "out", in_place=in_place) == (
            f"output folder {tmp_path}/out is not an empty folder: give a new folder for each run"
        )
    assert entries(tmp_path / "out") == ["other.txt"]


def test_container_output_is_written_in_place() -> None:
    assert writes_in_place(Path("/opt/ml/processing/output/prep"), flag=False)
    assert writes_in_place(Path("/opt/ml/processing/output/prep/"), flag=False)
    assert not writes_in_place(Path("/tmp/prep"), flag=False)
    assert writes_in_place(Path("/tmp/prep"), flag=True)


def test_a_mount_point_needs_in_place(tmp_path: Path) -> None:
    write_tsv(tmp_path / "in" / "reviews.tsv", tsv_bytes(ROWS))
    with tmpfs(tmp_path / "mounted", size="1m") as mount:
        assert prep_fails(tmp_path / "in", mount) == (
            f"output folder {mount} is a mount point, which a finished run cannot be renamed onto: "
            "run with --in-place"
        )
        run_prep(tmp_path / "in", mount, CONFIG, log=_quiet, in_place=True)
        assert entries(mount) == PREP_ENTRIES
