"""Make maze2d offline datasets with D4RL's recipe (``scripts/generation/generate_maze2d_datasets.py``).

One continuous run, never teleported: the waypoint expert drives towards a target, its actions get
N(0, 0.5) noise and are clipped; when the target is reached (within 0.1) or the episode length has
passed, a new random target (free cell + U(-0.1, 0.1)) is drawn and the run continues from where the
particle is. Written in D4RL's hdf5 format: the same keys, shapes, dtypes and gzip, ``timeouts`` marking
the steps after which the target changed, ``terminals`` all False, and rewards relabelled sparse against
the fixed evaluation target with D4RL's off-by-one (reward[t] tests observations[t]).

One deliberate difference: after a target change D4RL's script keeps its stale observation for one
step (it skips ``s = ns``), so each boundary repeats an observation that is not the real state. Here
observations[t + 1] is always the state after actions[t].
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from dfplanner.utils.atomic import atomic_output, check_writable
from dfplanner.envs.layouts import MazeSpec, maze_spec
from dfplanner.envs.maze2d import GOAL_RADIUS, Maze2dEnv, physics_step, random_free_position
from dfplanner.envs.oracle import WaypointExpert
from dfplanner.errors import DfplannerError

DATA_ENV_VAR = "DFPLANNER_DATA"
DEFAULT_SEED = 0
ACTION_NOISE_STD = 0.5
PROGRESS_EVERY = 10_000  # steps per progress-bar update: keeps the bar off the per-step cost


def data_dir() -> Path:
    """The dataset cache folder: $DFPLANNER_DATA, else ~/.cache/dfplanner."""
    return Path(os.environ.get(DATA_ENV_VAR) or Path.home() / ".cache" / "dfplanner").expanduser()


def make_data_dir() -> Path:
    """The dataset cache folder, created if needed; a file or an uncreatable folder there is a user error."""
    folder = data_dir()
    if folder.exists() and not folder.is_dir():
        raise DfplannerError(f"dataset folder {folder} (${DATA_ENV_VAR}) is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DfplannerError(f"cannot create dataset folder {folder} (${DATA_ENV_VAR}): {error.strerror}") from None
    return folder


def default_dataset_path(env_name: str, steps: int | None = None, seed: int = DEFAULT_SEED) -> Path:
    """D4RL's file name for D4RL's size and the default seed; other sizes/seeds get their own file."""
    maze = maze_spec(env_name)
    steps = maze.dataset_steps if steps is None else steps
    stem = f"{maze.name}-sparse-v1"
    if steps != maze.dataset_steps or seed != DEFAULT_SEED:
        stem += f"-{steps}steps-seed{seed}"
    return data_dir() / f"{stem}.hdf5"


def collect(maze: MazeSpec, steps: int, seed: int, progress: bool = True) -> dict[str, np.ndarray]:
    """Run the noisy expert; ``observations`` has steps + 1 rows (the last one follows the last action)."""
    env = Maze2dEnv(maze.name)
    env.reset(seed=seed)  # D4RL's reset: random free cell + noise, velocity N(0, 0.1)
    rng = env.np_random
    expert = WaypointExpert(maze)
    target = random_free_position(maze, rng)
    expert.set_targets(target[None])
    noise = rng.normal(0.0, ACTION_NOISE_STD, size=(steps, 2))
    observations = np.empty((steps + 1, 4))
    actions = np.empty((steps, 2))
    goals = np.empty((steps, 2))
    timeouts = np.zeros(steps, dtype=bool)
    since_target = 0
    with tqdm(total=steps, unit="step", desc=f"{maze.name} data", disable=not progress) as bar:
        for t in range(steps):
            observations[t, :2] = env.data.qpos
            observations[t, 2:] = env.data.qvel
            position, velocity = observations[t : t + 1, :2], observations[t : t + 1, 2:]
            actions[t] = np.clip(expert.act(position, velocity)[0] + noise[t], -1.0, 1.0)
            goals[t] = target
            # D4RL: the episode length has passed (its `ts >= max_episode_steps`) or the target is reached
            timeouts[t] = since_target >= maze.max_episode_steps or expert.reached(position)[0]
            physics_step(env.model, env.data, actions[t])
            since_target += 1
            if timeouts[t]:
                target = random_free_position(maze, rng)
                expert.set_targets(target[None])
                since_target = 0
            if (t + 1) % PROGRESS_EVERY == 0:
                bar.update(PROGRESS_EVERY)
        bar.update(steps % PROGRESS_EVERY)
    observations[steps, :2] = env.data.qpos
    observations[steps, 2:] = env.data.qvel
    return {
        "observations": observations.astype(np.float32),
        "actions": actions.astype(np.float32),
        "goals": goals.astype(np.float32),
        "timeouts": timeouts,
    }


def sparse_rewards(maze: MazeSpec, observations: np.ndarray) -> np.ndarray:
    """(N,) float32: 1 where the observation is within 0.5 of the fixed evaluation target."""
    return (np.linalg.norm(observations[:, :2] - maze.goal, axis=1) <= GOAL_RADIUS).astype(np.float32)


def write_d4rl_hdf5(path: Path, maze: MazeSpec, run: dict[str, np.ndarray], seed: int) -> None:
    """D4RL's maze2d-*-sparse-v1.hdf5 layout; the env id and seed go in root attributes, not keys."""
    observations = run["observations"][:-1]
    arrays = {
        "observations": observations,
        "actions": run["actions"],
        "rewards": sparse_rewards(maze, observations),  # reward[t] tests observations[t], as D4RL's relabelling
        "terminals": np.zeros(len(observations), dtype=bool),
        "timeouts": run["timeouts"],
        "infos/goal": run["goals"],
        "infos/qpos": observations[:, :2],
        "infos/qvel": observations[:, 2:],
    }
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as file:
        for key, array in arrays.items():
            file.create_dataset(key, data=array, compression="gzip")
        file.attrs.update({"env_id": maze.env_id, "seed": seed, "generator": "dfplanner"})


