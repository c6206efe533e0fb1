"""Make OGBench maze datasets locally with OGBench's published recipe, in OGBench's npz format.

The recipe is data_gen_scripts/generate_locomaze.py with the arguments of commands.sh, run in the env
``dfplanner.envs.ogbench.make_collection_env`` builds (no termination at the goal). Each episode:
- starts in a uniformly drawn free cell (OGBench adds its start noise);
- navigate: the goal is a uniformly drawn vertex cell (a free cell that is not a straight hallway cell),
  and on reaching it (``info["success"]``) a new vertex goal is set, until the episode's 1,001 (giant
  2,001) steps are up; stitch: the goal is a cell at BFS distance 4 from the start (the start cell if
  there is none), kept for all 201 steps;
- acts with the family's walker (a `Walker`) heading along the unit vector towards OGBench's
  ``get_oracle_subgoal``, plus the walker's Gaussian action noise, clipped: PointMaze's point moves along
  the direction itself (noise 0.5), AntMaze's ant is driven by its SAC expert (noise 0.2).
``num_episodes // 10`` more episodes, collected after the training ones, make the -val file.

OGBench's script draws from the unseeded global ``np.random``; here every draw is seeded (OGBench's own
start/goal noise through the global generator, seeded for the run and restored after), so a seed
reproduces a file. The files are drawn the same way as OGBench's, not bit-identical to its downloads.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dfplanner.utils.atomic import check_writable
from dfplanner.envs.ogbench import DatasetSpec, Subgoals, dataset_spec, make_collection_env, numpy_global_seed, unit
from dfplanner.errors import DfplannerError
from dfplanner.data.maze2d_recipe import check_size
from dfplanner.data.ogbench_npz import FILE_KEYS, data_dir, file_dtype, val_path, write_npz

DEFAULT_SEED = 0


@dataclass(frozen=True)
class Walker:
    """How an agent heads in a direction: `act(observation, direction) -> action`, and the std of the
    Gaussian noise the recipe adds to its actions (commands.sh: --noise)."""

    act: Callable[[np.ndarray, np.ndarray], np.ndarray]
    noise: float
STITCH_DISTANCE = 4  # generate_locomaze.py: adj_steps, the stitch goal's BFS distance in cells
VAL_FRACTION = 10  # generate_locomaze.py: num_val_episodes = num_episodes // 10
FREE = 0  # maze_map value of a free cell (1 is a wall)


def vertex_cells(maze_map: np.ndarray) -> list[tuple[int, int]]:
    """Free cells that are not straight hallway cells (free on both sides along one axis, walled on the other)."""
    cells = []
    for i, j in np.argwhere(maze_map == FREE):
        up, down, left, right = (maze_map[i + di, j + dj] == FREE for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1)))
        hallway = (up and down and not left and not right) or (left and right and not up and not down)
        if not hallway:
            cells.append((int(i), int(j)))
    return cells


def stitch_goal(env, start: tuple[int, int], rng: np.random.Generator) -> tuple[int, int]:
    """A cell at BFS distance STITCH_DISTANCE from `start` (BFS by OGBench's get_oracle_subgoal), else `start`."""
    start_xy = env.ij_to_xy(start)
    distances = env.get_oracle_subgoal(start_xy, start_xy)[1]  # BFS distances from `start` to every cell
    cells = np.argwhere(distances == STITCH_DISTANCE)
    return tuple(int(v) for v in cells[rng.integers(len(cells))]) if len(cells) else start


def run_episode(env, spec: DatasetSpec, walker: Walker, subgoals: Subgoals, vertex: list, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One episode of the recipe, its rows as generate_locomaze.py records them (qpos/qvel before the step)."""
    maze = env.unwrapped
    free = np.argwhere(maze.maze_map == FREE)
    start = tuple(int(v) for v in free[rng.integers(len(free))])
    goal = vertex[rng.integers(len(vertex))] if spec.kind == "navigate" else stitch_goal(maze, start, rng)
    observation, _ = env.reset(options=dict(task_info=dict(init_ij=start, goal_ij=goal)))
    rows: dict[str, list] = {key: [] for key in FILE_KEYS}
    done = False
    while not done:
        xy = maze.get_xy()
        direction = unit(subgoals(xy, maze.cur_goal_xy) - xy)
        heading = walker.act(observation, direction)
        action = np.clip(heading + rng.normal(0.0, walker.noise, size=heading.shape), -1.0, 1.0)
        next_observation, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
        if info["success"] and spec.kind == "navigate":
            maze.set_goal(vertex[rng.integers(len(vertex))])  # OGBench adds its goal noise
        for key, value in zip(rows, (observation, action, done, info["prev_qpos"], info["prev_qvel"])):
            rows[key].append(value)
        observation = next_observation
    return {key: np.array(values, dtype=file_dtype(key)) for key, values in rows.items()}


def collect(spec: DatasetSpec, walker: Walker, episodes: int, seed: int, progress: bool = True) -> list[dict[str, np.ndarray]]:
    """`episodes` episodes of the recipe, seeded by `seed` alone."""
    env = make_collection_env(spec)
    rng = np.random.default_rng(seed)
    with numpy_global_seed(seed):
        env.reset(seed=seed)  # seeds the env's own generator (the start velocity of reset_model)
        subgoals, vertex = Subgoals(env.unwrapped), vertex_cells(env.unwrapped.maze_map)
        runs = [run_episode(env, spec, walker, subgoals, vertex, rng)
                for _ in tqdm(range(episodes), unit="episode", desc=f"{spec.name} data", disable=not progress)]
    env.close()
    return runs


def concatenate(runs: list[dict[str, np.ndarray]], keys) -> dict[str, np.ndarray]:
    """Episodes back to back (no episode: empty arrays, as OGBench writes an empty -val file)."""
    return {key: np.concatenate([run[key] for run in runs]) if runs else np.array([], dtype=file_dtype(key)) for key in keys}


def default_path(name: str, episodes: int, seed: int) -> Path:
    """OGBench's file name for the recipe's size and the default seed; other sizes/seeds get their own."""
    stem = name if (episodes, seed) == (dataset_spec(name).episodes, DEFAULT_SEED) else f"{name}-{episodes}episodes-seed{seed}"
    return data_dir() / f"{stem}.npz"


def generate(
    name: str, walker: Walker, episodes: int | None = None, seed: int = DEFAULT_SEED, out: str | Path | None = None,
    progress: bool = True,
) -> dict[str, object]:
    """Collect the training and validation episodes, write NAME.npz and NAME-val.npz, say what was written."""
    spec = dataset_spec(name)
    episodes = spec.episodes if episodes is None else episodes
    check_size("episodes", episodes, seed, spec.episode_steps * (1 + 1 / VAL_FRACTION))  # with the -val file
    if out is None:
        path = default_path(spec.name, episodes, seed)
        path.parent.mkdir(parents=True, exist_ok=True)
    else:
        path = Path(out).expanduser()
    if path.suffix != ".npz":
        raise DfplannerError(f"--out {path}: OGBench files end in .npz (the validation file is NAME-val.npz)")
    for file in (path, val_path(path)):
        check_writable(file)  # fail before the run, not after it
    start = time.perf_counter()
    runs = collect(spec, walker, episodes + episodes // VAL_FRACTION, seed, progress)
    train, val = concatenate(runs[:episodes], runs[0]), concatenate(runs[episodes:], runs[0])
    write_npz(path, train)
    write_npz(val_path(path), val)
    return {"path": str(path), "val_path": str(val_path(path)), "env": spec.name, "episodes": episodes,
            "val_episodes": episodes // VAL_FRACTION, "steps": len(train["terminals"]), "seed": seed,
            "seconds": time.perf_counter() - start}
