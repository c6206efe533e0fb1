"""The sampler and the guidance strategies against plain references on the same noise.

`sample_tokens` folds the clean prefix into the model state once and runs the network on the rest
only; the references below run every row over the whole plan from the initial state."""

import numpy as np
import pytest
import torch

from dfplanner.planning.costs import GoalDistance
from dfplanner.planning.guidance import ModelGradientGuidance, MonteCarloGuidance, PlanObjective, PlanPull, PlanSpaceGuidance, Row, Unguided, make_guidance
from dfplanner.diffusion.noise import NoiseSchedule
from dfplanner.planning.sampling import sample_tokens
from dfplanner.diffusion.scheduling import build_schedule

HORIZON, BATCH = 8, 5
STABILIZATION = 30


class ExactAtStabilization(NoiseSchedule):
    """The trained schedule, except that the stabilization level adds no noise: feeding a token there
    is then deterministic, so a reference that re-feeds it every row must match the folded prefix."""

    def __init__(self, schedule: NoiseSchedule):
        super().__init__(schedule.num_levels, schedule.beta_schedule, schedule.prediction)
        self.alpha_bar = self.alpha_bar.clone()
        self.alpha_bar[STABILIZATION] = 1.0


def setup(trained, seed=3):
    generator = torch.Generator().manual_seed(seed)
    initial = torch.randn(BATCH, HORIZON, trained.layout.token_dim, generator=generator)
    start = torch.as_tensor(np.c_[np.random.default_rng(0).uniform(-1, 1, (BATCH, 2)), np.zeros((BATCH, 2))], dtype=torch.float32)
    state = trained.model.initial_state(trained.normalizer.normalize_observations(start))
    return initial, start, state


def objective_for(trained, start):
    goal = torch.full((len(start), 2), 1.5)
    return PlanObjective(GoalDistance((0, 1)), trained.codec, start, goal)


def reference_tokens(trained, noise, state, schedule, initial, objective=None, scale=0.0, stabilization=0):
    """Every row over all tokens from the start state; clean tokens fed at the stabilization level;
    model-gradient guidance with the bounded x0 step, written out in full."""
    model = trained.model
    x = initial.clone()
    levels = torch.as_tensor(schedule)
    for row in range(1, len(schedule)):
        now, nxt = levels[row - 1].expand(len(x), -1), levels[row].expand(len(x), -1)
        fed = torch.where(now == 0, torch.full_like(now, stabilization), now)
        noisy = np.flatnonzero(schedule[row - 1] > 0)
        first = noisy[0] if len(noisy) else HORIZON  # tokens before it form the clean (frozen) prefix
        inputs = x.clone().requires_grad_(objective is not None)
        with torch.set_grad_enabled(objective is not None):
            predicted = noise.predict_x0(model(inputs, fed, state), inputs, fed)
            if objective is not None:
                plan = torch.cat([x[:, :first], predicted[:, first:]], dim=1)
                (grad,) = torch.autograd.grad(objective(plan).sum(), inputs)
        x0 = torch.where((now == 0).unsqueeze(-1), x, predicted.detach())
        if objective is not None and first < HORIZON:
            # only the tokens behind the clean prefix move: their gradient, normalized over them
            grad = grad[:, first:]
            norms = grad.norm(dim=-1, keepdim=True)
            step = grad / torch.maximum(norms, norms.mean(dim=1, keepdim=True))
            sigma = noise.coefficients(now[:, first:], x[:, first:])[1]
            x0[:, first:] = x0[:, first:] - scale * sigma * step
        x = noise.step(x, now, nxt, x0, noise.epsilon_from_x0(x, x0, now))
    return x


