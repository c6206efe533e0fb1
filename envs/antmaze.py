"""OGBench AntMaze (Park et al., ICLR 2025): an 8-joint ant in OGBench's mazes.

Observation 29-D (qpos 15, whose first two entries are the ant's xy, then qvel 14), action 8-D torques
in [-1, 1]; OGBench's protocol and files as for PointMaze (`OGBenchMazeFamily`), success within 0.5
of the goal. No controller turns a planned xy into torques, so the planner's actions come from what
its model learned: the family's facts say diffused actions (they need nothing beside the checkpoint);
the tuned configs (envs/configs/antmaze*.toml) act through the inverse-dynamics head fitted on the same
data (`dfplan head train --kind inverse`); diffused actions reach almost no goal (results/antmaze_table.md).

The data recipe drives OGBench's low-level expert along the oracle's directions with action noise
0.2. OGBench downloads that expert; here it is trained (`dfplan expert train --env ant`, SAC on
online-ant-v0 under OGBench's GymXYWrapper: reward = xy displacement along a unit direction redrawn
every 100 steps, the direction appended to the observation without xy) and shipped as safetensors
(dfplanner/data/experts/ant.safetensors, i.e. results/experts/).
"""

from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path

import gymnasium as gym
import numpy as np

from dfplanner.envs.family import EvalTask
from dfplanner.envs.ogbench import OGBenchMazeFamily, OraclePolicy, eval_env_id
from dfplanner.errors import DfplannerError

EXPERT_NAME = "ant"  # `dfplan expert train --env ant`; shipped as experts/ant.safetensors
EXPERT_RESAMPLE_STEPS = 100  # GymXYWrapper's direction is redrawn every 100 steps (online_env_utils.py)
ACTION_NOISE = 0.2  # generate_locomaze.py's default --noise, which commands.sh keeps for navigate and stitch
ACT_DIM = 8
XY_DIMS = (0, 1)  # qpos[:2]
XY_VELOCITY_DIMS = (15, 16)  # qvel[:2], after the 15 entries of qpos
TORSO_QUATERNION = slice(3, 7)  # qpos[3:7]: the torso's orientation (w, x, y, z), after its xyz
# Less than this far (maze units; a cell is 4) in the last TAIL_STEPS steps (10 s) is stuck: the expert
# walks 1.5 units a second along its commanded direction (results/expert_ant.md).
STUCK_DISTANCE = 1.0


def failure_kinds(observations: np.ndarray, xy_before: np.ndarray) -> list[str]:
    """Why ant episodes missed the goal: overturned (the torso's up axis points below the horizon), stuck
    (hardly moved in the last TAIL_STEPS steps), or timed-out (still walking when the episode ended)."""
    _, qx, qy, _ = np.moveaxis(observations[:, TORSO_QUATERNION], -1, 0)
    up = 1.0 - 2.0 * (qx**2 + qy**2)  # the z component of the torso's z axis in the world frame
    moved = np.linalg.norm(observations[:, list(XY_DIMS)] - xy_before, axis=-1)
    return ["overturned" if u < 0 else "stuck" if m < STUCK_DISTANCE else "timed-out" for u, m in zip(up, moved)]


def make_expert_env() -> gym.Env:
    """The env OGBench trains its ant expert in: online-ant-v0 under GymXYWrapper."""
    import ogbench.online_locomotion  # noqa: F401  (registers online-ant-v0)
    from ogbench.online_locomotion.wrappers import GymXYWrapper

    return GymXYWrapper(gym.make("online-ant-v0"), resample_interval=EXPERT_RESAMPLE_STEPS)


def expert_path() -> Path:
    """The shipped ant expert's actor (package data of dfplanner.data)."""
    return Path(str(resources.files("dfplanner.data") / "experts" / f"{EXPERT_NAME}.safetensors"))


def load_expert():
    """The shipped expert as a numpy actor: (B, 29) [observation without xy, unit direction] -> (B, 8)."""
    from dfplanner.data.sac_expert import ExpertActor

    path = expert_path()
    if not path.is_file():
        raise DfplannerError(f"the ant expert is not at {path}; train it with `dfplan expert train --env {EXPERT_NAME}`")
    return ExpertActor(path)


def expert_input(observations: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """generate_locomaze.py's expert observation: the state without its xy, then the unit direction."""
    return np.concatenate([observations[..., 2:], directions], axis=-1)


class AntOraclePolicy(OraclePolicy):
    """Evaluation only: the expert walking along OGBench's oracle subgoal directions, without noise (in
    the goal's cell, towards the goal itself, as the PointMaze oracle)."""

    def __init__(self, env_id: str):
        super().__init__(env_id)
        self.expert = load_expert()

    def act(self, observations: np.ndarray) -> np.ndarray:
        return self.expert(expert_input(observations, self.directions(observations)))


class AntMazeFamily(OGBenchMazeFamily):
    """OGBench AntMaze: the planner's actions come from its model (no PD law for legs), no goal hold
    (OGBench's episodes end at the goal)."""

    name = "ogbench-antmaze"
    agent = "antmaze"

    def eval_task(self, name: str, multi_goal: bool = False, task: int | None = None) -> EvalTask:
        return dataclasses.replace(super().eval_task(name, multi_goal, task), failure_kinds=failure_kinds)

    def planner_facts(self, env_id: str) -> dict:
        return {"position_dims": XY_DIMS, "velocity_dims": XY_VELOCITY_DIMS, "upright_dims": tuple(range(29)[TORSO_QUATERNION]),
                "action_mode": "diffused", "hold_radius": 0.0}

    def action_bounds(self, env_id: str) -> tuple[np.ndarray, np.ndarray]:
        return np.full(ACT_DIM, -1.0), np.full(ACT_DIM, 1.0)

    def config_name(self, env_id: str) -> str:
        """A dataset's own tuned file once it has one, else the family's (envs/configs/antmaze.toml)."""
        from dfplanner.training.config import CONFIG_DIR

        return env_id if (CONFIG_DIR / f"{env_id}.toml").exists() else self.agent

    def oracle(self, env_id: str) -> AntOraclePolicy:
        return AntOraclePolicy(eval_env_id(env_id))

    def walker(self):
        from dfplanner.data.ogbench_recipe import Walker

        expert = load_expert()
        return Walker(lambda observation, direction: expert(expert_input(observation, direction)), ACTION_NOISE)


FAMILY = AntMazeFamily()