def write_minari(dataset_id: str, maze: MazeSpec, run: dict[str, np.ndarray]) -> None:
    """The same run as a Minari dataset: one episode per target, Box observations in D4RL's frame.

    Each episode keeps Minari's convention of one more observation than actions; its rewards are the
    env's own step rewards (they test the observation after the action), truncations end every episode.
    """
    import minari
    from minari.data_collector import EpisodeBuffer

    observations, actions = run["observations"], run["actions"]
    step_rewards = sparse_rewards(maze, observations[1:])
    ends = np.flatnonzero(run["timeouts"]) + 1
    bounds = np.unique(np.concatenate([[0], ends, [len(actions)]]))
    buffers = []
    for begin, end in zip(bounds[:-1], bounds[1:]):
        length = end - begin
        buffers.append(
            EpisodeBuffer(
                observations=observations[begin : end + 1],
                actions=actions[begin:end],
                rewards=step_rewards[begin:end],
                terminations=np.zeros(length, dtype=bool),
                truncations=np.arange(length) == length - 1,
                infos={"goal": np.repeat(run["goals"][begin : begin + 1], length + 1, axis=0)},
            )
        )
    path = new_minari_path(dataset_id)
    try:
        with warnings.catch_warnings():  # minari warns about every optional metadata field left empty
            warnings.simplefilter("ignore")
            minari.create_dataset_from_buffers(
                dataset_id=dataset_id,
                buffer=buffers,
                env=maze.env_id,
                eval_env=maze.env_id,
                algorithm_name="D4RL maze2d waypoint expert + N(0, 0.5) action noise",
                author="dfplanner",
                ref_min_score=maze.ref_min_score,
                ref_max_score=maze.ref_max_score,
                description=f"{maze.env_id}: D4RL's maze2d recipe, one episode per target.",
            )
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)  # never leave a half-written dataset behind
        raise


def new_minari_path(dataset_id: str) -> Path:
    """Where a new Minari dataset `dataset_id` goes; a malformed or taken id is a user error."""
    from minari.dataset.minari_dataset import parse_dataset_id
    from minari.storage.datasets_root_dir import get_dataset_path

    try:
        parse_dataset_id(dataset_id)
    except (ValueError, TypeError) as error:
        raise DfplannerError(f"bad Minari dataset id {dataset_id!r}: use (namespace/)name-v<version>") from error
    path = get_dataset_path(dataset_id)
    if path.exists():
        raise DfplannerError(f"Minari dataset {dataset_id!r} already exists at {path}; choose another id")
    return path


MAX_DATASET_STEPS = 20_000_000  # a dataset is collected in memory: about 1.2 GB at this size (D4RL's largest maze2d file: 4M)


def check_size(flag: str, count: int, seed: int, steps_each: float = 1) -> None:
    """A dataset's size (--steps, or --episodes of `steps_each` steps) and seed, checked before any work."""
    if count <= 0:
        raise DfplannerError(f"--{flag} must be positive, got {count}")
    steps = round(count * steps_each)
    if steps > MAX_DATASET_STEPS:
        raise DfplannerError(f"--{flag} {count} makes {steps:,} steps; at most {MAX_DATASET_STEPS:,} are collected in memory")
    if seed < 0:
        raise DfplannerError(f"--seed must be non-negative, got {seed}")


def generate(
    env_name: str,
    steps: int | None = None,
    seed: int = DEFAULT_SEED,
    out: str | Path | None = None,
    minari_id: str | None = None,
    progress: bool = True,
) -> dict[str, object]:
    """Generate, write the hdf5 (and optionally a Minari dataset), and say what was written."""
    maze = maze_spec(env_name)
    steps = maze.dataset_steps if steps is None else steps
    check_size("steps", steps, seed)
    if out is None:
        make_data_dir()
        path = default_dataset_path(maze.name, steps, seed)
    else:
        path = Path(out).expanduser()
    check_writable(path)  # fail before the run, not after it
    if minari_id is not None:
        new_minari_path(minari_id)
    start = time.perf_counter()
    run = collect(maze, steps, seed, progress)
    write_d4rl_hdf5(path, maze, run, seed)
    if minari_id is not None:
        write_minari(minari_id, maze, run)
    return {
        "path": str(path),
        "env": maze.env_id,
        "steps": steps,
        "seed": seed,
        "targets": int(run["timeouts"].sum()),
        "minari_id": minari_id,
        "seconds": time.perf_counter() - start,
    }
