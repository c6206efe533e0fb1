"""A run folder's record of how its run was started (RUN/run.json, written before the first step), so
that `dfplan train --out RUN --resume` alone continues the run exactly as it was started, and a flag
given with it that says otherwise is refused rather than silently changing the run."""

from __future__ import annotations

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
