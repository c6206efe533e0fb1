"""The sampler's shortcuts against a plain reference on the same noise.

`sample_tokens` folds the clean prefix into the model state once and runs the network on the rest
only; the reference below runs every row over the whole plan from the initial state. They must agree."""

import numpy as np
import pytest
import torch

from dfplanner.sampling import SamplerSettings, sample_tokens
from dfplanner.scheduling import build_schedule


def reference_tokens(trained, state, schedule, initial):
    """Every row over all tokens from the start state; clean tokens are fed as they are (level 0)."""
    model, noise = trained.model, trained.schedule
    x = initial.clone()
    levels = torch.as_tensor(schedule)
    with torch.no_grad():
        for row in range(1, len(schedule)):
            now, nxt = levels[row - 1].expand(len(x), -1), levels[row].expand(len(x), -1)
            x0 = noise.predict_x0(model(x, now, state), x, now)
            x = noise.step(x, now, nxt, x0, noise.epsilon_from_x0(x, x0, now))
    return x


@pytest.mark.parametrize("name, steps, uncertainty", [
    ("pyramid", 2, 0.05), ("pyramid", 3, 1.0), ("full_sequence", 4, 0.0), ("autoregressive", 2, 0.0), ("trapezoid", 3, 1.0),
])
def test_frozen_prefix_and_skipped_work_give_the_reference_plan(point_model, name, steps, uncertainty):
    trained = point_model
    horizon, levels = 8, trained.schedule.num_levels
    schedule = build_schedule(name, horizon, steps, levels, uncertainty)
    generator = torch.Generator().manual_seed(3)
    initial = torch.randn(5, horizon, trained.layout.token_dim, generator=generator)
    start = torch.as_tensor(np.c_[np.random.default_rng(0).uniform(-1, 1, (5, 2)), np.zeros((5, 2))], dtype=torch.float32)
    state = trained.model.initial_state(trained.normalizer.normalize_observations(start))
    # Stabilization level 0 feeds generated tokens back as clean, as the reference does.
    settings = SamplerSettings(guidance_scale=0.0, stabilization_level=0)
    with torch.no_grad():
        fast, _ = sample_tokens(trained, state, schedule, settings, start, initial=initial.clone(), generator=generator)
        expected = reference_tokens(trained, state, schedule, initial)
    assert torch.allclose(fast, expected, atol=1e-5), (fast - expected).abs().max()
    assert not torch.allclose(fast, initial)  # the plan was actually denoised
