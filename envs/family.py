"""The env-family interface: what dfplanner asks of a family of environments, and what it gets back.

A family (one module of dfplanner.envs) recognises the names it owns and answers, for each: how it is
evaluated (`EvalTask`), what a planner must know of it (`planner_facts`), how its data is made
(`generate`) and which dataset it trains on by default, its oracle if it has one, and the maze
`--plot` draws. The registry (`dfplanner.envs.FAMILIES`) lists the families in order; the rest of the
package asks it and never tests a name itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Protocol

import gymnasium as gym
import numpy as np

from dfplanner.errors import DfplannerError


class Policy(Protocol):
    """A batched policy: one row per environment of the batch."""

    name: str

    def reset(self, observations: np.ndarray, targets: np.ndarray | None) -> None:
        """Start of a batch of episodes: observations (B, obs_dim) float32, targets (B, goal_dim) (None: the env has no goal)."""

    def act(self, observations: np.ndarray) -> np.ndarray:
        """(B, obs_dim) float32 observations -> (B, act_dim) actions."""


@dataclass(frozen=True)
class MazeLayout:
    """A maze as the pictures draw it: wall cells (row, column), the cell size, where cell (0, 0)'s
    centre falls (across, down), and which two position coordinates are drawn across and down."""

    walls: np.ndarray
    cell: float
    origin: tuple[float, float]
    across_down: tuple[int, int]

    def screen(self, positions: np.ndarray) -> np.ndarray:
        """(..., >= 2) positions -> (..., 2) picture coordinates (across, down)."""
        return np.asarray(positions)[..., list(self.across_down)]


TAIL_STEPS = 100  # how far back `EvalTask.failure_kinds` looks to tell a stuck agent from a moving one


@dataclass(frozen=True)
class EvalTask:
    """What `dfplanner.evaluation.rollout.evaluate` runs: `steps`-step episodes in envs from `make_env`,
    with flat observations, the goal as ``info["target"]`` and ``info["success"]`` where there is a goal."""

    name: str  # what the user asked for, e.g. maze2d-large-v1 or pointmaze-giant-stitch-v0
    env_id: str  # the env id checkpoints record (and shipped checkpoints are named by)
    family: EnvFamily
    make_env: Callable[[], gym.Env]
    steps: int
    multi_goal: bool
    normalize: Callable[[float], float] | None = None  # return -> normalized score, where the family has one
    reset_options: Callable[[int], dict] | None = None  # episode index -> its reset options (OGBench: its task)
    has_goal: bool = True  # False: an env without goal or success (returns only)
    make_render_env: Callable[[], gym.Env] | None = None  # an env with rgb_array frames, for --video; None: none
    # Why each episode that missed its goal failed, for the eval JSON: (final observations (B, obs_dim),
    # xy TAIL_STEPS steps before the end (B, 2)) -> one word each. None: the family does not say.
    failure_kinds: Callable[[np.ndarray, np.ndarray], list[str]] | None = None

    @cached_property
    def spaces(self) -> tuple[gym.spaces.Box, gym.spaces.Box]:
        """The envs' observation and action spaces."""
        env = self.make_env()
        env.close()
        return env.observation_space, env.action_space

    @property
    def obs_dim(self) -> int:
        return self.spaces[0].shape[0]


class EnvFamily:
    """One family of envs. Subclasses set `name` and `names` (the names it owns, for messages) and
    implement `recognises`, `env_id`, `eval_task` and `planner_facts`; the rest have defaults for a
    family without them."""

    name = ""
    names = ""  # e.g. "maze2d-{umaze,medium,large}"

    def recognises(self, name: str) -> bool:
        """Whether `name` belongs to this family (then it must parse, or it is a user error)."""
        raise NotImplementedError

    def env_id(self, name: str) -> str:
        """The id checkpoints and configs know the env by: maze2d-large -> maze2d-large-v1."""
        raise NotImplementedError

    def eval_task(self, name: str, multi_goal: bool = False, task: int | None = None) -> EvalTask:
        raise NotImplementedError

    def planner_facts(self, env_id: str) -> dict:
        """Planner settings the env's physics fix: position / velocity dims, action bound, controller law."""
        raise NotImplementedError

    def action_bounds(self, env_id: str) -> tuple[np.ndarray, np.ndarray]:
        """The (low, high) of the env's actions."""
        space = self.eval_task(env_id).spaces[1]
        return space.low.astype(float), space.high.astype(float)

    def config_name(self, env_id: str) -> str:
        """The stem of its training config in envs/configs."""
        return env_id

    def default_dataset(self, env_id: str) -> Path | None:
        """The file `dfplan train --env` trains on when no --dataset is given (made by `generate` if
        missing); None: this family makes no data, a dataset must be given."""
        return None

    def generate(self, name: str, seed: int, out: str | None, progress: bool = True, **options) -> str:
        """Make a dataset by the family's recipe; returns what was written, as one line."""
        raise DfplannerError(f"dfplan makes no data for {name}; give your own dataset (--dataset)")

    def dataset_env_id(self, file_name: str) -> str | None:
        """The env id a dataset file's name says it was recorded in (D4RL's naming), or None."""
        return None

    def oracle(self, env_id: str) -> Policy:
        raise DfplannerError(f"there is no oracle for {env_id}; use --policy planner or random")

    def layout(self, env_id: str) -> MazeLayout | None:
        """The maze `--plot` draws, or None: the env has none."""
        return None

    def default_goal(self, env_id: str) -> np.ndarray | None:
        """The goal a policy aims for when reset without one (maze2d's fixed D4RL target), or None."""
        return None


def check_no_options(name: str, options: dict) -> None:
    """A recipe's flags that this family does not take are an error, not silently ignored."""
    given = [key for key, value in options.items() if value is not None]
    if given:
        flags = ", ".join(f"--{key}" for key in given)
        raise DfplannerError(f"{name} takes no {flags}")
