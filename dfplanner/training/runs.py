"""A run folder's record of how its run was started (RUN/run.json, written before the first step), so
that `dfplan train --out RUN --resume` alone continues the run exactly as it was started, and a flag
given with it that says otherwise is refused rather than silently changing the run."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dfplanner.training.checkpoint import read_json, write_json
from dfplanner.errors import DfplannerError
from dfplanner.training.trainer import STATE_STEM

RUN_FILE = "run.json"
STATE_FILE = f"{STATE_STEM}.json"  # the training loop's commit point


@dataclass(frozen=True)
class RunRecord:
    dataset: str  # as `load_dataset` reads it; file paths absolute, so a run resumes from any folder
    env_id: str | None  # None: not a maze2d dataset
    config: dict  # the effective config: files and flags merged
    threads: int  # CPU threads: part of what makes the run bit-for-bit reproducible
    eval_every: int
    eval_episodes: int

    def write(self, folder: Path) -> None:
        write_json(Path(folder) / RUN_FILE, asdict(self))

    @classmethod
    def read(cls, folder: Path) -> "RunRecord":
        path = Path(folder) / RUN_FILE
        if not path.exists():
            raise DfplannerError(f"{folder} holds no run (no {RUN_FILE}); start one with dfplan train --out {folder}")
        try:
            return cls(**read_json(path))
        except TypeError as error:
            raise DfplannerError(f"{path}: not a run record ({error})") from None

    def check_flags(self, given: dict[str, tuple[Any, Any]], folder: Path) -> None:
        """`given`: flag -> (its value, or None if not given; the run's value). Any difference is an error."""
        for flag, (value, recorded) in given.items():
            if value is not None and value != recorded:
                raise DfplannerError(
                    f"{flag} {value} contradicts the run in {folder}, which has {flag.lstrip('-')} {recorded}; "
                    f"resume without {flag}, or train into another --out"
                )


def holds_run(folder: Path) -> bool:
    return (Path(folder) / RUN_FILE).exists() or (Path(folder) / STATE_FILE).exists()


def dataset_source(source: str | Path) -> str:
    """A dataset source as recorded: existing paths made absolute, anything else (minari:ID, a maze name) as given."""
    path = Path(source).expanduser()
    return str(path.resolve()) if path.exists() else str(source)


LOCK_FILE = "run.lock"  # holds the pid of the process that owns the run folder


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


@contextmanager
def owned_by_this_process(folder: Path) -> Iterator[None]:
    """The run folder is this process's while the block runs: a second `dfplan train` on it is refused
    instead of mixing its files with this one's. A lock left by a process that is gone (a crash, a
    kill -9) is recognised by its pid and taken over. Under torchrun only rank 0 takes it."""
    if int(os.environ.get("RANK", "0")) != 0:
        yield
        return
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DfplannerError(f"cannot create run folder {folder}: {error.strerror}") from None
    lock = folder / LOCK_FILE
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            text = lock.read_text().strip() if lock.exists() else ""
            owner = int(text) if text.isdigit() else None
            if owner is not None and owner != os.getpid() and _process_alive(owner):
                raise DfplannerError(f"{folder} is in use by another dfplan train (pid {owner}); wait for it to finish or choose "
                                     f"another --out (if that process is not a dfplan train of this folder, delete {lock})") from None
            lock.unlink(missing_ok=True)  # stale: its process is gone
    os.write(fd, f"{os.getpid()}\n".encode())
    os.close(fd)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


@contextmanager
def removed_on_failure(folder: Path) -> Iterator[None]:
    """A run folder created by the block is removed again if the block fails before the first
    checkpoint (it then holds nothing to resume); Ctrl-C keeps it, and `--resume` starts it over."""
    folder = Path(folder)
    created = not folder.exists()
    try:
        yield
    except Exception:
        if created and not (folder / STATE_FILE).exists():
            shutil.rmtree(folder, ignore_errors=True)
        raise
