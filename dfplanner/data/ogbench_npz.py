"""OGBench's npz dataset format: where its files live, writing them, and reading them into an OfflineDataset.

The format (data_gen_scripts/generate_locomaze.py writes it, ``ogbench.utils.load_dataset`` reads it):
one ``np.savez_compressed`` archive of flat arrays, episodes back to back, ``observations`` (N, obs_dim)
and ``actions`` (N, act_dim) float32, ``terminals`` (N,) bool True at each episode's last step, and for
the locomaze envs ``qpos``, ``qvel`` float32. Training and validation sets are NAME.npz and NAME-val.npz
in ``$OGBENCH_DATA``, else OGBench's default folder ~/.ogbench/data.

Reading (``load_npz``):
- Episodes end after each True terminal. They are separate resets, so ``continuous=False``: training
  windows never span two episodes.
- Every row is kept, so observations[t] is the state actions[t] was taken in. The last row of an episode
  is a state whose action's outcome was not recorded (OGBench's loader keeps it only as the previous
  step's next_observation). dfplanner's windows use a row's action only when the next row is in the same
  episode, so they see exactly OGBench's transitions.
- ``rewards`` are zeros (the files have none: OGBench's rewards depend on the goal a learner picks) and
  ``goals`` None (navigate episodes change goal without recording it). ``env_id`` is the dataset name
  (pointmaze-giant-navigate-v0), from the ``ogbench:`` id or the file name.
- Nothing is unpickled (``allow_pickle=False``); a wrong file is a one-line error naming it and the key.
"""

from __future__ import annotations

import os
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np

from dfplanner.utils.atomic import atomic_output
from dfplanner.data.offline import OfflineDataset, check_shape, validated

PREFIX = "ogbench:"  # load_dataset("ogbench:NAME") reads NAME.npz from the data folder
from dfplanner.errors import DfplannerError

DATA_ENV_VAR = "OGBENCH_DATA"
DEFAULT_DATA_DIR = "~/.ogbench/data"  # ogbench.utils.DEFAULT_DATASET_DIR
VAL_SUFFIX = "-val"  # OGBench: the validation file of NAME.npz is NAME-val.npz
FILE_KEYS = ("observations", "actions", "terminals", "qpos", "qvel")  # what generate_locomaze.py saves, in order
FLOAT_KEYS = ("observations", "actions", "qpos", "qvel")
REQUIRED_KEYS = ("observations", "actions", "terminals")
DATASET_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*-v\d+")
READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)


def file_dtype(key: str) -> type:
    """The dtype generate_locomaze.py saves `key` with: terminals bool, everything else float32."""
    return np.bool_ if key == "terminals" else np.float32


def data_dir() -> Path:
    """OGBench's dataset folder: $OGBENCH_DATA, else ~/.ogbench/data."""
    return Path(os.environ.get(DATA_ENV_VAR) or DEFAULT_DATA_DIR).expanduser()


def val_path(path: str | Path) -> Path:
    """The validation file that goes with a training file (OGBench: .npz -> -val.npz)."""
    path = Path(path)
    return path.with_name(path.name.removesuffix(".npz") + VAL_SUFFIX + ".npz")


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez_compressed, atomically (a crash never leaves a torn file under the final name)."""
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:  # a handle: savez would append .npz to a name
        np.savez_compressed(handle, **arrays)


def load_ogbench(source: str) -> OfflineDataset:
    """``ogbench:NAME`` (NAME.npz in OGBench's folder, never downloaded) or the path of an npz file."""
    if not source.startswith(PREFIX):
        path = Path(source).expanduser()
        if not path.is_file():
            raise DfplannerError(f"dataset {path}: no such file")
        return load_npz(path)
    name = source.removeprefix(PREFIX)
    path = data_dir() / f"{name}.npz"
    if not path.is_file():
        raise DfplannerError(
            f"{source}: no file {path} (datasets are never downloaded; run `dfplan data generate "
            f"--env {name.removesuffix(VAL_SUFFIX)}`, or put OGBench's file there, or set {DATA_ENV_VAR})"
        )
    return load_npz(path, env_id=name.removesuffix(VAL_SUFFIX))


def load_npz(path: Path, env_id: str | None = None) -> OfflineDataset:
    """Read and validate an OGBench npz file (see the module docstring)."""
    where = str(path)
    arrays = _read_arrays(path)
    observations, terminals = arrays["observations"], arrays["terminals"]
    check_shape(observations, (None, None), "observations", where)
    check_shape(terminals, (len(observations),), "terminals", where)
    if terminals.dtype != np.bool_:
        raise DfplannerError(f"{where}: key 'terminals' has dtype {terminals.dtype}, expected bool (OGBench's format)")
    for key in FLOAT_KEYS:
        if key in arrays and arrays[key].dtype != np.float32:
            raise DfplannerError(f"{where}: key {key!r} has dtype {arrays[key].dtype}, expected float32 (OGBench's format)")
    if len(terminals) and not terminals[-1]:
        raise DfplannerError(f"{where}: key 'terminals' does not end an episode at the last step (a truncated file?)")
    if env_id is None:
        match = DATASET_NAME.fullmatch(path.name.removesuffix(".npz").removesuffix(VAL_SUFFIX))
        env_id = match.group(0) if match else ""
    return validated(
        observations=observations,
        actions=arrays["actions"],
        rewards=np.zeros(len(observations), dtype=np.float32),
        episode_ends=np.flatnonzero(terminals) + 1,
        goals=None,
        where=where,
        env_id=env_id,
        continuous=False,
    )


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The required keys and those of FLOAT_KEYS present; never unpickles."""
    try:
        archive = np.load(path, allow_pickle=False)
    except READ_ERRORS as error:
        raise DfplannerError(f"{path}: not a readable npz file ({error})") from error
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DfplannerError(f"{path}: a single .npy array, not an npz archive of named arrays")
    with archive:
        for key in REQUIRED_KEYS:
            if key not in archive.files:
                raise DfplannerError(f"{path}: missing key {key!r} (has {', '.join(archive.files) or 'none'})")
        arrays = {}
        for key in dict.fromkeys(REQUIRED_KEYS + FLOAT_KEYS):
            if key in archive.files:
                try:
                    arrays[key] = archive[key]
                except READ_ERRORS as error:  # an object (pickled) array, or a truncated/corrupted member
                    raise DfplannerError(f"{path}: key {key!r} unreadable ({error})") from error
    return arrays
