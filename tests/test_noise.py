import numpy as np
import pytest
import torch

from dfplanner.errors import DfplannerError
from dfplanner.diffusion.noise import NoiseSchedule


@pytest.mark.parametrize("betas", ["linear", "cosine"])
def test_alpha_bar_runs_from_clean_to_noise(betas):
    schedule = NoiseSchedule(1000, betas)
    assert schedule.alpha_bar[0] == 1.0
    assert torch.all(torch.diff(schedule.alpha_bar) < 0)
    assert schedule.alpha_bar[-1] < 1e-3


@pytest.mark.parametrize("prediction", ["x0", "epsilon", "v"])
def test_parameterizations_recover_x0_and_noise(prediction):
    schedule = NoiseSchedule(100, prediction=prediction)
    x0, noise = torch.randn(3, 5, 4), torch.randn(3, 5, 4)
    levels = torch.randint(1, 101, (3, 5))
    x = schedule.q_sample(x0, levels, noise)
    got_x0, got_eps = schedule.split(schedule.target(x0, noise, levels), x, levels)
    assert torch.allclose(got_x0, x0, atol=1e-3)
    assert torch.allclose(got_eps, noise, atol=1e-3)


def reference_ddim(schedule, x, k, k_next, x0):
    """Textbook DDIM (eta=0) for one shared level, written independently of NoiseSchedule.step."""
    betas = np.linspace(1e-4 * 1000 / schedule.num_levels, 0.02 * 1000 / schedule.num_levels, schedule.num_levels)
    ab = np.concatenate([[1.0], np.cumprod(1 - betas)])
    eps = (x - np.sqrt(ab[k]) * x0) / np.sqrt(1 - ab[k])
    return np.sqrt(ab[k_next]) * x0 + np.sqrt(1 - ab[k_next]) * eps


def test_step_with_equal_levels_is_ordinary_ddim():
    schedule = NoiseSchedule(1000)
    x, x0 = torch.randn(2, 6, 3), torch.randn(2, 6, 3)
    levels, nxt = torch.full((2, 6), 700), torch.full((2, 6), 600)
    _, eps = schedule.split(x0, x, levels)
    out = schedule.step(x, levels, nxt, x0, eps)
    expected = reference_ddim(schedule, x.double().numpy(), 700, 600, x0.double().numpy())
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-4)


def test_step_moves_each_token_to_its_own_level():
    schedule = NoiseSchedule(1000)
    x, x0 = torch.randn(1, 3, 2), torch.randn(1, 3, 2)
    levels = torch.tensor([[500, 300, 0]])
    nxt = torch.tensor([[400, 300, 0]])
    _, eps = schedule.split(x0, x, levels)
    out = schedule.step(x, levels, nxt, x0, eps)
    expected = reference_ddim(schedule, x[0, 0].double().numpy(), 500, 400, x0[0, 0].double().numpy())
    np.testing.assert_allclose(out[0, 0].numpy(), expected, atol=1e-4)
    assert torch.equal(out[0, 1:], x[0, 1:])  # tokens whose level does not change stay put


def test_step_to_zero_returns_x0_and_ddpm_adds_noise():
    schedule = NoiseSchedule(1000)
    x, x0 = torch.randn(4, 2), torch.randn(4, 2)
    levels = torch.full((4,), 10)
    _, eps = schedule.split(x0, x, levels)
    assert torch.allclose(schedule.step(x, levels, torch.zeros_like(levels), x0, eps), x0, atol=1e-5)
    ddim = schedule.step(x, levels, levels - 5, x0, eps)
    ddpm = schedule.step(x, levels, levels - 5, x0, eps, eta=1.0, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(ddim, ddpm)


def test_bad_schedule_options_are_clear_errors():
    with pytest.raises(DfplannerError, match="beta schedule"):
        NoiseSchedule(10, "quadratic")
    with pytest.raises(DfplannerError, match="prediction"):
        NoiseSchedule(10, prediction="score")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_coefficient_table_matches_alpha_bar(dtype):
    schedule = NoiseSchedule(1000)
    levels = torch.tensor([[0, 1, 500], [999, 1000, 3]])
    a, s = schedule.coefficients(levels, torch.zeros(2, 3, 4, dtype=dtype))
    assert a.shape == s.shape == (2, 3, 1) and a.dtype == s.dtype == dtype
    expected = schedule.alpha_bar[levels].double().unsqueeze(-1)
    assert torch.allclose(a.double(), expected.sqrt(), atol=1e-6)
    assert torch.allclose(s.double(), (1 - expected).sqrt(), atol=1e-6)


@pytest.mark.parametrize("prediction", ["x0", "epsilon", "v"])
def test_predict_x0_keeps_clean_tokens(prediction):
    schedule = NoiseSchedule(100, prediction=prediction)
    x, output = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    levels = torch.tensor([[0, 10, 50, 100], [0, 0, 1, 99]])
    x0 = schedule.predict_x0(output, x, levels)
    clean = levels == 0
    assert torch.equal(x0[clean], x[clean])
    assert torch.allclose(x0, schedule.split(output, x, levels)[0])
