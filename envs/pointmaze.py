"""gymnasium-robotics PointMaze seen in D4RL's frame: its data (for training) and its envs (for evaluation).

PointMaze's physics equal our maze2d's up to a change of frame (tests/test_envs.py checks this step by
step), so its data and envs are mapped into D4RL's frame (qpos = (row, col)) and everything else (the
tuned per-maze configs, PD gains, the oracle, plots, checkpoints) applies unchanged. With W, H the
columns and rows of the maze:
    x = H/2 - 0.7 - gym_y,  y = gym_x - 0.7 + W/2,  v = (-gym_vy, gym_vx),  a = (-gym_ay, gym_ax)
The maze is recognised from the ``maze_map`` of the env spec; only the three D4RL mazes are supported.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from dfplanner.envs.layouts import MAZES, MazeSpec
from dfplanner.errors import DfplannerError

GYM_OFFSET = 0.7  # 0.5 (cell centre) + 0.2 (D4RL's particle offset)


@dataclass(frozen=True)
class PointMazeFrame:
    """gymnasium-robotics PointMaze frame <-> D4RL frame for one maze size."""

    rows: int
    cols: int

    def position(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) gym positions (observation[:2], goals) -> D4RL qpos."""
        return np.stack([self.rows / 2 - GYM_OFFSET - xy[:, 1], xy[:, 0] - GYM_OFFSET + self.cols / 2], axis=1)

    def state(self, obs: np.ndarray) -> np.ndarray:
        """(N, 4) gym [x, y, vx, vy] -> D4RL [qpos, qvel]."""
        return np.concatenate([self.position(obs[:, :2]), np.stack([-obs[:, 3], obs[:, 2]], axis=1)], axis=1)

    def action(self, actions: np.ndarray) -> np.ndarray:
        """(N, 2) gym actions -> D4RL actions."""
        return np.stack([-actions[:, 1], actions[:, 0]], axis=1)

    def gym_action(self, actions: np.ndarray) -> np.ndarray:
        """(N, 2) D4RL actions -> gym actions (the inverse of `action`)."""
        return np.stack([actions[:, 1], -actions[:, 0]], axis=1)


def pointmaze_maze(env_spec, where: str) -> MazeSpec:
    """Which of our mazes a PointMaze env spec describes, from its maze map."""
    maze_map = (env_spec.kwargs or {}).get("maze_map") if env_spec is not None else None
    if maze_map is not None:
        walls = np.array([[cell == 1 for cell in row] for row in maze_map])
        for maze in MAZES.values():
            if maze.walls.shape == walls.shape and (maze.walls == walls).all():
                return maze
    names = ", ".join(spec.name for spec in MAZES.values())
    raise DfplannerError(f"{where}: its env spec has no maze_map matching a D4RL maze ({names})")


class PointMazeInD4rlFrame(gym.Wrapper):
    """A PointMaze env that speaks Maze2dEnv's interface: flat float32 [x, y, vx, vy] observations and
    actions in D4RL's frame, the goal (``desired_goal``) as ``info["target"]``, ``info["success"]`` kept."""

    def __init__(self, env: gym.Env, maze: MazeSpec):
        super().__init__(env)
        self.frame = PointMazeFrame(*maze.walls.shape)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)

    def _convert(self, obs: dict, info: dict) -> tuple[np.ndarray, dict]:
        target = self.frame.position(np.asarray(obs["desired_goal"], dtype=np.float64)[None])[0]
        return self.frame.state(obs["observation"][None])[0].astype(np.float32), {**info, "target": target}

    def reset(self, **kwargs):
        return self._convert(*self.env.reset(**kwargs))

    def step(self, action: np.ndarray):
        obs, reward, terminated, truncated, info = self.env.step(self.frame.gym_action(np.asarray(action)[None])[0])
        obs, info = self._convert(obs, info)
        return obs, float(reward), terminated, truncated, info


def is_goal_maze(space: gym.Space) -> bool:
    """Whether a recovered env's observations are gymnasium-robotics' goal-conditioned dicts (PointMaze's)."""
    return isinstance(space, gym.spaces.Dict) and {"observation", "desired_goal"} <= set(space.spaces)
