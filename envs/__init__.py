"""Env families (dfplanner.envs.family) and their registry: D4RL maze2d (registered with gymnasium as
maze2d-{umaze,medium,large}-v1 on import), OGBench PointMaze and AntMaze, the envs Minari PointMaze
datasets recover (``minari:ID``), and any other registered gymnasium env (no goal, reward guidance).

The rest of the package asks `family_of(name)` and never tests a name itself; a new family is one
module with an `EnvFamily` subclass, listed in `FAMILIES`, plus its configs.
"""

import gymnasium
import numpy as np

from collections.abc import Callable

from dfplanner.envs import antmaze, maze2d, minari, ogbench, registered
from dfplanner.envs.family import EnvFamily
from dfplanner.envs.layouts import MAZES, MazeSpec, cell_to_pos, maze_spec, pos_to_cell, resolve_env_id
from dfplanner.errors import DfplannerError

for _spec in MAZES.values():
    if _spec.env_id not in gymnasium.registry:
        gymnasium.register(
            id=_spec.env_id,
            entry_point="dfplanner.envs.maze2d:Maze2dEnv",
            max_episode_steps=_spec.max_episode_steps,
            kwargs={"maze": _spec.name},
        )

# In order: the first family that recognises a name owns it. Any registered gymnasium id comes last,
# since the other families' envs are registered with gymnasium too.
FAMILIES: tuple[EnvFamily, ...] = (maze2d.FAMILY, ogbench.FAMILY, antmaze.FAMILY, minari.FAMILY, registered.FAMILY)
# The experts that make data (`dfplan expert train --env NAME`): name -> the env it is trained in.
EXPERTS: dict[str, Callable[[], gymnasium.Env]] = {antmaze.EXPERT_NAME: antmaze.make_expert_env}


def family_of(name: str) -> EnvFamily:
    """The family that owns an env or dataset name, or a user error listing what each family takes."""
    for family in FAMILIES:
        if family.recognises(name):
            return family
    raise DfplannerError(f"unknown environment {name!r}; valid: " + "; or ".join(family.names for family in FAMILIES))


def resolve_env(name: str) -> str:
    """The env id a name means (maze2d-large -> maze2d-large-v1), or a user error."""
    return family_of(name).env_id(name)


def is_known(name: str) -> bool:
    """Whether some family owns `name` and it parses."""
    try:
        resolve_env(name)
    except DfplannerError:
        return False
    return True


def action_bounds(env_id: str | None) -> tuple[np.ndarray, np.ndarray] | None:
    """The (low, high) of an env's actions, by env id; None for an env no family knows."""
    return family_of(env_id).action_bounds(env_id) if env_id and is_known(env_id) else None


def planner_facts(env_id: str | None) -> dict:
    """What a planner must know of an env (position and velocity dims, action bound, controller law),
    by env id; {} for an env no family knows."""
    return family_of(env_id).planner_facts(env_id) if env_id and is_known(env_id) else {}


def dataset_env_id(file_name: str) -> str:
    """The env id a dataset file's name says it was recorded in (e.g. D4RL's maze2d-large-sparse-v1.hdf5), or ""."""
    for family in FAMILIES:
        env_id = family.dataset_env_id(file_name)
        if env_id:
            return env_id
    return ""


__all__ = ["EXPERTS", "FAMILIES", "action_bounds", "dataset_env_id", "family_of", "is_known", "planner_facts", "resolve_env",
           "MAZES", "MazeSpec", "cell_to_pos", "maze_spec", "pos_to_cell", "resolve_env_id"]
