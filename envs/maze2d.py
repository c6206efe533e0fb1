"""D4RL's maze2d point-mass environment (v1, sparse reward) on today's MuJoCo and gymnasium.

Faithful to D4RL ``d4rl/pointmaze/maze_model.py``: the same MJCF generated from the layout (default
geom/joint settings, solver iterations, Euler at 0.01 s, no gravity), velocity clipped to [-5, 5]
before every step, action clipped to [-1, 1], sparse reward 1 iff the particle ends the step within
0.5 of the target, never terminates (the time limit comes from the registration). Observations are
float32 [x, y, vx, vy] in D4RL's frame (see ``layouts``).

``render_mode="rgb_array"`` draws the maze from above with numpy (walls, the reward disk around the
target, the particle; rows down, columns across, as ``dfplanner.evaluation.plotting`` draws it) rather than with
MuJoCo's renderer: that needs an OpenGL context (EGL or OSMesa system libraries), which machines
without a display, this project's CI among them, do not have; a flat maze loses nothing seen from above.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from dfplanner.envs.family import EnvFamily, EvalTask, MazeLayout
from dfplanner.envs.layouts import (
    HALF_CELL, MAZES, PARTICLE_OFFSET, POSITION_DIMS, VELOCITY_DIMS, MazeSpec, maze_spec, pos_to_cell, resolve_env_id,
)
from dfplanner.errors import DfplannerError

MAX_SPEED = 5.0  # D4RL clips qvel to [-5, 5] before each step
OBS_DIM = 4  # qpos (row, col) and qvel
ACT_DIM = 2  # force along x and y
GOAL_RADIUS = 0.5  # sparse reward radius
RESET_POS_NOISE = 0.1  # uniform half-width on the start (and multi-goal target) position
RESET_VEL_STD = 0.1  # normal std on the start velocity
TIMESTEP = 0.01  # seconds per env step (the MJCF's timestep, frame skip 1)
PARTICLE_RADIUS = 0.1  # the particle geom's size
PIXELS_PER_CELL = 48  # rgb_array frames: maze2d-large's 9 x 12 cells are 432 x 576 pixels
COLORS = {"floor": (235, 235, 235), "wall": (64, 64, 64), "target": (250, 170, 170), "particle": (30, 90, 200)}


def build_mjcf(maze: MazeSpec) -> str:
    """The MJCF D4RL's ``point_maze()`` builds: physics settings copied, visuals left out."""
    walls = "\n".join(
        f'    <geom name="wall_{r}_{c}" type="box" pos="{r + 1} {c + 1} 0" size="0.5 0.5 0.2" conaffinity="1"/>'
        for r, c in np.argwhere(maze.walls)
    )
    return f"""<mujoco model="point_maze">
  <compiler inertiafromgeom="true" angle="radian"/>
  <option timestep="{TIMESTEP}" gravity="0 0 0" iterations="20" integrator="Euler"/>
  <default>
    <joint damping="1" limited="false"/>
    <geom friction=".5 .1 .1" density="1000" margin="0.002" condim="1" contype="2" conaffinity="1"/>
  </default>
  <worldbody>
    <geom name="ground" size="40 40 0.25" pos="0 0 -0.1" type="plane" contype="1" conaffinity="0"/>
    <body name="particle" pos="1.2 1.2 0">
      <geom name="particle_geom" type="sphere" size="0.1" contype="1"/>
      <joint name="ball_x" type="slide" pos="0 0 0" axis="1 0 0"/>
      <joint name="ball_y" type="slide" pos="0 0 0" axis="0 1 0"/>
    </body>
{walls}
  </worldbody>
  <actuator>
    <motor joint="ball_x" ctrlrange="-1 1" ctrllimited="true" gear="100"/>
    <motor joint="ball_y" ctrlrange="-1 1" ctrllimited="true" gear="100"/>
  </actuator>
</mujoco>
"""


def physics_step(model: mujoco.MjModel, data: mujoco.MjData, action: np.ndarray) -> None:
    """One D4RL step: clip the velocity, clip the action, one Euler step (frame skip 1)."""
    np.clip(data.qvel, -MAX_SPEED, MAX_SPEED, out=data.qvel)
    data.ctrl[:] = np.clip(action, -1.0, 1.0)
    mujoco.mj_step(model, data)


