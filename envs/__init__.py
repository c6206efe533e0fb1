"""Env-family adapters: D4RL maze2d (registered with gymnasium as maze2d-{umaze,medium,large}-v1 on
import), gymnasium-robotics PointMaze in D4RL's frame (`pointmaze`) and OGBench PointMaze (`ogbench`)."""

import gymnasium

from dfplanner.envs import ogbench
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



def planner_facts(env_id: str | None) -> dict:
    """What a planner must know of an env family's observations (which dimensions hold the position
    and the velocity), by env id; {} for an env no adapter here knows."""
    if env_id in MAZES:
        return {"position_dims": POSITION_DIMS, "velocity_dims": VELOCITY_DIMS}
    if env_id is not None and ogbench.is_pointmaze(env_id):
        # observation = position; the PD gain that reaches the planned position in one step
        return {"position_dims": (0, 1), "velocity_dims": (), "pd_gains": (1.0 / ogbench.STEP_PER_ACTION, 0.0)}
    return {}


__all__ = ["planner_facts", "MAZES", "MazeSpec", "cell_to_pos", "get_normalized_score", "maze_spec", "pos_to_cell", "resolve_env_id"]
