"""Any other env registered with gymnasium (e.g. ``Pendulum-v1``): no goal, no success: returns, and
D4RL's normalized score for its MuJoCo locomotion envs.

The planner cannot know which observation dimensions are positions there, so it executes its diffused
actions (no PD tracking) and its guidance maximizes the predicted reward: the model must be trained
with the reward channel, which the config family file ``envs/configs/gymnasium.toml`` turns on.
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np

from dfplanner.envs.family import EnvFamily, EvalTask
from dfplanner.errors import DfplannerError

CONFIG_FAMILY = "gymnasium"  # envs/configs/gymnasium.toml: the training config of these envs


def is_registered(name: str) -> bool:
    """Whether gymnasium can make `name` (its registry, as after the usual imports)."""
    return name in gym.registry


def make(env_id: str) -> gym.Env:
    """The env, with the error of a broken registration (missing extra, bad kwargs) as a one-line error."""
    try:
        return gym.make(env_id)
    except Exception as error:  # gymnasium raises many types here (DependencyNotInstalled, TypeError, ...)
        raise DfplannerError(f"gymnasium could not make {env_id}: {type(error).__name__}: {error}") from None


def flat_spaces(env: gym.Env, where: str) -> tuple[gym.spaces.Box, gym.spaces.Box]:
    """An env's observation and action spaces, which must be flat boxes (the planner's tokens are vectors)."""
    for name, space in (("observation", env.observation_space), ("action", env.action_space)):
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise DfplannerError(f"{where}: the planner needs a flat Box {name} space, it has {space}")
    return env.observation_space, env.action_space


def spaces(env_id: str) -> tuple[gym.spaces.Box, gym.spaces.Box]:
    """The registered env's flat observation and action spaces, or a one-line error."""
    env = make(env_id)
    env.close()
    return flat_spaces(env, env_id)


# D4RL's reference returns (d4rl/infos.py, REF_MIN_SCORE / REF_MAX_SCORE: a random policy's and an expert's
# on the -v2 MuJoCo locomotion tasks): score = 100 (R - random) / (expert - random). Applied to any version
# of these envs; gymnasium's -v5 differ slightly from D4RL's -v2 (mujoco instead of mujoco-py, contact
# forces out of Ant's observations), so a -v5 score is close to, not the same as, a D4RL one.
D4RL_REFERENCE_RETURNS = {"HalfCheetah": (-280.178953, 12135.0), "Hopper": (-20.272305, 3234.3),
                          "Walker2d": (1.629008, 4592.3), "Ant": (-325.6, 3879.7)}


def d4rl_normalizer(env_id: str) -> Callable[[float], float] | None:
    """Return -> D4RL's normalized score for its locomotion envs (any version), None for any other env."""
    reference = D4RL_REFERENCE_RETURNS.get(env_id.split("-")[0])
    if reference is None:
        return None
    random, expert = reference
    return lambda ret: 100.0 * (ret - random) / (expert - random)


# Reward guidance is off until asked for (--guidance-scale): on Pendulum-v1, from one noisy swing-up
# controller's data, every scale tried lowered the return (README, "Any gymnasium env").
GUIDANCE_SCALE = 0.0


class RegisteredFamily(EnvFamily):
    """Any env gymnasium can make that no other family owns: its own episodes, returns only."""

    name = "gymnasium"
    names = "a registered gymnasium id such as Pendulum-v1"

    def recognises(self, name: str) -> bool:
        return is_registered(name)

    def env_id(self, name: str) -> str:
        return name

    def eval_task(self, name: str, multi_goal: bool = False, task: int | None = None) -> EvalTask:
        """The env as it is: its own episode length, ended early by termination or truncation; no goal."""
        if task is not None:
            raise DfplannerError(f"--task K picks one of OGBench's evaluation tasks; {name} has none")
        if multi_goal:
            raise DfplannerError(f"{name}: --multi-goal is for maze2d; {name} has no goal")
        spaces(name)  # flat boxes, or a one-line error
        env = make(name)
        steps = env.spec.max_episode_steps if env.spec is not None else None
        env.close()
        if steps is None:
            raise DfplannerError(f"{name} has no max_episode_steps: register it with an episode length to evaluate it")
        return EvalTask(name, name, self, lambda: make(name), steps, multi_goal=False, normalize=d4rl_normalizer(name), has_goal=False)

    def planner_facts(self, env_id: str) -> dict:
        """Reward cost, diffused actions clipped to the action space's bound, no goal hold."""
        action_space = spaces(env_id)[1]
        bound = float(np.max(np.abs(np.concatenate([action_space.low, action_space.high]))))
        return {"cost": "reward", "guidance_scale": GUIDANCE_SCALE, "action_mode": "diffused", "hold_radius": 0.0,
                "action_limit": bound}

    def action_bounds(self, env_id: str) -> tuple[np.ndarray, np.ndarray]:
        space = spaces(env_id)[1]
        return space.low.astype(float), space.high.astype(float)

    def config_name(self, env_id: str) -> str:
        """Its own tuned file if there is one, else the family file of such envs."""
        from dfplanner.training.config import CONFIG_DIR

        return env_id if (CONFIG_DIR / f"{env_id}.toml").exists() else CONFIG_FAMILY


FAMILY = RegisteredFamily()
