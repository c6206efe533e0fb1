"""The Diffusion Forcing training objective (Algorithm 1 of the paper) and the weight EMA."""

from __future__ import annotations

import copy

import torch
from torch import nn

from dfplanner.errors import DfplannerError
from dfplanner.diffusion.noise import NoiseSchedule
from dfplanner.data.windows import WindowBatch

LOSS_WEIGHTINGS = ("uniform", "min_snr")
# Hang et al. (2023) "Min-SNR weighting": clip the signal-to-noise ratio at this value.
MIN_SNR_GAMMA = 5.0


def loss_weights(schedule: NoiseSchedule, levels: torch.Tensor, weighting: str) -> torch.Tensor:
    """Per-token loss weight. "uniform": plain MSE on the target; "min_snr": Min-SNR-5 weighting,
    which stops nearly clean tokens (huge SNR) from dominating, expressed for the parameterization."""
    if weighting == "uniform":
        return torch.ones(levels.shape, device=levels.device)
    if weighting != "min_snr":
        raise DfplannerError(f"unknown loss weighting {weighting!r}; choose one of {', '.join(LOSS_WEIGHTINGS)}")
    alpha_bar = schedule.alpha_bar.to(levels.device)[levels]
    snr = alpha_bar / (1 - alpha_bar).clamp(min=1e-8)
    clipped = snr.clamp(max=MIN_SNR_GAMMA)
    if schedule.prediction == "x0":
        return clipped
    if schedule.prediction == "epsilon":
        return clipped / snr.clamp(min=1e-8)
    return clipped / (snr + 1)


def diffusion_forcing_loss(
    model: nn.Module,
    schedule: NoiseSchedule,
    batch: WindowBatch,
    weighting: str = "uniform",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Noise every token to its own independent uniform level and regress the target, ignoring padding."""
    tokens, mask = batch.tokens, batch.mask
    levels = torch.randint(0, schedule.num_levels + 1, mask.shape, generator=generator, device=tokens.device)
    noise = torch.randn(tokens.shape, generator=generator, device=tokens.device)
    noisy = schedule.q_sample(tokens, levels, noise)
    output = model(noisy, levels, model.initial_state(batch.observations))
    error = (output - schedule.target(tokens, noise, levels)).pow(2).mean(-1)
    weights = loss_weights(schedule, levels, weighting) * mask
    return (error * weights).sum() / mask.sum().clamp(min=1)


class EMA:
    """Exponential moving average of a model's weights, used for planning."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for average, current in zip(self.model.parameters(), model.parameters()):
            average.lerp_(current.detach(), 1 - self.decay)
