"""Where the prep job writes: checked before any input is read, and written so that a failed run leaves
nothing that can be taken for a run.

Two modes:
- **Beside** (every output folder but the container's): the job writes into a new hidden folder beside
  the output folder, `.<name>.partial-<random>`, and renames it to the output folder once every file is
  written, the manifest last. A failed run removes its partial folder (and any parent folders it created),
  so it leaves no output folder and a rerun into the same folder works.
- **In place** (the Processing job's output folder, contract.layout.CONTAINER_OUTPUT, or --in-place):
  SageMaker creates that folder, uploads what it holds and gives no way to rename it, so the job writes
  straight into it, the manifest last (written to a temporary name and renamed: complete or absent). A
  failed run removes what it wrote. Whatever is left is still no run: every reader requires the
  manifest (the state machine's "Read manifest" reads prep/manifest.json only after the Processing job
  succeeded, and the training jobs start after it; the local pipeline takes the manifest that run_prep
  returns).

Every OS refusal (permissions, a read-only file system, a full disk, a file-size limit, a path through a
file) becomes a PrepError of one line naming the folder, the file, the cause and what to do.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from jobs.prep.failure import PrepError, os_cause


def _advice(code: int | None, in_place: bool) -> str:
    if code in (errno.ENOSPC, errno.EDQUOT):
        return (
            "raise prep_volume_size_gb (the Processing job's storage volume)"
            if in_place
            else "free space there or give an output folder on a disk with more room"
        )
    if code == errno.EFBIG:
        return "raise the file-size limit (ulimit -f) or give an output folder on another file system"
    if code in (errno.EACCES, errno.EPERM):
        return f"make it writable for this user (uid {os.getuid()}) or give another output folder"
    if code in (errno.EEXIST, errno.ENOTEMPTY):
        return "give a new folder for each run, used by one job at a time"
    return "give another output folder"


def describe_os_error(error: OSError, *, what: str, in_place: bool = False) -> str:
    """One line: what failed, the cause (errno's name in brackets) and what to do."""
    return f"{what}: {os_cause(error)}: {_advice(error.errno, in_place)}"


class Destination:
    """The output folder of one run; see the module's docstring for the two modes.

    `open` checks the folder and proves that a file can be written there; the job then writes under
    `work` and ends with `commit` (the run is complete) or `discard` (it failed)."""

    def __init__(self, target: Path, *, in_place: bool, work: Path, made: list[Path]) -> None:
        self.target = target
        self.in_place = in_place
        self.work = work
        self._made = made  # folders this run created, outermost first (the work folder last)

    @classmethod
    def open(cls, target: Path, *, in_place: bool) -> Destination:
        _check_target(target)
        if not in_place and os.path.ismount(target):
            raise PrepError(
                f"output folder {target} is a mount point, which a finished run cannot be renamed onto: "
                "run with --in-place"
            )
        made: list[Path] = []
        partial: Path | None = None
        where = target.parent  # the folder written to, as the message names it
        try:
            missing = [p for p in target.parents if not p.exists()]
            if in_place and not target.exists():
                missing.insert(0, target)
            for folder in reversed(missing):  # outermost first
                where = folder.parent
                folder.mkdir()
                made.append(folder)
            where = target.parent
            if in_place:
                work = where = target
            else:
                partial = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
                made.append(partial)
                work = partial
            probe = work / ".write-check"
            probe.write_bytes(b"loftrec")
            probe.unlink()
        except OSError as e:
            _remove(made, work=partial)
            what = f"output folder {target}: cannot write in {where}"
            raise PrepError(describe_os_error(e, what=what, in_place=in_place)) from None
        return cls(target, in_place=in_place, work=work, made=made)

    @contextmanager
    def writing(self, path: Path) -> Iterator[Path]:
        """Around the writing of `path` (a file or folder under `work`): an OS refusal becomes a PrepError
        naming the file as the output folder names it."""
        try:
            yield path
        except OSError as e:
            failed = Path(os.fsdecode(e.filename)) if e.filename else path
            shown = (
                self.target / failed.relative_to(self.work) if failed.is_relative_to(self.work) else failed
            )
            what = f"cannot write the output: {shown}"
            raise PrepError(describe_os_error(e, what=what, in_place=self.in_place)) from None

    def commit(self) -> None:
        """Make the written folder the output folder (beside mode; in place it already is)."""
        if self.in_place:
            return
        try:
            os.rename(self.work, self.target)
        except OSError as e:
            what = f"output folder {self.target}: cannot move the finished run into place"
            raise PrepError(describe_os_error(e, what=what)) from None
        self._made.remove(self.work)

    def discard(self) -> None:
        """Remove what this run wrote (best effort: the run has already failed)."""
        if self.in_place and self.work.is_dir():
            for child in self.work.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        _remove(self._made, work=None if self.in_place else self.work)


def _check_target(target: Path) -> None:
    if target.is_dir():
        if any(target.iterdir()):
            raise PrepError(f"output folder {target} is not an empty folder: give a new folder for each run")
        return
    if target.exists() or target.is_symlink():
        raise PrepError(f"output folder {target} is a file, not a folder: give a new folder for each run")
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise PrepError(f"output folder {target} cannot be created: {parent} is a file, not a folder")
            return


def _remove(made: list[Path], *, work: Path | None) -> None:
    """Remove the folders a run created, innermost first: the work folder with what it holds, the
    others only while empty."""
    for folder in reversed(made):
        if folder == work:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                folder.rmdir()
    made.clear()
