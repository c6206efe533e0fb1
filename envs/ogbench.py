"""OGBench's mazes (Park et al., ICLR 2025) and the PointMaze family: envs, evaluation tasks, data recipe, oracle.

The envs are OGBench's own (``pointmaze-{medium,large,giant}-v0`` from the ``ogbench`` package), never
re-implemented here. The point is kinematic: observation = qpos (x, y), action in [-1, 1]^2, each step
adds 0.2 * action to qpos. Cells are 4 units wide; cell (i, j) is centred at (4 j - 4, 4 i - 4).

- Evaluation (``make_eval_env``): OGBench's default env (terminate at goal, 1,000 steps), its 5 tasks
  (``reset(options={"task_id": k})``, k = 1..5, start and goal noisy), success = ``info["success"]``.
  OGBench draws that noise from the global ``np.random``; ``EvalEnv.reset(seed=s)`` seeds it from s for
  the reset only, so an episode depends on its seed alone.
- Data (``make_collection_env``, ``DatasetSpec``): the env of OGBench's data_gen_scripts/commands.sh
  (no termination at the goal, 1,001 / 2,001 / 201 steps per episode).
- Oracle (``Subgoals``, ``OraclePolicy``): OGBench's ``get_oracle_subgoal`` (BFS over cells; the centre
  of the next cell on a shortest path, or of the goal's cell once in it).

``OGBenchMazeFamily`` is what every OGBench maze family shares (names, tasks, data files, the picture);
``PointMazeFamily`` adds the point's facts. The AntMaze family (``dfplanner.envs.antmaze``) is another.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np

from dfplanner.envs.family import EnvFamily, EvalTask, MazeLayout, check_no_options
from dfplanner.errors import DfplannerError

MAZES = ("medium", "large", "giant")
KINDS = ("navigate", "stitch")
NUM_TASKS = 5  # OGBench's evaluation tasks per maze (locomaze/maze.py set_tasks)
STEP_PER_ACTION = 0.2  # OGBench's point is kinematic: each step moves qpos by 0.2 * action (locomaze/point.py)
DIRECTION_EPS = 1e-6  # generate_locomaze.py: subgoal_dir / (norm + 1e-6)
NAME = re.compile(r"(?P<agent>[a-z]+maze)-(?P<maze>medium|large|giant)-(?:(?P<kind>navigate|stitch)-)?v0")


@dataclass(frozen=True)
class DatasetSpec:
    """One OGBench maze dataset, e.g. pointmaze-giant-navigate-v0, and its recipe (commands.sh)."""

    maze: str  # medium, large or giant
    kind: str  # navigate or stitch
    agent: str = "pointmaze"  # the env family's prefix: pointmaze or antmaze

    @property
    def name(self) -> str:
        return f"{self.agent}-{self.maze}-{self.kind}-v0"

    @property
    def env_id(self) -> str:
        return f"{self.agent}-{self.maze}-v0"

    @property
    def episodes(self) -> int:
        """Training episodes (the -val file holds a tenth more): navigate 1,000 (giant 500), stitch 5,000."""
        if self.kind == "stitch":
            return 5000
        return 500 if self.maze == "giant" else 1000

    @property
    def episode_steps(self) -> int:
        """``--max_episode_steps`` of the collection env: navigate 1,001 (giant 2,001), stitch 201."""
        if self.kind == "stitch":
            return 201
        return 2001 if self.maze == "giant" else 1001


def _parse(name: str) -> re.Match:
    match = NAME.fullmatch(name)
    if match is None:
        agent = name.split("-")[0]
        raise DfplannerError(
            f"unknown OGBench name {name!r}; valid: {agent}-{{{','.join(MAZES)}}}-{{{','.join(KINDS)}}}-v0"
        )
    return match


def dataset_spec(name: str) -> DatasetSpec:
    """The dataset a name such as pointmaze-giant-stitch-v0 means."""
    match = _parse(name)
    if match["kind"] is None:
        raise DfplannerError(f"{name} is an env, not a dataset: add -navigate or -stitch (e.g. {match['agent']}-{match['maze']}-navigate-v0)")
    return DatasetSpec(match["maze"], match["kind"], match["agent"])


def eval_env_id(name: str) -> str:
    """The evaluation env of a dataset or env name: pointmaze-giant-stitch-v0 -> pointmaze-giant-v0."""
    match = _parse(name)
    return f"{match['agent']}-{match['maze']}-v0"


def make_env(env_id: str, **kwargs) -> gym.Env:
    """OGBench's env, as ``ogbench.make_env_and_datasets(..., env_only=True)`` makes it."""
    import ogbench.locomaze  # noqa: F401  (registers the locomaze envs)

    env = gym.make(env_id, **kwargs)
    mjcf = Path(env.unwrapped.fullpath)  # OGBench writes each env's maze to a new temp file and leaves it there
    if mjcf.parent == Path(tempfile.gettempdir()):
        mjcf.unlink(missing_ok=True)  # the model is loaded by now
    return env


