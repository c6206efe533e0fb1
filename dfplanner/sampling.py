"""Guided sampling of a token sequence under a scheduling matrix (the planner's inner loop).

Each row of the matrix is one batched network call over the tokens not yet final: every token moves
from its level to the row's level in one vectorized step. Tokens that have become clean and have only
clean tokens before them form a frozen prefix: they are folded into the model state once and never
recomputed. Generated tokens are fed back at a small `stabilization_level` (Diffusion Forcing's
stabilization), real context at level 0.

Guidance (optional) moves each token's clean estimate against the gradient of a cost on the
unnormalized predicted plan, by `guidance_scale` times its current noise standard deviation (in
normalized units), so steps are bounded and fade as the token becomes clean. Token steps are scaled
relative to the plan's mean gradient norm, so a token that barely affects the cost barely moves.
Two ways to take the gradient (`guidance_gradient`):
- "plan": steepest descent in the plan's own quantities: move each planned state (and
  action, reward) against its gradient, then express that displacement in token space (for delta
  tokens, the differences of the displacements). Each planned state is pulled locally.
- "model" (default, the paper's): differentiate through the causal model with respect to the noisy tokens, so
  far-future costs steer near tokens through the latent. With delta tokens this turns into "every
  step heads straight for the goal", which on maze2d-large drives plans into walls (results/README.md).
Monte Carlo Guidance averages the gradient over `mcg_samples` re-noised copies of the uncertain
tokens, all in one batched forward (and backward) pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from dfplanner.checkpoint import TrainedModel
from dfplanner.errors import DfplannerError
from dfplanner.guidance import Cost
from dfplanner.models import State, repeat_state

# Guards the per-token gradient normalization against a zero gradient.
GRADIENT_EPS = 1e-8


@dataclass
class SamplerSettings:
    guidance_scale: float = 1.0
    mcg_samples: int = 4
    candidates: int = 1  # plans sampled per decision; the one with the lowest cost is kept
    guidance_gradient: str = "model"  # "model" (the paper's) or "plan" (see the module docstring)
    stabilization_level: int = 10
    eta: float = 0.0


def tokens_to_plan(trained: TrainedModel, tokens: torch.Tensor, start_observation: torch.Tensor) -> dict[str, torch.Tensor]:
    """Normalized tokens (B, T, D) -> channels in env units, (B, T*F, dim) each (reward: (B, T*F))."""
    steps = trained.normalizer.unnormalize_steps(trained.layout.to_steps(tokens))
    return trained.layout.channels_from_steps(steps, start_observation)


GUIDANCE_GRADIENTS = ("plan", "model")
# on_row(row, x, x0): after sampling row `row`, the tokens x at that row's levels and their clean estimate x0
RowCallback = Callable[[int, torch.Tensor, torch.Tensor], None]


def plan_space_gradient(
    trained: TrainedModel, cost: Cost, tokens: torch.Tensor, start_observation: torch.Tensor, goal: torch.Tensor | None
) -> torch.Tensor:
    """Token-space displacement (B, T, D) of steepest descent of `cost` in the plan's own units."""
    tokens = tokens.detach().requires_grad_(True)
    plan = tokens_to_plan(trained, tokens, start_observation)
    channels = list(plan)
    grads = torch.autograd.grad(cost(plan, goal).sum(), [plan[c] for c in channels], allow_unused=True)
    layout = trained.layout
    steps = torch.zeros(*tokens.shape[:1], tokens.shape[1] * layout.frame_stack, layout.step_dim, device=tokens.device)
    for channel, grad in zip(channels, grads):
        if grad is None:
            continue
        if channel == "reward":
            grad = grad.unsqueeze(-1)
        if channel == "observation" and layout.observation_deltas:
            # states move by -grad; the delta of step t moves by the difference of consecutive moves
            grad = grad - torch.nn.functional.pad(grad, (0, 0, 1, 0))[:, :-1]
        steps[..., layout.channel_slice(channel)] = grad
    std = torch.as_tensor(trained.normalizer.step_std, device=tokens.device)
    return layout.to_tokens(steps / std)


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
                f"(levels {schedule[row - 1].min()}..{schedule[row - 1].max()}); the checkpoint or its inputs are broken"
            )


