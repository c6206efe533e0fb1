"""Load offline data from any source into one in-memory type, ``OfflineDataset``, validated on the way in.

Sources (``load_dataset(source)``):
- a D4RL-format hdf5 file (ours from ``dfplan data generate`` or D4RL's own): flat ``observations``,
  ``actions``, ``rewards``, ``terminals``, optional ``timeouts`` and ``infos/goal``; other keys ignored.
  Nothing is ever unpickled: a non-hdf5 file is rejected by its signature.
- ``minari:ID`` (looked up offline under $MINARI_DATASETS_PATH, never downloaded) or the path of a Minari
  dataset folder: ours (Box observations in D4RL's frame) or gymnasium-robotics PointMaze data such as
  ``D4RL/pointmaze/large-v2`` (dict observations observation/achieved_goal/desired_goal).
- ``d4rl:ENV_NAME`` through ``d4rl.get_dataset``, only when the ``d4rl`` package imports.
- an OGBench npz file (``*.npz``) or ``ogbench:NAME`` (NAME.npz in $OGBENCH_DATA or ~/.ogbench/data, never
  downloaded), e.g. ``ogbench:pointmaze-giant-navigate-v0``: see ``dfplanner.data.ogbench_npz``.
- a maze name such as ``maze2d-large``: the default file ``dfplan data generate`` writes for it.

Choices:
- Episodes. ``episode_ends`` holds one-past-the-end indices; the last is N. For D4RL hdf5 they are the
  steps flagged by ``timeouts | terminals``. In D4RL maze2d those flags mark target changes inside one
  continuous run, so a window may span them (our files are physically continuous across them; D4RL's
  repeat one observation at each). Minari episodes become one segment each.
- Continuity. ``continuous`` says whether every episode starts where the previous one ended, so that
  training windows may span episode ends (config ``data.cross_episodes``): assumed for D4RL hdf5 files,
  checked for Minari ones (ours are continuous; a ``minari.DataCollector`` recording resets between episodes).
- Frame. Everything is returned in D4RL's frame (qpos = (row, col)), the frame of our env, expert and
  scores. gymnasium-robotics PointMaze data is converted with ``dfplanner.envs.pointmaze.PointMazeFrame``;
  ``goals`` come from ``desired_goal``.
- Minari keeps one more observation than actions per episode: the last one is dropped so that
  observations[t] is the state actions[t] was taken in. Rewards are kept as each source stores them:
  D4RL hdf5 rewards test observations[t] (D4RL's relabelling), Minari rewards test the state after the step.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from dfplanner.envs import dataset_env_id, family_of, is_known
from dfplanner.errors import DfplannerError
from dfplanner.data.offline import OfflineDataset, check_shape, validated
from dfplanner.data.ogbench_npz import PREFIX as OGBENCH_PREFIX, load_ogbench
from dfplanner.envs.pointmaze import PointMazeFrame, pointmaze_maze

REQUIRED_KEYS = ("observations", "actions", "rewards", "terminals")
OPTIONAL_KEYS = ("timeouts", "infos/goal")
MINARI_PREFIX, D4RL_PREFIX = "minari:", "d4rl:"


def load_dataset(source: str | Path) -> OfflineDataset:
    """Read and validate `source` (see the module docstring for what it may be)."""
    text = str(source)
    if text.startswith(OGBENCH_PREFIX) or text.endswith(".npz"):
        return load_ogbench(text)
    if text.startswith(MINARI_PREFIX):
        return _load_minari_id(text[len(MINARI_PREFIX) :])
    if text.startswith(D4RL_PREFIX):
        return _load_d4rl_package(text[len(D4RL_PREFIX) :])
    path = Path(text).expanduser()
    if path.is_dir():
        return _load_minari_path(path)
    if path.is_file():
        return _load_hdf5(path)
    default = family_of(text).default_dataset(text) if is_known(text) else None
    if default is not None:
        if not default.is_file():
            raise DfplannerError(f"no dataset for {text} at {default}; run: dfplan data generate --env {text}")
        return load_dataset(default)
    raise DfplannerError(f"dataset {text}: no such file or folder (or use minari:ID, ogbench:NAME, d4rl:ENV_NAME, an env whose data dfplan makes)")


def _load_hdf5(path: Path) -> OfflineDataset:
    import h5py

    if not h5py.is_hdf5(path):
        raise DfplannerError(f"{path}: not an HDF5 file")
    try:
        with h5py.File(path, "r") as file:
            keys = [key for key in REQUIRED_KEYS + OPTIONAL_KEYS if isinstance(file.get(key), h5py.Dataset)]
            arrays = {key: file[key][()] for key in keys}  # other keys are never read
            env_id = str(file.attrs.get("env_id", ""))
    except (OSError, KeyError, ValueError, RuntimeError) as error:  # truncated or corrupted file
        raise DfplannerError(f"{path}: unreadable HDF5 file ({error})") from error
    return _from_d4rl_arrays(arrays, str(path), env_id or dataset_env_id(path.name))


def _load_d4rl_package(env_name: str) -> OfflineDataset:
    try:
        import d4rl  # noqa: F401  (registers the D4RL envs with gym)
        import gym
    except Exception as error:  # d4rl needs mujoco-py and MuJoCo 2.1, which are usually missing
        raise DfplannerError(
            f"d4rl:{env_name} needs the d4rl package, which does not import here ({type(error).__name__}: {error}); "
            "pass a D4RL hdf5 path or run dfplan data generate"
        ) from error
    try:
        arrays = gym.make(env_name).get_dataset()
    except Exception as error:
        raise DfplannerError(f"d4rl:{env_name}: d4rl could not load the dataset ({error})") from error
    return _from_d4rl_arrays(arrays, f"d4rl:{env_name}", dataset_env_id(env_name))


def _from_d4rl_arrays(arrays: Mapping[str, np.ndarray], where: str, env_id: str) -> OfflineDataset:
    for key in REQUIRED_KEYS:
        if key not in arrays:
            raise DfplannerError(f"{where}: missing key {key!r}")
    observations = np.asarray(arrays["observations"])
    check_shape(observations, (None, None), "observations", where)
    n = len(observations)
    flags = np.asarray(arrays["terminals"])
    check_shape(flags, (n,), "terminals", where)
    if "timeouts" in arrays:
        timeouts = np.asarray(arrays["timeouts"])
        check_shape(timeouts, (n,), "timeouts", where)
        flags = flags.astype(bool) | timeouts.astype(bool)
    ends = np.flatnonzero(flags) + 1
    return validated(
        observations=observations,
        actions=arrays["actions"],
        rewards=arrays["rewards"],
        episode_ends=np.union1d(ends, [n]),
        goals=arrays.get("infos/goal"),
        where=where,
        env_id=env_id,
    )


MINARI_ROOT_VAR = "MINARI_DATASETS_PATH"


def minari_root() -> Path:
    """Where Minari keeps local datasets, by Minari's own rule, but without creating the folder (Minari's
    lookup helpers do: a missing id would leave ~/.minari behind)."""
    return Path(os.environ.get(MINARI_ROOT_VAR) or Path.home() / ".minari" / "datasets")


def open_minari(dataset_id: str):
    """The local Minari dataset `dataset_id` (never downloaded), or a one-line error."""
    import minari

    root = minari_root()
    try:
        if not root.is_dir():
            raise FileNotFoundError(root)
        return minari.load_dataset(dataset_id, download=False)  # never touches the network
    except FileNotFoundError as error:
        local = ", ".join(sorted(minari.list_local_datasets())) if root.is_dir() else ""
        raise DfplannerError(
            f"minari:{dataset_id}: not found locally at {root / dataset_id} (datasets are never downloaded; "
            f"fetch it with `minari download {dataset_id}` or set {MINARI_ROOT_VAR}; local datasets: {local or 'none'})"
        ) from error
    except Exception as error:
        raise DfplannerError(f"minari:{dataset_id}: unreadable Minari dataset ({error})") from error


def _load_minari_id(dataset_id: str) -> OfflineDataset:
    return _from_minari(open_minari(dataset_id), f"minari:{dataset_id}")


def _load_minari_path(path: Path) -> OfflineDataset:
    import minari

    data_path = path / "data" if (path / "data" / "metadata.json").is_file() else path
    if not (data_path / "metadata.json").is_file():
        raise DfplannerError(f"{path}: a folder but not a Minari dataset (no metadata.json)")
    try:
        dataset = minari.MinariDataset(data_path)
    except Exception as error:
        raise DfplannerError(f"{path}: unreadable Minari dataset ({error})") from error
    return _from_minari(dataset, str(path))


def _from_minari(dataset, where: str) -> OfflineDataset:
    env_spec = dataset.spec.env_spec
    space = dataset.observation_space
    try:
        episodes = list(dataset.iterate_episodes())
    except Exception as error:
        raise DfplannerError(f"{where}: unreadable Minari episodes ({error})") from error
    if not episodes:
        raise DfplannerError(f"{where}: the dataset has no episodes")
    if isinstance(observations := episodes[0].observations, dict):
        if not {"observation", "desired_goal"} <= set(observations):
            raise DfplannerError(f"{where}: dict observations need keys 'observation' and 'desired_goal'")
        maze = pointmaze_maze(env_spec, where)
        to_d4rl = PointMazeFrame(*maze.walls.shape)
        states = [to_d4rl.state(ep.observations["observation"]) for ep in episodes]
        actions = [to_d4rl.action(ep.actions) for ep in episodes]
        goals = [to_d4rl.position(ep.observations["desired_goal"][:-1]) for ep in episodes]
        env_id = maze.env_id
    elif len(getattr(space, "shape", None) or ()) == 1:
        states = [ep.observations for ep in episodes]
        actions = [ep.actions for ep in episodes]
        goals = [ep.infos["goal"][:-1] for ep in episodes] if "goal" in (episodes[0].infos or {}) else None
        env_id = env_spec.id if env_spec is not None and is_known(env_spec.id) else ""
    else:
        raise DfplannerError(f"{where}: unsupported observation space {space}")
    return validated(
        observations=np.concatenate([episode[:-1] for episode in states]),
        actions=np.concatenate(actions),
        rewards=np.concatenate([ep.rewards for ep in episodes]),
        episode_ends=np.cumsum([len(ep.actions) for ep in episodes]),
        goals=None if goals is None else np.concatenate(goals),
        where=where,
        env_id=env_id,
        continuous=bool(np.allclose([e[0] for e in states[1:]], [e[-1] for e in states[:-1]], atol=1e-6)),
    )
