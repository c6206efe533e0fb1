"""Noise schedule and sampling step, independent of the network (in the spirit of diffusers' schedulers).

Levels are integers k in {0..K}: k=0 is the clean token, k=K pure noise. Every function takes a
tensor of levels shaped like the tokens' leading dimensions, so each token moves from its own
current level to its own next level in one vectorized call: that is what Diffusion Forcing needs.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from dfplanner.errors import DfplannerError

Prediction = Literal["x0", "epsilon", "v"]
BETA_SCHEDULES = ("linear", "cosine")
PREDICTIONS = ("x0", "epsilon", "v")
# Linear betas of Ho et al. (2020) for K=1000; scaled by 1000/K for other K so the total noise matches.
LINEAR_BETA_START, LINEAR_BETA_END = 1e-4, 0.02
# Nichol & Dhariwal (2021): small offset so beta_1 is not vanishingly small; betas capped below 1.
COSINE_OFFSET, COSINE_MAX_BETA = 0.008, 0.999


def make_betas(num_levels: int, schedule: str = "linear") -> torch.Tensor:
    """Betas beta_1..beta_K in float64."""
    if schedule == "linear":
        scale = 1000.0 / num_levels
        return torch.linspace(LINEAR_BETA_START * scale, LINEAR_BETA_END * scale, num_levels, dtype=torch.float64)
    if schedule == "cosine":
        steps = torch.arange(num_levels + 1, dtype=torch.float64) / num_levels
        alpha_bar = torch.cos((steps + COSINE_OFFSET) / (1 + COSINE_OFFSET) * math.pi / 2) ** 2
        return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=COSINE_MAX_BETA)
    raise DfplannerError(f"unknown beta schedule {schedule!r}; choose one of {', '.join(BETA_SCHEDULES)}")


class NoiseSchedule:
    """Forward process q(x_k | x_0), parameterization conversions and the DDIM/DDPM step."""

    def __init__(self, num_levels: int = 1000, betas: str = "linear", prediction: Prediction = "x0"):
        if prediction not in PREDICTIONS:
            raise DfplannerError(f"unknown prediction target {prediction!r}; choose one of {', '.join(PREDICTIONS)}")
        if num_levels < 1:
            raise DfplannerError(f"num_levels must be positive, got {num_levels}")
        self.num_levels = num_levels
        self.beta_schedule = betas
        self.prediction = prediction
        alpha_bar = torch.cumprod(1 - make_betas(num_levels, betas), dim=0)
        # Index k holds alpha_bar_k; index 0 is the clean level.
        self.alpha_bar = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar]).float()
        self._tables: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    def _table(self, like: torch.Tensor) -> torch.Tensor:
        """(K+1, 3): alpha_bar_k, sqrt(alpha_bar_k), sqrt(1 - alpha_bar_k), kept per device and dtype
        so that a sampling row costs one lookup instead of a transfer and two square roots."""
        key = (like.device, like.dtype)
        if key not in self._tables:
            ab = self.alpha_bar
            self._tables[key] = torch.stack([ab, ab.sqrt(), (1 - ab).sqrt()], dim=-1).to(like.device, like.dtype)
        return self._tables[key]

    def config(self) -> dict:
        return {"num_levels": self.num_levels, "betas": self.beta_schedule, "prediction": self.prediction}

    def coefficients(self, levels: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """sqrt(alpha_bar_k) and sqrt(1 - alpha_bar_k), broadcast over the token's channels."""
        table = self._table(like)[levels]
        while table.dim() <= like.dim():
            table = table.unsqueeze(-2)
        return table[..., 1], table[..., 2]

    def q_sample(self, x0: torch.Tensor, levels: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Noise clean tokens to their levels."""
        a, s = self.coefficients(levels, x0)
        return a * x0 + s * noise

    def target(self, x0: torch.Tensor, noise: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        """What the network is trained to output under this parameterization."""
        if self.prediction == "x0":
            return x0
        if self.prediction == "epsilon":
            return noise
        a, s = self.coefficients(levels, x0)
        return a * noise - s * x0

    def split(self, output: torch.Tensor, x: torch.Tensor, levels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0, epsilon) implied by a network output for noisy tokens x at their levels."""
        x0 = self.predict_x0(output, x, levels)
        return x0, self.epsilon_from_x0(x, x0, levels)

    def predict_x0(self, output: torch.Tensor, x: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        """The clean tokens a network output implies; for clean tokens (k=0) x itself whatever the
        network says, so the step never moves them."""
        if self.prediction == "x0":
            x0 = output
        else:
            a, s = self.coefficients(levels, x)
            x0 = (x - s * output) / a if self.prediction == "epsilon" else a * x - s * output
        clean = (levels == 0).unsqueeze(-1) if x.dim() > levels.dim() else levels == 0
        return torch.where(clean, x, x0)

    def epsilon_from_x0(self, x: torch.Tensor, x0: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        """The noise that takes x0 to x at these levels (0 for clean tokens)."""
        a, s = self.coefficients(levels, x)
        return (x - a * x0) / s.clamp(min=1e-8)

    def step(
        self,
        x: torch.Tensor,
        levels: torch.Tensor,
        next_levels: torch.Tensor,
        x0: torch.Tensor,
        epsilon: torch.Tensor,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Move each token from its level to its next level (DDIM; eta=1 is the DDPM posterior).

        Tokens whose next level equals their level are returned unchanged, so one call serves a whole
        row of a scheduling matrix whatever the levels of its tokens.
        """
        a_next, s_next = self.coefficients(next_levels, x)
        if eta > 0:
            table = self._table(x)
            ab_now, ab_next = table[levels, 0], table[next_levels, 0]
            # sigma of Song et al. (2021), eq. 16, for a jump from k to k' < k.
            variance = (1 - ab_next) / (1 - ab_now).clamp(min=1e-12) * (1 - ab_now / ab_next)
            sigma = eta * variance.clamp(min=0).sqrt()
            while sigma.dim() < x.dim():
                sigma = sigma.unsqueeze(-1)
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            moved = a_next * x0 + (s_next**2 - sigma**2).clamp(min=0).sqrt() * epsilon + sigma * noise
        else:
            moved = a_next * x0 + s_next * epsilon
        changed = next_levels != levels
        if x.dim() > levels.dim():
            changed = changed.unsqueeze(-1)
        return torch.where(changed, moved, x)
