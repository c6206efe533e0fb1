"""OGBench AntMaze (Park et al., ICLR 2025): an 8-joint ant in OGBench's mazes."""

from __future__ import annotations

import gymnasium as gym

EXPERT_RESAMPLE_STEPS = 100  # GymXYWrapper's direction is redrawn every 100 steps (online_env_utils.py)


def make_expert_env() -> gym.Env:
    """The env OGBench trains its ant expert in: online-ant-v0 under GymXYWrapper (reward = xy
    displacement along a random unit direction, which is appended to the observation)."""
    import ogbench.online_locomotion  # noqa: F401  (registers online-ant-v0)
    from ogbench.online_locomotion.wrappers import GymXYWrapper

    return GymXYWrapper(gym.make("online-ant-v0"), resample_interval=EXPERT_RESAMPLE_STEPS)
