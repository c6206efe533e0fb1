"""Guidance: how a cost on the plan steers sampling. One interface, three strategies, one wrapper.

For each sampling row the sampler hands a strategy a `Row` (the live tokens and how to denoise them)
and asks three things, in this order:
- `estimate(row)`: the clean estimate of the live tokens and the cost's gradient with respect to them;
- `guide_estimate(row, x0, gradient)`: the clean estimate the DDIM step is taken towards;
- `guide_next(row, x_next, gradient)`: the tokens after the step.

Strategies (`GUIDANCE_NAMES`, built by `make_guidance`):
- "plan": steepest descent in the plan's own quantities: move each planned state (and action, reward)
  against its gradient, then express that displacement in token space. Each planned state is pulled
  locally, so with a causal model and a new plan every token, the far plan cannot change token 0.
- "model": differentiate through the causal model with respect to the noisy tokens, so costs on the
  far future reach near tokens through the latent.
- "paper": the paper's Algorithm 2, line 10: the same through-model gradient, added to the tokens after
  the step, x <- x_next - scale * c_k * gradient, with the per-step constant of the authors' release
  (see `PaperGuidance`). The step grows with the raw gradient, so a good scale depends on the cost's
  units and on the horizon.
"plan" and "model" instead take a bounded step on the clean estimate:
    x0 <- x0 - scale * sigma_k * g_t / max(|g_t|, mean_t |g_t|)
sigma_k is the token's current noise standard deviation, so steps fade as the token becomes clean, and
a token whose gradient is small next to the plan's mean barely moves.

`PlanPull` (setting `plan_pull`) adds the "plan" step to any strategy's guided estimate: the direct pull
beside the through-model gradient (results/README.md, issue 13: it scores higher, but the far plan then
no longer matters).

Monte Carlo Guidance (`MonteCarloGuidance`, the paper's MCG) wraps any strategy: the gradient is
averaged over `samples` copies of the row, copy 0 as it is and the others with the live tokens re-noised
from the last row's clean estimate (other futures the plan could have), all in one batched call.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from dfplanner.planning.costs import Cost
from dfplanner.errors import DfplannerError
from dfplanner.diffusion.models import State, repeat_state
from dfplanner.diffusion.noise import NoiseSchedule
from dfplanner.planning.settings import GUIDANCE_NAMES
from dfplanner.data.tokens import TokenCodec

# Guards the per-token gradient normalization against a zero gradient.
GRADIENT_EPS = 1e-8


def _repeat(t: torch.Tensor | None, n: int) -> torch.Tensor | None:
    """Each batch entry n times, its copies adjacent."""
    return t.repeat_interleave(n, 0) if t is not None and n > 1 else t


@dataclass
class Row:
    """What guidance sees of one sampling row: the live (not yet frozen) tokens and how to denoise them."""

    model: nn.Module
    noise: NoiseSchedule
    state: State  # the model state after the frozen prefix
    x: torch.Tensor  # (B, L, D) live tokens at their levels
    levels: torch.Tensor  # (B, L)
    next_levels: torch.Tensor  # (B, L) the levels this row takes them to
    inputs: torch.Tensor  # what the model is fed: x, clean tokens behind noisy ones stabilized
    input_levels: torch.Tensor
    prefix: torch.Tensor  # (B, P, D) frozen clean tokens before the live ones
    previous: torch.Tensor  # (B, L, D) the last row's clean estimate of the live tokens

    def denoise(self, inputs: torch.Tensor) -> torch.Tensor:
        """The model's clean estimate for these inputs (differentiable when they require grad)."""
        return self.noise.predict_x0(self.model(inputs, self.input_levels, self.state), inputs, self.input_levels)

    def whole(self, x0: torch.Tensor) -> torch.Tensor:
        """The whole plan's tokens: frozen prefix, then the live clean estimate."""
        return torch.cat([self.prefix, x0], dim=1) if self.prefix.shape[1] else x0

    def repeated(self, n: int, inputs: torch.Tensor) -> Row:
        """n copies of every batch entry (adjacent), fed `inputs`."""
        fields = {f.name: _repeat(getattr(self, f.name), n) for f in dataclasses.fields(self) if f.name not in ("model", "noise", "state")}
        return dataclasses.replace(self, **{**fields, "state": repeat_state(self.state, n), "inputs": inputs})


