"""One plan recorded while it is denoised under the scheduling matrix: the frames of `dfplan plan`.

After every sampling row the sampler reports each token's clean estimate; turned into planned
positions, they show Diffusion Forcing at work: near tokens settle first while far ones are still
noisy (pyramid schedule), each token at its own noise level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dfplanner.planning.planner import DiffusionForcingPlanner


@dataclass
class Denoising:
    positions: np.ndarray  # (frames, steps, 2): planned positions of the clean estimate after each recorded row
    rows: np.ndarray  # (frames,) the sampling row of each frame
    schedule: np.ndarray  # (rows, tokens) the scheduling matrix: each token's noise level after each row
    num_levels: int  # K, the pure-noise level
    frame_stack: int  # env steps per token
    start: np.ndarray  # (2,) the agent's position
    goal: np.ndarray  # (2,)


def record_denoising(planner: DiffusionForcingPlanner, observation: np.ndarray, goal: np.ndarray) -> Denoising:
    """Reset `planner` to this observation and goal, sample one plan and keep every row's estimate.

    With several candidates per decision, the frames follow the candidate the planner kept."""
    planner.reset(observation, goal)
    estimates: list[torch.Tensor] = []
    rows: list[int] = []

    def keep(row: int, x: torch.Tensor, x0: torch.Tensor) -> None:
        rows.append(row)
        estimates.append(x0.clone())

    plan = planner.plan(on_row=keep)
    stacked = torch.stack(estimates)  # (frames, candidates, tokens, token_dim)
    frames, candidates = stacked.shape[:2]
    start = torch.as_tensor(np.asarray(observation, dtype=np.float32), device=stacked.device)
    with torch.no_grad():
        states = planner.trained.codec.decode(stacked.flatten(0, 1), start.expand(frames * candidates, -1))["observation"]
    dims = list(planner.settings.position_dims)
    positions = states[..., dims].view(frames, candidates, -1, len(dims)).float().cpu().numpy()
    return Denoising(
        positions=positions[:, plan.kept[0]],
        rows=np.array(rows),
        schedule=plan.levels,
        num_levels=planner.trained.schedule.num_levels,
        frame_stack=planner.trained.layout.frame_stack,
        start=np.asarray(observation, dtype=np.float64)[dims],
        goal=np.asarray(goal, dtype=np.float64),
    )