def random_free_position(maze: MazeSpec, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random free cell plus U(-0.1, 0.1) noise: D4RL's reset position and ``set_target()``."""
    cell = maze.free_cells[rng.integers(len(maze.free_cells))]
    return cell + rng.uniform(-RESET_POS_NOISE, RESET_POS_NOISE, size=2)


class Maze2dEnv(gym.Env[np.ndarray, np.ndarray]):
    """maze2d-{umaze,medium,large}-v1. ``multi_goal=True`` draws a random target per episode (Diffuser's Multi2D).

    ``reset(options={"start": xy, "target": xy})`` places the particle (at rest) and/or the target exactly.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": round(1 / TIMESTEP)}

    def __init__(self, maze: str = "maze2d-umaze", multi_goal: bool = False, render_mode: str | None = None):
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise DfplannerError(f"render_mode {render_mode!r} is not supported; use 'rgb_array' or None")
        self.render_mode = render_mode
        self.maze = maze_spec(maze)
        self.multi_goal = multi_goal
        self.model = mujoco.MjModel.from_xml_string(build_mjcf(self.maze))
        self.data = mujoco.MjData(self.model)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(OBS_DIM,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(ACT_DIM,), dtype=np.float32)
        self.target = self.maze.goal

    @property
    def max_episode_steps(self) -> int:
        return self.maze.max_episode_steps

    def get_normalized_score(self, total_return: float) -> float:
        return self.maze.get_normalized_score(total_return)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        mujoco.mj_resetData(self.model, self.data)
        if options.get("start") is not None:
            qpos, qvel = self._free_position(options["start"], "start"), np.zeros(2)
        else:  # D4RL's reset_model(): start over free cells + goal, then (multi-goal) the target
            qpos = random_free_position(self.maze, self.np_random)
            qvel = self.np_random.normal(0.0, RESET_VEL_STD, size=2)
        if options.get("target") is not None:
            self.target = self._free_position(options["target"], "target")
        elif self.multi_goal:
            self.target = random_free_position(self.maze, self.np_random)
        else:
            self.target = self.maze.goal
        self.data.qpos[:] = qpos
        self.data.qvel[:] = qvel
        return self._obs(), {"target": self.target.copy(), "success": self._success()}

    def step(self, action: np.ndarray):
        physics_step(self.model, self.data, action)
        success = self._success()
        return self._obs(), float(success), False, False, {"target": self.target.copy(), "success": success}

    def render(self) -> np.ndarray | None:
        """With render_mode="rgb_array", the maze seen from above as an (H, W, 3) uint8 frame."""
        if self.render_mode is None:
            return None
        return top_down_frame(self.maze, self.data.qpos, self.target)

    def _obs(self) -> np.ndarray:
        return np.concatenate([self.data.qpos, self.data.qvel]).astype(np.float32)

    def _success(self) -> bool:
        qpos = self.data.qpos
        return math.hypot(qpos[0] - self.target[0], qpos[1] - self.target[1]) <= GOAL_RADIUS

    def _free_position(self, xy: Any, name: str) -> np.ndarray:
        xy = np.asarray(xy, dtype=np.float64)
        if xy.shape != (2,) or not np.isfinite(xy).all():
            raise DfplannerError(f"reset option {name!r} must be 2 finite numbers (x, y), got {xy.tolist()}")
        row, col = pos_to_cell(xy)
        walls = self.maze.walls
        if not (0 <= row < walls.shape[0] and 0 <= col < walls.shape[1]) or walls[row, col]:
            raise DfplannerError(f"reset option {name!r} = {xy.tolist()} is not inside a free cell of {self.maze.name}")
        return xy


def pixel_positions(maze: MazeSpec) -> np.ndarray:
    """(H, W, 2) qpos at the centre of each pixel of a top-down frame: rows down, columns across."""
    rows, cols = maze.walls.shape
    low = -HALF_CELL - PARTICLE_OFFSET  # the qpos where cell 0 begins
    x = low + (np.arange(rows * PIXELS_PER_CELL) + 0.5) / PIXELS_PER_CELL
    y = low + (np.arange(cols * PIXELS_PER_CELL) + 0.5) / PIXELS_PER_CELL
    return np.stack(np.meshgrid(x, y, indexing="ij"), axis=-1)


def top_down_frame(maze: MazeSpec, position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The maze from above: walls, the disk in which the reward is 1, the particle."""
    grid = pixel_positions(maze)
    cells = pos_to_cell(grid)
    frame = np.empty((*grid.shape[:2], 3), dtype=np.uint8)
    frame[:] = COLORS["floor"]
    frame[maze.walls[cells[..., 0], cells[..., 1]]] = COLORS["wall"]
    frame[np.linalg.norm(grid - np.asarray(target)[:2], axis=-1) <= GOAL_RADIUS] = COLORS["target"]
    frame[np.linalg.norm(grid - np.asarray(position)[:2], axis=-1) <= PARTICLE_RADIUS] = COLORS["particle"]
    return frame


# PD aims 15 env steps along the plan (PlannerSettings.track_ahead): the middle of the plateau from 10
# to 30 steps on maze2d medium-multi and large-multi, seed 777 (results/tuning.md). OGBench's PointMaze
# family uses the same number, chosen on its own data (results/ogbench_table.md).
TRACK_AHEAD = 15
FAMILY_PREFIX = "maze2d-"
D4RL_FILE_NAME = re.compile(r"(maze2d-(?:umaze|medium|large))")


class OraclePolicy:
    """The scripted expert without noise: shortest path over cells, reaches the target and stays."""

    name = "oracle"

    def __init__(self, env_id: str):
        from dfplanner.envs.oracle import WaypointExpert

        self.expert = WaypointExpert(maze_spec(env_id))

    def reset(self, observations: np.ndarray, targets: np.ndarray) -> None:
        self.expert.set_targets(targets)

    def act(self, observations: np.ndarray) -> np.ndarray:
        state = observations.astype(np.float64)
        return self.expert.act(state[:, :2], state[:, 2:])


class Maze2dFamily(EnvFamily):
    """D4RL maze2d on our env (D4RL's protocol: full-length episodes, D4RL-normalized scores), its data
    recipe (dfplanner.data.maze2d_recipe) and its waypoint oracle."""

    name = "maze2d"
    names = ", ".join(f"{spec.name} ({spec.env_id})" for spec in MAZES.values())

    def recognises(self, name: str) -> bool:
        return name.startswith(FAMILY_PREFIX)

    def env_id(self, name: str) -> str:
        return resolve_env_id(name)

    def eval_task(self, name: str, multi_goal: bool = False, task: int | None = None) -> EvalTask:
        if task is not None:
            raise DfplannerError(f"--task K picks one of OGBench's evaluation tasks; {name} has none")
        maze = maze_spec(name)
        return EvalTask(maze.env_id, maze.env_id, self, lambda: Maze2dEnv(maze.name, multi_goal=multi_goal),
                        maze.max_episode_steps, multi_goal=multi_goal, normalize=maze.get_normalized_score,
                        make_render_env=lambda: Maze2dEnv(maze.name, multi_goal=multi_goal, render_mode="rgb_array"))

    def planner_facts(self, env_id: str) -> dict:
        return {"position_dims": POSITION_DIMS, "velocity_dims": VELOCITY_DIMS, "track_ahead": TRACK_AHEAD}

    def action_bounds(self, env_id: str) -> tuple[np.ndarray, np.ndarray]:
        return np.full(ACT_DIM, -1.0), np.full(ACT_DIM, 1.0)

    def config_name(self, env_id: str) -> str:
        return maze_spec(env_id).name  # maze2d-large-v1 -> envs/configs/maze2d-large.toml

    def default_dataset(self, env_id: str) -> Path:
        from dfplanner.data.maze2d_recipe import default_dataset_path

        return default_dataset_path(self.config_name(env_id))

    def generate(self, name: str, seed: int, out: str | None, progress: bool = True, steps: int | None = None,
                 minari: str | None = None, episodes: int | None = None) -> str:
        from dfplanner.data.maze2d_recipe import generate

        if episodes is not None:
            raise DfplannerError("--episodes is for OGBench datasets; maze2d datasets take --steps")
        info = generate(name, steps=steps, seed=seed, out=out, minari_id=minari, progress=progress)
        line = (f"wrote {info['path']}: {info['steps']} steps, {info['targets']} targets reached or timed out, "
                f"seed {info['seed']}, {info['seconds']:.1f} s")
        return line + (f"\nwrote Minari dataset {info['minari_id']}" if info["minari_id"] else "")

    def dataset_env_id(self, file_name: str) -> str | None:
        match = D4RL_FILE_NAME.search(file_name)
        return resolve_env_id(match.group(1)) if match else None

    def oracle(self, env_id: str) -> OraclePolicy:
        return OraclePolicy(env_id)

    def layout(self, env_id: str) -> MazeLayout:
        """D4RL's frame: positions are (row, column) = (down, across); cell (r, c) is centred at qpos
        (r - 0.2, c - 0.2)."""
        return MazeLayout(maze_spec(env_id).walls, 1.0, (-PARTICLE_OFFSET, -PARTICLE_OFFSET), (1, 0))

    def default_goal(self, env_id: str) -> np.ndarray:
        return maze_spec(env_id).goal


FAMILY = Maze2dFamily()
