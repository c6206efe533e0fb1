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
  downloaded), e.g. ``ogbench:pointmaze-giant-navigate-v0``: see ``dfplanner.ogbench_data``.
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
  scores. gymnasium-robotics PointMaze data is converted with ``dfplanner.pointmaze.PointMazeFrame``;
  ``goals`` come from ``desired_goal``.
- Minari keeps one more observation than actions per episode: the last one is dropped so that
  observations[t] is the state actions[t] was taken in. Rewards are kept as each source stores them:
  D4RL hdf5 rewards test observations[t] (D4RL's relabelling), Minari rewards test the state after the step.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dfplanner.envs.layouts import MAZES, resolve_env_id
from dfplanner.errors import DfplannerError
from dfplanner.pointmaze import PointMazeFrame, pointmaze_maze

ACTION_TOLERANCE = 1e-6  # float32 round-off allowed beyond [-1, 1]
REQUIRED_KEYS = ("observations", "actions", "rewards", "terminals")
OPTIONAL_KEYS = ("timeouts", "infos/goal")
D4RL_NAME = re.compile(r"(maze2d-(?:umaze|medium|large))")
MINARI_PREFIX, D4RL_PREFIX, OGBENCH_PREFIX = "minari:", "d4rl:", "ogbench:"


@dataclass
class OfflineDataset:
    """Transitions in time order; episode e is rows episode_ends[e-1]:episode_ends[e]."""

    observations: np.ndarray  # (N, obs_dim) float32
    actions: np.ndarray  # (N, act_dim) float32, in [-1, 1]
    rewards: np.ndarray  # (N,) float32
    episode_ends: np.ndarray  # (E,) int64, sorted, one past each episode's last step; the last is N
    goals: np.ndarray | None = None  # (N, 2) float32 target of each step, when the source records it
    source: str = ""
    env_id: str = ""  # e.g. "maze2d-large-v1"; "" when the source does not say
    continuous: bool = True  # each episode starts where the previous one ended (see the module docstring)

    def __len__(self) -> int:
        return len(self.observations)

    @property
    def num_episodes(self) -> int:
        return len(self.episode_ends)


def load_dataset(source: str | Path) -> OfflineDataset:
    """Read and validate `source` (see the module docstring for what it may be)."""
    text = str(source)
    if text.startswith(OGBENCH_PREFIX) or text.endswith(".npz"):
        from dfplanner.ogbench_data import load_ogbench

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
    if any(text in (spec.name, spec.env_id) for spec in MAZES.values()):
        from dfplanner.generate import default_dataset_path

        default = default_dataset_path(text)
        if not default.is_file():
            raise DfplannerError(f"no dataset for {text} at {default}; run: dfplan data generate --env {text}")
        return _load_hdf5(default)
    raise DfplannerError(f"dataset {text}: no such file or folder (or use minari:ID, d4rl:ENV_NAME, a maze name)")


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
    return _from_d4rl_arrays(arrays, str(path), env_id or _env_id_from_name(path.name))


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
    return _from_d4rl_arrays(arrays, f"d4rl:{env_name}", _env_id_from_name(env_name))


def _env_id_from_name(name: str) -> str:
    match = D4RL_NAME.search(name)
    return resolve_env_id(match.group(1)) if match else ""


def _from_d4rl_arrays(arrays: Mapping[str, np.ndarray], where: str, env_id: str) -> OfflineDataset:
    for key in REQUIRED_KEYS:
        if key not in arrays:
            raise DfplannerError(f"{where}: missing key {key!r}")
    observations = np.asarray(arrays["observations"])
    _check_shape(observations, (None, None), "observations", where)
    n = len(observations)
    flags = np.asarray(arrays["terminals"])
    _check_shape(flags, (n,), "terminals", where)
    if "timeouts" in arrays:
        timeouts = np.asarray(arrays["timeouts"])
        _check_shape(timeouts, (n,), "timeouts", where)
        flags = flags.astype(bool) | timeouts.astype(bool)
    ends = np.flatnonzero(flags) + 1
    return _validated(
        observations=observations,
        actions=arrays["actions"],
        rewards=arrays["rewards"],
        episode_ends=np.union1d(ends, [n]),
        goals=arrays.get("infos/goal"),
        where=where,
        env_id=env_id,
    )


def open_minari(dataset_id: str):
    """The local Minari dataset `dataset_id` (never downloaded), or a one-line error."""
    import minari
    from minari.storage import get_dataset_path

    try:
        return minari.load_dataset(dataset_id, download=False)  # never touches the network
    except FileNotFoundError as error:
        local = ", ".join(sorted(minari.list_local_datasets())) or "none"
        raise DfplannerError(
            f"minari:{dataset_id}: not found locally at {get_dataset_path(dataset_id)} (datasets are never downloaded; "
            f"fetch it with `minari download {dataset_id}` or set MINARI_DATASETS_PATH; local datasets: {local})"
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
        env_id = env_spec.id if env_spec is not None and env_spec.id in MAZES else ""
    else:
        raise DfplannerError(f"{where}: unsupported observation space {space}")
    return _validated(
        observations=np.concatenate([episode[:-1] for episode in states]),
        actions=np.concatenate(actions),
        rewards=np.concatenate([ep.rewards for ep in episodes]),
        episode_ends=np.cumsum([len(ep.actions) for ep in episodes]),
        goals=None if goals is None else np.concatenate(goals),
        where=where,
        env_id=env_id,
        continuous=bool(np.allclose([e[0] for e in states[1:]], [e[-1] for e in states[:-1]], atol=1e-6)),
    )


def _check_shape(array: np.ndarray, shape: tuple[int | None, ...], key: str, where: str) -> None:
    if array.ndim != len(shape) or any(want is not None and got != want for got, want in zip(array.shape, shape)):
        wanted = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise DfplannerError(f"{where}: key {key!r} has shape {array.shape}, expected {wanted}")


def _validated(
    observations, actions, rewards, episode_ends, goals, where: str, env_id: str, continuous: bool = True
) -> OfflineDataset:
    """Shapes, lengths, finiteness and the action range, each failure naming the source and key."""
    observations, actions, rewards = (np.asarray(a) for a in (observations, actions, rewards))
    n = len(observations)
    if n == 0:
        raise DfplannerError(f"{where}: key 'observations' is empty")
    checks: dict[str, tuple[np.ndarray, tuple[int | None, ...]]] = {
        "observations": (observations, (n, None)),
        "actions": (actions, (n, None)),
        "rewards": (rewards, (n,)),
    }
    if goals is not None:
        checks["infos/goal"] = (np.asarray(goals), (n, 2))
    for key, (array, shape) in checks.items():
        if array.ndim == len(shape) and len(array) != n:
            raise DfplannerError(f"{where}: key {key!r} has {len(array)} rows but 'observations' has {n}")
        _check_shape(array, shape, key, where)
        if not np.issubdtype(array.dtype, np.number):
            raise DfplannerError(f"{where}: key {key!r} has non-numeric dtype {array.dtype}")
        if not np.isfinite(array).all():
            bad = int(np.flatnonzero(~np.isfinite(array).reshape(n, -1).all(axis=1))[0])
            raise DfplannerError(f"{where}: key {key!r} has NaN or inf (first at row {bad})")
    worst = float(np.abs(actions).max())
    if worst > 1.0 + ACTION_TOLERANCE:
        raise DfplannerError(f"{where}: key 'actions' has values outside [-1, 1] (max |a| = {worst:.6g})")
    return OfflineDataset(
        observations=observations.astype(np.float32),
        actions=actions.astype(np.float32),
        rewards=rewards.astype(np.float32),
        episode_ends=np.asarray(episode_ends, dtype=np.int64),
        goals=None if goals is None else np.asarray(goals, dtype=np.float32),
        source=where,
        env_id=env_id,
        continuous=continuous,
    )
