"""Atomic file output: a crash or Ctrl-C never leaves a half-written file under the final name."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dfplanner.errors import DfplannerError

FILE_MODE = 0o644  # mkstemp creates 0600; outputs are meant to be shared like any other file


def check_writable(path: str | Path) -> Path:
    """Fail early, before any long computation, if `path` cannot be written."""
    path = Path(path).expanduser()
    parent = path.parent
    if path.is_dir():
        raise DfplannerError(f"cannot write {path}: it is a folder")
    if not parent.is_dir():
        raise DfplannerError(f"cannot write {path}: folder {parent} does not exist")
    try:  # a real write: permission bits say nothing to root, nor about read-only file systems
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=parent)
    except OSError as error:
        raise DfplannerError(f"cannot write {path}: folder {parent} is not writable ({error.strerror})") from None
    os.close(fd)
    os.unlink(probe)
    return path


def _fsync_folder(folder: Path) -> None:
    """Make a rename durable: without this a power loss may bring back the old directory entry."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; it replaces `path` only if the block succeeds."""
    path = check_writable(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, FILE_MODE)
        with open(tmp, "rb+") as handle:  # on disk before the rename, so a crash never leaves a torn file
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_folder(path.parent)
    except OSError as error:
        raise DfplannerError(f"cannot write {path}: {error.strerror or error}") from error
    finally:
        tmp.unlink(missing_ok=True)