@pytest.mark.parametrize("name, steps, uncertainty", [
    ("pyramid", 2, 0.05), ("pyramid", 3, 1.0), ("full_sequence", 4, 0.0), ("autoregressive", 2, 0.0), ("trapezoid", 3, 1.0),
])
def test_frozen_prefix_and_stabilization_give_the_reference_plan(point_model, name, steps, uncertainty):
    trained = point_model
    noise = ExactAtStabilization(trained.schedule)
    schedule = build_schedule(name, HORIZON, steps, noise.num_levels, uncertainty)
    initial, start, state = setup(trained)
    with torch.no_grad():
        fast = sample_tokens(trained.model, noise, state, schedule, Unguided(), STABILIZATION, initial=initial.clone()).tokens
        expected = reference_tokens(trained, noise, state, schedule, initial, stabilization=STABILIZATION)
    assert torch.allclose(fast, expected, atol=1e-5), (fast - expected).abs().max()
    assert not torch.allclose(fast, initial)  # the plan was actually denoised


@pytest.mark.parametrize("name, steps, uncertainty", [("pyramid", 3, 1.0), ("trapezoid", 3, 1.0)])
def test_model_gradient_guidance_gives_the_reference_plan(point_model, name, steps, uncertainty):
    trained = point_model
    noise = ExactAtStabilization(trained.schedule)
    schedule = build_schedule(name, HORIZON, steps, noise.num_levels, uncertainty)
    initial, start, state = setup(trained)
    objective = objective_for(trained, start)
    guided = sample_tokens(trained.model, noise, state, schedule, ModelGradientGuidance(objective, 2.0), STABILIZATION, initial=initial.clone()).tokens
    expected = reference_tokens(trained, noise, state, schedule, initial, objective, 2.0, STABILIZATION)
    unguided = reference_tokens(trained, noise, state, schedule, initial, stabilization=STABILIZATION)
    assert torch.allclose(guided, expected, atol=1e-4), (guided - expected).abs().max()
    assert not torch.allclose(guided, unguided, atol=1e-3)  # guidance changed the plan


def tiny_row(trained, start, generator):
    noise, model = trained.schedule, trained.model
    levels = torch.tensor([[400, 600, 800]]).expand(BATCH, -1)
    x = torch.randn(BATCH, 3, trained.layout.token_dim, generator=generator)
    previous = torch.randn(BATCH, 3, trained.layout.token_dim, generator=generator)
    prefix = torch.randn(BATCH, 1, trained.layout.token_dim, generator=generator)
    state = model.advance(model.initial_state(trained.normalizer.normalize_observations(start)), prefix, torch.zeros(BATCH, 1, dtype=torch.long))
    return Row(model, noise, state, x, levels, levels - 200, x, levels, prefix, previous)


@pytest.mark.parametrize("strategy", [ModelGradientGuidance, PlanSpaceGuidance])
def test_monte_carlo_guidance_averages_the_gradient_over_renoised_copies(point_model, strategy):
    trained = point_model
    _, start, _ = setup(trained)
    row = tiny_row(trained, start, torch.Generator().manual_seed(0))
    inner = strategy(objective_for(trained, start), 1.0)
    samples = 3
    x0, gradient = MonteCarloGuidance(inner, samples).estimate(row, torch.Generator().manual_seed(7))

    # the reference: the same noise, one copy at a time, averaged by hand
    noise = torch.randn((BATCH * samples, *row.x.shape[1:]), generator=torch.Generator().manual_seed(7)).view(BATCH, samples, *row.x.shape[1:])
    grads = []
    for copy in range(samples):
        fed = row.inputs if copy == 0 else row.noise.q_sample(row.previous, row.input_levels, noise[:, copy])
        copy_x0, copy_grad = inner.estimate(Row(**{**row.__dict__, "inputs": fed}))
        grads.append(copy_grad)
        if copy == 0:
            expected_x0 = copy_x0
    torch.testing.assert_close(x0, expected_x0, atol=1e-5, rtol=1e-5)  # copy 0 unperturbed
    torch.testing.assert_close(gradient, torch.stack(grads).mean(0), atol=1e-5, rtol=1e-4)
    assert not torch.allclose(grads[0], grads[1], atol=1e-4)  # the copies really see other futures