def sample_tokens(
    trained: TrainedModel,
    state: State,
    schedule: np.ndarray,
    settings: SamplerSettings,
    start_observation: torch.Tensor,
    cost: Cost | None = None,
    goal: torch.Tensor | None = None,
    initial: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    on_row: RowCallback | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample (B, T, D) normalized tokens following `schedule` (rows x T levels) from `state`.

    Returns the tokens at the levels of the last row, and the best estimate of the clean plan: those
    tokens where they are clean, the latest clean prediction where they are not (a rolling plan keeps
    its far tokens noisy).

    `start_observation` (B, obs_dim) is the current observation in env units, where the plan begins.

    `initial` holds the tokens at the levels of the first row (white noise when omitted), which lets
    a caller continue a partially denoised plan. `on_row` (optional) watches every row, e.g. to draw it.
    """
    model, noise = trained.model, trained.schedule
    batch = (state[0] if isinstance(state, tuple) else state).shape[0]
    horizon, dim = schedule.shape[1], trained.layout.token_dim
    device = next(model.parameters()).device
    levels_all = torch.as_tensor(schedule, device=device)
    x = initial if initial is not None else torch.randn(batch, horizon, dim, generator=generator, device=device)
    x0_estimate = torch.zeros_like(x)
    watch = _NonFiniteWatch()
    guided = cost is not None and settings.guidance_scale > 0
    samples = max(1, settings.mcg_samples) if guided else 1
    stab = settings.stabilization_level

    def repeat(t: torch.Tensor) -> torch.Tensor:
        """One copy per MCG sample, each sample's copies adjacent."""
        return t.repeat_interleave(samples, 0) if samples > 1 else t

    goal_copies = repeat(goal) if goal is not None else None
    start_copies = repeat(start_observation)
    frozen = 0  # tokens [0, frozen) are final and folded into `state`
    for row in range(1, len(schedule)):
        levels = levels_all[row - 1].expand(batch, horizon)
        next_levels = levels_all[row].expand(batch, horizon)
        newly_frozen = int(np.argmin(np.append(schedule[row - 1, frozen:] == 0, False)))
        if newly_frozen:
            with torch.no_grad():
                chunk = x[:, frozen : frozen + newly_frozen]
                chunk_levels = torch.full_like(levels[:, :newly_frozen], stab)
                state = model.advance(state, noise.q_sample(chunk, chunk_levels, torch.randn(chunk.shape, generator=generator, device=device)), chunk_levels)
            frozen += newly_frozen
        if frozen == horizon:
            break
        live, live_levels = x[:, frozen:], levels[:, frozen:]
        input_levels, model_input = live_levels, live
        if (schedule[row - 1, frozen:] == 0).any():
            # Clean tokens behind noisy ones (e.g. trapezoid ends) are fed back at the stabilization level.
            clean = live_levels == 0
            input_levels = torch.where(clean, torch.full_like(live_levels, stab), live_levels)
            stabilized = noise.q_sample(live, input_levels, torch.randn(live.shape, generator=generator, device=device))
            model_input = torch.where(clean.unsqueeze(-1), stabilized, live)
        through_model = guided and settings.guidance_gradient == "model"
        with torch.set_grad_enabled(through_model):
            if guided:
                model_input = model_input.detach().requires_grad_(through_model)
                copies, copy_levels = repeat(model_input), repeat(input_levels)
                if samples > 1:
                    renoised = noise.q_sample(
                        repeat(x0_estimate[:, frozen:]), copy_levels, torch.randn(copies.shape, generator=generator, device=device)
                    )
                    first = torch.zeros(batch, samples, 1, 1, dtype=torch.bool, device=device)
                    first[:, 0] = True
                    keep = first.expand(batch, samples, *copies.shape[1:]).reshape(copies.shape)
                    # Straight-through: copies take the re-noised values but pass their gradient to x.
                    copies = copies + torch.where(keep, torch.zeros_like(copies), renoised - copies).detach()
                outputs = model(copies, copy_levels, repeat_state(state, samples) if samples > 1 else state)
                x0_copies = noise.predict_x0(outputs, copies, copy_levels)
                full = torch.cat([repeat(x[:, :frozen].detach()), x0_copies], dim=1) if frozen else x0_copies
                if through_model:
                    total = cost(tokens_to_plan(trained, full, start_copies), goal_copies).sum() / samples
                    (gradient,) = torch.autograd.grad(total, model_input)
                else:
                    with torch.enable_grad():
                        gradient = plan_space_gradient(trained, cost, full, start_copies, goal_copies)[:, frozen:]
                    if samples > 1:
                        gradient = gradient.view(batch, samples, *gradient.shape[1:]).mean(1)
                output = outputs.detach().view(batch, samples, *outputs.shape[1:])[:, 0]
            else:
                output = model(model_input, input_levels, state)
        x0 = noise.predict_x0(output, live, live_levels)
        if guided:
            sigma = noise.coefficients(live_levels, live)[1]
            norms = gradient.norm(dim=-1, keepdim=True)
            direction = gradient / torch.maximum(norms, norms.mean(dim=1, keepdim=True)).clamp(min=GRADIENT_EPS)
            x0 = x0 - settings.guidance_scale * sigma * direction
        epsilon = noise.epsilon_from_x0(live, x0, live_levels)
        new_live = noise.step(live, live_levels, next_levels[:, frozen:], x0, epsilon, settings.eta, generator)
        x = torch.cat([x[:, :frozen], new_live], dim=1).detach()
        x0_estimate = torch.cat([x0_estimate[:, :frozen], x0.detach()], dim=1)
        watch.add(new_live)
        if on_row is not None:
            on_row(row, x, x0_estimate)
    watch.check(schedule)
    clean = torch.as_tensor(schedule[-1] == 0, device=device).view(1, -1, 1)
    return x, torch.where(clean, x, x0_estimate)