@dataclass
class PlanObjective:
    """A cost bound to one decision: the goal, and the observation the plan starts from."""

    cost: Cost
    codec: TokenCodec
    start: torch.Tensor  # (B, obs_dim) in env units
    goal: torch.Tensor | None  # (B, goal_dim)

    def _plan(self, tokens: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        copies = tokens.shape[0] // self.start.shape[0]  # Monte Carlo copies of each sample are adjacent
        return self.codec.decode(tokens, _repeat(self.start, copies)), _repeat(self.goal, copies)

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T, D) normalized tokens -> (B,) cost of the plans they decode to."""
        return self.cost(*self._plan(tokens))

    def plan_space_gradient(self, tokens: torch.Tensor) -> torch.Tensor:
        """The cost's gradient taken in plan units, expressed as a (B, T, D) token displacement."""
        with torch.enable_grad():
            tokens = tokens.detach().requires_grad_(True)
            plan, goal = self._plan(tokens)
            channels = list(plan)
            grads = torch.autograd.grad(self.cost(plan, goal).sum(), [plan[c] for c in channels], allow_unused=True)
        moves = {c: g for c, g in zip(channels, grads) if g is not None}
        return self.codec.displacement_to_tokens(moves, tokens)


class Guidance(Protocol):
    def estimate(self, row: Row, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]: ...

    def guide_estimate(self, row: Row, x0: torch.Tensor, gradient: torch.Tensor | None) -> torch.Tensor: ...

    def guide_next(self, row: Row, x_next: torch.Tensor, gradient: torch.Tensor | None) -> torch.Tensor: ...


class Unguided:
    """Plain Diffusion Forcing sampling: the model's estimate, untouched."""

    def estimate(self, row: Row, generator: torch.Generator | None = None) -> tuple[torch.Tensor, None]:
        with torch.no_grad():
            return row.denoise(row.inputs), None

    def guide_estimate(self, row: Row, x0: torch.Tensor, gradient: torch.Tensor | None) -> torch.Tensor:
        return x0

    def guide_next(self, row: Row, x_next: torch.Tensor, gradient: torch.Tensor | None) -> torch.Tensor:
        return x_next


def through_model_gradient(objective: PlanObjective, row: Row) -> tuple[torch.Tensor, torch.Tensor]:
    """Clean estimate and d cost / d inputs, differentiated through the causal model.

    cuDNN computes an RNN's backward only in training mode, and the planner's model is in eval mode, so
    on CUDA this gradient runs without cuDNN (PyTorch's own RNN kernels; on the CPU nothing changes)."""
    with torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):
        inputs = row.inputs.detach().requires_grad_(True)
        x0 = row.denoise(inputs)
        (gradient,) = torch.autograd.grad(objective(row.whole(x0)).sum(), inputs)
    return x0.detach(), gradient


def bounded_step(row: Row, gradient: torch.Tensor, scale: float) -> torch.Tensor:
    """scale * sigma_k * g_t / max(|g_t|, mean_t |g_t|): the move against the gradient, at most scale * sigma_k per token."""
    sigma = row.noise.coefficients(row.levels, row.x)[1]
    norms = gradient.norm(dim=-1, keepdim=True)
    return scale * sigma * gradient / torch.maximum(norms, norms.mean(dim=1, keepdim=True)).clamp(min=GRADIENT_EPS)


class _BoundedEstimateStep(Unguided):
    """Moves the clean estimate against the gradient by at most scale * sigma_k per token."""

    def __init__(self, objective: PlanObjective, scale: float):
        self.objective, self.scale = objective, scale

    def guide_estimate(self, row: Row, x0: torch.Tensor, gradient: torch.Tensor | None) -> torch.Tensor:
        return x0 - bounded_step(row, gradient, self.scale)