def test_bounded_step_moves_each_token_by_its_share_of_scale_times_sigma(point_model):
    trained = point_model
    _, start, _ = setup(trained)
    row = tiny_row(trained, start, torch.Generator().manual_seed(0))
    gradient = torch.zeros_like(row.x)
    gradient[:, 0, 0], gradient[:, 1, 0], gradient[:, 2, 0] = 4.0, 1.0, 1.0  # norms 4, 1, 1: mean 2
    x0 = torch.zeros_like(row.x)
    moved = ModelGradientGuidance(None, 2.0).guide_estimate(row, x0, gradient)
    sigma = trained.schedule.coefficients(row.levels, row.x)[1][0, :, 0]
    # the largest gradient moves by exactly scale * sigma; the others by their share of the plan's mean norm
    torch.testing.assert_close(moved[0, :, 0], -2.0 * sigma * torch.tensor([1.0, 0.5, 0.5]))
    assert torch.count_nonzero(moved[..., 1:]) == 0


def test_plan_pull_steps_downhill_after_the_strategy_by_at_most_its_scale(point_model):
    trained = point_model
    _, start, _ = setup(trained)
    row = tiny_row(trained, start, torch.Generator().manual_seed(0))
    objective = objective_for(trained, start)
    pull = 0.05  # small enough for a first-order step: the cost must fall
    strategy, pulled = make_guidance("model", objective, 1.0), make_guidance("model", objective, 1.0, plan_pull=pull)
    _, gradient = strategy.estimate(row)
    before = strategy.guide_estimate(row, row.previous, gradient)
    after = pulled.guide_estimate(row, row.previous, gradient)
    assert (objective(row.whole(after)) < objective(row.whole(before))).all()  # every plan is cheaper
    sigma = trained.schedule.coefficients(row.levels, row.x)[1][..., 0]
    torch.testing.assert_close(((before - after).norm(dim=-1) / sigma).amax(dim=1), torch.full((BATCH,), pull))
    only_pull = make_guidance("model", objective, 0.0, plan_pull=2.0)
    assert isinstance(only_pull, PlanPull) and isinstance(only_pull.inner, Unguided)


def test_sampler_hands_the_initial_estimate_to_the_first_row(point_model):
    """A continued (rolling) plan's first row re-noises MCG copies from the previous estimate, not zeros."""
    trained = point_model
    initial, start, state = setup(trained)
    estimate = torch.randn_like(initial)
    seen = []

    class Spy(Unguided):
        def estimate(self, row, generator=None):
            seen.append(row.previous.clone())
            return super().estimate(row, generator)

    schedule = build_schedule("pyramid", HORIZON, 2, trained.schedule.num_levels, 1.0)
    sample_tokens(trained.model, trained.schedule, state, schedule, Spy(), 10, initial=initial, initial_estimate=estimate)
    torch.testing.assert_close(seen[0], estimate)


@pytest.mark.parametrize("needed", [1, 3])
def test_sampling_stops_once_the_needed_tokens_are_clean(point_model, needed):
    """A plan made to act stops at the first row where the executed tokens are clean: they come out as in
    the full run (same noise), with fewer network calls; the later tokens keep their latest estimate."""
    trained = point_model
    initial, start, state = setup(trained)
    schedule = build_schedule("pyramid", HORIZON, 3, trained.schedule.num_levels, 1.0)
    objective = objective_for(trained, start)
    calls = []

    class Counting(ModelGradientGuidance):
        def estimate(self, row, generator=None):
            calls.append(row.x.shape[1])
            return super().estimate(row, generator)

    def sample(**kwargs):
        calls.clear()
        out = sample_tokens(trained.model, trained.schedule, state, schedule, Counting(objective, 2.0), STABILIZATION,
                            initial=initial.clone(), generator=torch.Generator().manual_seed(1), **kwargs)
        return out, len(calls)

    (full, full_rows), (early, early_rows) = sample(), sample(needed=needed)
    first_clean_row = int(np.flatnonzero((schedule[:, :needed] == 0).all(axis=1))[0])
    assert (full_rows, early_rows) == (len(schedule) - 1, first_clean_row)
    torch.testing.assert_close(early.estimate[:, :needed], full.estimate[:, :needed])
    assert torch.isfinite(early.estimate).all() and not torch.allclose(early.estimate[:, needed:], full.estimate[:, needed:], atol=1e-4)
