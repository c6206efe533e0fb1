"""Reach and stay: once a plan reaches the goal, the rest of it holds the goal at rest.

The offline data's expert never stops on a goal (it draws a new waypoint on arrival), so a model
trained on it plans to pass through a goal, and a cost alone cannot make the sampled states sit still.
The planner knows the goal, though: from the first planned step within `radius` of it, the planned
position becomes the goal and the planned velocity zero. PD tracking then brakes onto the goal and
stays, and a plan that never comes near the goal is left untouched, so routing stays the model's job.
"""

from __future__ import annotations

import numpy as np


def hold_goal(
    observations: np.ndarray, goal: np.ndarray, radius: float, position_dims: tuple[int, ...], velocity_dims: tuple[int, ...]
) -> np.ndarray:
    """Planned observations (B, L, obs_dim) with every step from the first arrival on set to the goal at rest.

    `goal` is (B, goal_dim); arrival means a planned position within `radius` of it."""
    held = observations.copy()
    pos, vel = list(position_dims), list(velocity_dims)
    near = np.linalg.norm(observations[..., pos] - goal[:, None, :], axis=-1) <= radius
    arrived = np.maximum.accumulate(near, axis=1)
    for dims, value in ((pos, np.broadcast_to(goal[:, None, :], held[..., pos].shape)), (vel, 0.0)):
        block = held[..., dims]
        held[..., dims] = np.where(arrived[..., None], value, block)
    return held
