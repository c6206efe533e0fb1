"""Diffusion Forcing sampling under a scheduling matrix (the planner's inner loop), guidance aside.

Each row of the matrix is one batched network call over the tokens not yet final: every token moves
from its level to the row's level in one vectorized step. Tokens that have become clean and have only
clean tokens before them form a frozen prefix: they are folded into the model state once and never
recomputed. Generated tokens are fed back at a small `stabilization_level` (Diffusion Forcing's
stabilization), real context at level 0. How a cost steers the row is the guidance object's business
(dfplanner.planning.guidance); the loop only asks it for the clean estimate and the tokens after the step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from dfplanner.errors import DfplannerError
from dfplanner.planning.guidance import Guidance, Row, Unguided
from dfplanner.diffusion.models import State
from dfplanner.diffusion.noise import NoiseSchedule

# on_row(row, x, x0): after sampling row `row`, the tokens x at that row's levels and their clean estimate x0
RowCallback = Callable[[int, torch.Tensor, torch.Tensor], None]


@dataclass
class Sampled:
    tokens: torch.Tensor  # (B, T, D) at the levels of the schedule's last row
    estimate: torch.Tensor  # (B, T, D) the clean plan: tokens where clean, the latest clean estimate elsewhere


class _NonFiniteWatch:
    """Records, without a host sync per row, the first sampling row that produced NaN or inf."""

    def __init__(self):
        self.flags: list[torch.Tensor] = []

    def add(self, x: torch.Tensor) -> None:
        self.flags.append(torch.isfinite(x).all())

    def check(self, schedule: np.ndarray) -> None:
        if not self.flags:
            return
        finite = torch.stack(self.flags).cpu().numpy()
        if not finite.all():
            row = int(np.argmin(finite)) + 1
            raise DfplannerError(
                f"the denoiser produced NaN or inf at sampling row {row} of {len(schedule) - 1} "
                f"(levels {schedule[row - 1].min()}..{schedule[row - 1].max()}); the checkpoint, its inputs "
                "or the guidance settings are broken"
            )


def _stabilized(
    noise: NoiseSchedule, live: torch.Tensor, levels: torch.Tensor, level: int, any_clean: bool, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clean tokens behind noisy ones (e.g. trapezoid ends) are fed back at the stabilization level."""
    if not any_clean:
        return live, levels
    clean = levels == 0
    input_levels = torch.where(clean, torch.full_like(levels, level), levels)
    renoised = noise.q_sample(live, input_levels, torch.randn(live.shape, generator=generator, device=live.device))
    return torch.where(clean.unsqueeze(-1), renoised, live), input_levels


def sample_tokens(
    model: nn.Module,
    noise: NoiseSchedule,
    state: State,
    schedule: np.ndarray,
    guidance: Guidance | None = None,
    stabilization_level: int = 0,
    eta: float = 0.0,
    initial: torch.Tensor | None = None,
    initial_estimate: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    on_row: RowCallback | None = None,
    needed: int | None = None,
) -> Sampled:
    """Sample (B, T, D) normalized tokens following `schedule` (rows x T levels) from `state`.

    `initial` holds the tokens at the levels of the first row (white noise when omitted) and
    `initial_estimate` their clean estimate, so a caller can continue a partly denoised plan.
    `on_row` (optional) watches every row, e.g. to draw it. With `needed`, sampling stops at the first
    row where tokens [0, needed) are clean: a receding-horizon controller acts on those alone before it
    plans again, so the rows after would only refine tokens it never executes (the later tokens keep
    their latest clean estimate)."""
    guidance = guidance or Unguided()
    batch = (state[0] if isinstance(state, tuple) else state).shape[0]
    horizon, device = schedule.shape[1], next(model.parameters()).device
    levels_all = torch.as_tensor(schedule, device=device)
    x = initial if initial is not None else torch.randn(batch, horizon, model.token_dim, generator=generator, device=device)
    estimate = initial_estimate if initial_estimate is not None else torch.zeros_like(x)
    watch, frozen = _NonFiniteWatch(), 0  # tokens [0, frozen) are final and folded into `state`
    last = len(schedule) - 1  # the row the returned tokens are at
    for row in range(1, len(schedule)):
        if needed is not None and not schedule[row - 1, :needed].any():
            last = row - 1
            break
        levels, next_levels = levels_all[row - 1].expand(batch, horizon), levels_all[row].expand(batch, horizon)
        newly_frozen = int(np.argmin(np.append(schedule[row - 1, frozen:] == 0, False)))
        if newly_frozen:
            chunk = x[:, frozen : frozen + newly_frozen]
            chunk_levels = torch.full_like(levels[:, :newly_frozen], stabilization_level)
            with torch.no_grad():
                state = model.advance(state, noise.q_sample(chunk, chunk_levels, torch.randn(chunk.shape, generator=generator, device=device)), chunk_levels)
            frozen += newly_frozen
        if frozen == horizon:
            break
        live, live_levels = x[:, frozen:], levels[:, frozen:]
        any_clean = bool((schedule[row - 1, frozen:] == 0).any())
        inputs, input_levels = _stabilized(noise, live, live_levels, stabilization_level, any_clean, generator)
        step = Row(model, noise, state, live, live_levels, next_levels[:, frozen:], inputs, input_levels, x[:, :frozen], estimate[:, frozen:])
        x0, gradient = guidance.estimate(step, generator)
        x0 = guidance.guide_estimate(step, torch.where((live_levels == 0).unsqueeze(-1), live, x0), gradient)
        moved = noise.step(live, live_levels, step.next_levels, x0, noise.epsilon_from_x0(live, x0, live_levels), eta, generator)
        moved = guidance.guide_next(step, moved, gradient)
        x = torch.cat([x[:, :frozen], moved], dim=1).detach()
        estimate = torch.cat([estimate[:, :frozen], x0.detach()], dim=1)
        watch.add(moved)
        if on_row is not None:
            on_row(row, x, estimate)
    watch.check(schedule)
    clean = torch.as_tensor(schedule[last] == 0, device=device).view(1, -1, 1)
    return Sampled(x, torch.where(clean, x, estimate))