class PlanSpaceGuidance(_BoundedEstimateStep):
    """"plan": see the module docstring."""

    def estimate(self, row: Row, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            x0 = row.denoise(row.inputs)
        return x0, self.objective.plan_space_gradient(row.whole(x0))[:, row.prefix.shape[1] :]


class ModelGradientGuidance(_BoundedEstimateStep):
    """"model": see the module docstring."""

    def estimate(self, row: Row, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return through_model_gradient(self.objective, row)


class PaperGuidance(Unguided):
    """"paper": Algorithm 2, line 10; see the module docstring."""

    def __init__(self, objective: PlanObjective, scale: float):
        self.objective, self.scale = objective, scale

    def estimate(self, row: Row, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return through_model_gradient(self.objective, row)

    def guide_next(self, row: Row, x_next: torch.Tensor, gradient: torch.Tensor | None) -> torch.Tensor:
        """x_next - scale * c * gradient with the authors' per-step constant c = s_k (s_k - s_k'),
        s = sqrt(1 - alpha_bar), for a step from level k to k' > 0; c = 0 for the step to clean and for
        tokens the row does not move."""
        s_now = row.noise.coefficients(row.levels, row.x)[1]
        s_next = row.noise.coefficients(row.next_levels, row.x)[1]
        moved = ((row.next_levels != row.levels) & (row.next_levels > 0)).unsqueeze(-1)
        constant = torch.where(moved, s_now * (s_now - s_next), torch.zeros_like(s_now))
        return x_next - self.scale * constant * gradient


class MonteCarloGuidance:
    """Any strategy, its gradient averaged over `samples` futures (see the module docstring)."""

    def __init__(self, inner: Guidance, samples: int):
        self.inner, self.samples = inner, samples

    def estimate(self, row: Row, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        n, batch = self.samples, row.x.shape[0]
        copies = _repeat(row.inputs, n)
        levels = _repeat(row.input_levels, n)
        renoised = row.noise.q_sample(_repeat(row.previous, n), levels, torch.randn(copies.shape, generator=generator, device=copies.device))
        first = (torch.arange(len(copies), device=copies.device) % n == 0).view(-1, 1, 1)
        x0, gradient = self.inner.estimate(row.repeated(n, torch.where(first, copies, renoised)), generator)
        x0 = x0.view(batch, n, *x0.shape[1:])[:, 0]
        if gradient is not None:
            gradient = gradient.view(batch, n, *gradient.shape[1:]).mean(1)
        return x0, gradient

    def guide_estimate(self, row: Row, x0: torch.Tensor, gradient: torch.Tensor | None) -> torch.Tensor:
        return self.inner.guide_estimate(row, x0, gradient)

    def guide_next(self, row: Row, x_next: torch.Tensor, gradient: torch.Tensor | None) -> torch.Tensor:
        return self.inner.guide_next(row, x_next, gradient)


class PlanPull:
    """Any strategy, then a direct pull: the plan-space step ("plan") of scale `pull` added to the clean
    estimate the strategy guided, so the executed token heads straight at what the cost aims at while the
    strategy's own gradient (through the model) still shapes it."""

    def __init__(self, inner: Guidance, objective: PlanObjective, pull: float):
        self.inner, self.objective, self.pull = inner, objective, pull

    def estimate(self, row: Row, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.inner.estimate(row, generator)

    def guide_estimate(self, row: Row, x0: torch.Tensor, gradient: torch.Tensor | None) -> torch.Tensor:
        x0 = self.inner.guide_estimate(row, x0, gradient)
        pull = self.objective.plan_space_gradient(row.whole(x0))[:, row.prefix.shape[1] :]
        return x0 - bounded_step(row, pull, self.pull)

    def guide_next(self, row: Row, x_next: torch.Tensor, gradient: torch.Tensor | None) -> torch.Tensor:
        return self.inner.guide_next(row, x_next, gradient)


STRATEGIES = {"plan": PlanSpaceGuidance, "model": ModelGradientGuidance, "paper": PaperGuidance}


def make_guidance(name: str, objective: PlanObjective | None, scale: float, mcg_samples: int = 1, plan_pull: float = 0.0) -> Guidance:
    """A strategy by name; no objective or zero scales is unguided sampling, MCG wraps it when samples > 1,
    and a plan pull > 0 adds the direct pull after it."""
    if name not in STRATEGIES:
        raise DfplannerError(f"unknown guidance {name!r}; choose one of {', '.join(GUIDANCE_NAMES)}")
    if objective is None or (scale == 0 and plan_pull == 0):
        return Unguided()
    guidance = STRATEGIES[name](objective, scale) if scale > 0 else Unguided()
    guidance = MonteCarloGuidance(guidance, mcg_samples) if mcg_samples > 1 and scale > 0 else guidance
    return PlanPull(guidance, objective, plan_pull) if plan_pull > 0 else guidance
