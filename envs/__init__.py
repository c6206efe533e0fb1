"""D4RL maze2d environments, registered with gymnasium as maze2d-{umaze,medium,large}-v1 on import."""

import gymnasium

from dfplanner.envs.layouts import MAZES, MazeSpec, cell_to_pos, get_normalized_score, maze_spec, pos_to_cell, resolve_env_id

for _spec in MAZES.values():
    if _spec.env_id not in gymnasium.registry:
        gymnasium.register(
            id=_spec.env_id,
            entry_point="dfplanner.envs.maze2d:Maze2dEnv",
            max_episode_steps=_spec.max_episode_steps,
            kwargs={"maze": _spec.name},
        )

__all__ = ["MAZES", "MazeSpec", "cell_to_pos", "get_normalized_score", "maze_spec", "pos_to_cell", "resolve_env_id"]