def episode_steps(env_id: str) -> int:
    """OGBench's evaluation episode length (its registration's max_episode_steps: 1,000)."""
    import ogbench.locomaze  # noqa: F401

    return gym.spec(env_id).max_episode_steps


def make_collection_env(spec: DatasetSpec) -> gym.Env:
    """The env generate_locomaze.py collects in: no termination at the goal, the recipe's episode length."""
    return make_env(spec.env_id, terminate_at_goal=False, max_episode_steps=spec.episode_steps)


def make_eval_env(env_id: str) -> gym.Env:
    """OGBench's evaluation env (terminate_at_goal=True), in dfplanner.evaluation.rollout's interface."""
    return EvalEnv(make_env(env_id))


def task_ids(task: int | None) -> tuple[int, ...]:
    """The evaluation tasks to run: one (``--task K``) or all 5."""
    if task is None:
        return tuple(range(1, NUM_TASKS + 1))
    if not 1 <= task <= NUM_TASKS:
        raise DfplannerError(f"--task must be in 1..{NUM_TASKS} (OGBench's evaluation tasks), got {task}")
    return (task,)


@contextmanager
def numpy_global_seed(seed: int | None) -> Iterator[None]:
    """Seed the global ``np.random`` (which OGBench draws its noise from) for a block, then restore it."""
    if seed is None:
        yield
        return
    state = np.random.get_state()
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        np.random.set_state(state)


