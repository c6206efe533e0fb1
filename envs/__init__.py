"""Env-family adapters: D4RL maze2d (registered with gymnasium as maze2d-{umaze,medium,large}-v1 on
import), gymnasium-robotics PointMaze in D4RL's frame (`pointmaze`), OGBench PointMaze (`ogbench`) and
any other registered gymnasium env (`registered`: no goal, reward guidance)."""

import gymnasium
import numpy as np

from dfplanner.envs import ogbench, registered
from dfplanner.errors import DfplannerError
from dfplanner.envs.layouts import (
    MAZES, POSITION_DIMS, VELOCITY_DIMS, MazeSpec, cell_to_pos, get_normalized_score, maze_spec, pos_to_cell, resolve_env_id,
)

for _spec in MAZES.values():
    if _spec.env_id not in gymnasium.registry:
        gymnasium.register(
            id=_spec.env_id,
            entry_point="dfplanner.envs.maze2d:Maze2dEnv",
            max_episode_steps=_spec.max_episode_steps,
            kwargs={"maze": _spec.name},
        )

# Both point-mass families aim PD 15 env steps along the plan (PlannerSettings.track_ahead): the middle
# of the plateau from 10 to 30 steps on maze2d medium-multi and large-multi, seed 777 (results/tuning.md),
# and the fastest arrival of 0 / 5 / 15 / 30 on OGBench's datasets, seed 777 (results/ogbench_table.md).
TRACK_AHEAD = 15


def resolve_env(name: str) -> str:
    """The env id a name means: a maze2d name or id -> its id; an OGBench PointMaze name or any other
    registered gymnasium id stays as it is; anything else is a user error."""
    if ogbench.is_pointmaze(name):
        ogbench.eval_env_id(name)  # parses the name, or says what the valid ones are
        return name
    try:
        return resolve_env_id(name)
    except DfplannerError as error:
        if registered.is_registered(name):
            return name
        raise DfplannerError(f"{error}; or an OGBench pointmaze-* name, or a registered gymnasium id such as Pendulum-v1") from None


def action_bounds(env_id: str | None) -> tuple[np.ndarray, np.ndarray] | None:
    """The (low, high) of an env's actions, by env id; None for an env no adapter here knows."""
    if env_id in MAZES or (env_id and ogbench.is_pointmaze(env_id)):
        return np.full(2, -1.0), np.full(2, 1.0)
    if env_id and registered.is_registered(env_id):
        space = registered.spaces(env_id)[1]
        return space.low.astype(float), space.high.astype(float)
    return None


def planner_facts(env_id: str | None) -> dict:
    """What a planner must know of an env family (which observation dimensions hold the position and
    the velocity, its PD law), by env id; {} for an env no adapter here knows."""
    if env_id in MAZES:
        return {"position_dims": POSITION_DIMS, "velocity_dims": VELOCITY_DIMS, "track_ahead": TRACK_AHEAD}
    if env_id is not None and ogbench.is_pointmaze(env_id):
        # observation = position; the PD gain that reaches the planned position in one step
        return {"position_dims": (0, 1), "velocity_dims": (), "pd_gains": (1.0 / ogbench.STEP_PER_ACTION, 0.0), "track_ahead": TRACK_AHEAD}
    if env_id and registered.is_registered(env_id):
        return registered.planner_facts(env_id)
    return {}


__all__ = ["action_bounds", "planner_facts", "resolve_env", "MAZES", "MazeSpec", "cell_to_pos", "get_normalized_score", "maze_spec", "pos_to_cell", "resolve_env_id"]