class EvalEnv(gym.Wrapper):
    """OGBench's env as dfplanner.evaluation.rollout expects it: float32 observations, the goal position as
    ``info["target"]`` (OGBench's ``info["goal"]`` is the goal observation, whose first two entries are
    its xy), bool ``info["success"]``, actions clipped to [-1, 1] as OGBench's impls/utils/evaluation.py does."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=env.observation_space.shape, dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        with numpy_global_seed(seed):
            observation, info = self.env.reset(seed=seed, options=options)
        return observation.astype(np.float32), {**info, "target": np.asarray(info["goal"][:2], dtype=np.float64)}

    def step(self, action: np.ndarray):
        observation, reward, terminated, truncated, info = self.env.step(np.clip(action, -1.0, 1.0))
        return observation.astype(np.float32), float(reward), terminated, truncated, {**info, "success": bool(info["success"])}


class Subgoals:
    """OGBench's ``get_oracle_subgoal``, memoized: it runs a BFS over the whole maze at every call
    (~0.3 ms, as long as an env step) and depends only on the two cells."""

    def __init__(self, maze_env):
        self.env = maze_env  # an unwrapped OGBench maze env: only its maze map is used
        self.cache: dict[tuple, np.ndarray] = {}

    def cell(self, xy: np.ndarray) -> tuple[int, int]:
        return self.env.xy_to_ij(xy)

    def __call__(self, xy: np.ndarray, goal_xy: np.ndarray) -> np.ndarray:
        """The centre of the next cell on a shortest path from xy's cell to goal_xy's (or of the goal's cell)."""
        key = (self.cell(xy), self.cell(goal_xy))
        if key not in self.cache:
            self.cache[key] = self.env.get_oracle_subgoal(xy, goal_xy)[0]
        return self.cache[key]


def unit(vector: np.ndarray) -> np.ndarray:
    """generate_locomaze.py's direction: the vector over its norm (+ DIRECTION_EPS)."""
    return vector / (np.linalg.norm(vector) + DIRECTION_EPS)


class OraclePolicy:
    """Evaluation only: full steps along OGBench's oracle subgoal direction, no noise.

    One change from the data recipe: in the goal's cell it heads for the goal itself, not the cell's
    centre, since the noisy goal can lie up to sqrt(2) from the centre, beyond the 1.0 success radius."""

    name = "oracle"

    def __init__(self, env_id: str):
        env = make_env(env_id)
        self.subgoals = Subgoals(env.unwrapped)
        env.close()

    def reset(self, observations: np.ndarray, targets: np.ndarray) -> None:
        self.targets = np.array(targets, dtype=np.float64)

    def directions(self, observations: np.ndarray) -> np.ndarray:
        """(B, 2) unit directions to the oracle's subgoal (to the goal itself in the goal's cell)."""
        directions = np.empty((len(observations), 2))
        for row, (xy, goal) in enumerate(zip(observations[:, :2].astype(np.float64), self.targets)):
            at_goal_cell = self.subgoals.cell(xy) == self.subgoals.cell(goal)
            directions[row] = unit((goal if at_goal_cell else self.subgoals(xy, goal)) - xy)
        return directions

    def act(self, observations: np.ndarray) -> np.ndarray:
        return self.directions(observations)  # the point moves along the direction itself


class OGBenchMazeFamily(EnvFamily):
    """What OGBench's maze families share: names AGENT-{medium,large,giant}[-{navigate,stitch}]-v0,
    OGBench's protocol (its env, 1,000 steps, terminating at the goal; episode i runs task i mod 5 + 1,
    or the one asked for), its npz data files and its maze picture."""

    agent = ""  # the names' prefix, e.g. pointmaze

    @property
    def names(self) -> str:
        return f"{self.agent}-{{{','.join(MAZES)}}}-{{{','.join(KINDS)}}}-v0"

    def recognises(self, name: str) -> bool:
        return name.startswith(f"{self.agent}-")

    def env_id(self, name: str) -> str:
        _parse(name)  # the name as it is (datasets are named by their data), or a user error
        return name

    def eval_task(self, name: str, multi_goal: bool = False, task: int | None = None) -> EvalTask:
        if multi_goal:
            raise DfplannerError(f"{name}: --multi-goal is for maze2d; OGBench evaluates its 5 fixed tasks (--task K for one)")
        env_id, tasks = eval_env_id(name), task_ids(task)
        return EvalTask(name, name, self, lambda: make_eval_env(env_id), episode_steps(env_id), multi_goal=True,
                        reset_options=lambda i: {"task_id": tasks[i % len(tasks)]})

    def default_dataset(self, env_id: str) -> Path | None:
        from dfplanner.data.ogbench_npz import data_dir

        return data_dir() / f"{dataset_spec(env_id).name}.npz"

    def walker(self):
        """The agent the data recipe drives along the oracle's directions (a dfplanner.data.ogbench_recipe.Walker)."""
        raise NotImplementedError

    def generate(self, name: str, seed: int, out: str | None, progress: bool = True, episodes: int | None = None, **options) -> str:
        from dfplanner.data.ogbench_recipe import generate

        check_no_options(f"{name} (an OGBench dataset, which takes --episodes)", options)
        info = generate(name, self.walker(), episodes=episodes, seed=seed, out=out, progress=progress)
        return (f"wrote {info['path']} ({info['episodes']} episodes, {info['steps']} steps) and {info['val_path']} "
                f"({info['val_episodes']} episodes), seed {info['seed']}, {info['seconds']:.1f} s")

    def layout(self, env_id: str) -> MazeLayout:
        """OGBench's frame: positions are (x, y) = (across, down), cell (i, j) centred at ij_to_xy((i, j))."""
        env = make_env(eval_env_id(env_id)).unwrapped
        env.close()
        return MazeLayout(env.maze_map == 1, float(env._maze_unit), tuple(env.ij_to_xy((0, 0))), (0, 1))


# PD aims 15 env steps along the plan: the fastest arrival of 0 / 5 / 15 / 30 on OGBench's datasets,
# seed 777 (results/ogbench_table.md); maze2d's family chose the same number on its own data.
TRACK_AHEAD = 15
POINT_ACTION_NOISE = 0.5  # commands.sh: pointmaze datasets --noise=0.5


class PointMazeFamily(OGBenchMazeFamily):
    """OGBench PointMaze: observation = position, so PD's one-step gain reaches the planned position."""

    name = "ogbench-pointmaze"
    agent = "pointmaze"

    def planner_facts(self, env_id: str) -> dict:
        return {"position_dims": (0, 1), "velocity_dims": (), "pd_gains": (1.0 / STEP_PER_ACTION, 0.0), "track_ahead": TRACK_AHEAD}

    def action_bounds(self, env_id: str) -> tuple[np.ndarray, np.ndarray]:
        return np.full(2, -1.0), np.full(2, 1.0)

    def oracle(self, env_id: str) -> OraclePolicy:
        return OraclePolicy(eval_env_id(env_id))

    def walker(self):
        """generate_locomaze.py's point: the action is the direction itself."""
        from dfplanner.data.ogbench_recipe import Walker

        return Walker(lambda observation, direction: direction, POINT_ACTION_NOISE)


FAMILY = PointMazeFamily()
