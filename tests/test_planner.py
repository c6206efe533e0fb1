import copy

import numpy as np
import pytest
import torch

from dfplanner.errors import DfplannerError
from dfplanner.planning.costs import GoalDistance
from dfplanner.planning.planner import DiffusionForcingPlanner
from dfplanner.planning.settings import PlannerSettings
from point_task import GAIN, point_step

GOAL = np.array([1.5, 1.5], np.float32)


def starts(n=32, seed=1):
    rng = np.random.default_rng(seed)
    return np.c_[rng.uniform(-1, 1, (n, 2)), np.zeros((n, 2))].astype(np.float32)


POINT = {"position_dims": (0, 1), "velocity_dims": (2, 3)}


def make_planner(model, scale=1.0, samples=1, **settings):
    settings = {"horizon": 10, "sampling_steps": 10, "uncertainty": 1.0, "replan_every": 4, "guidance": "model",
                "guidance_scale": scale, "mcg_samples": samples, "hold_radius": 0.0, **POINT, **settings}
    return DiffusionForcingPlanner(model, PlannerSettings.from_dict(settings), device="cpu")


def mean_goal_distance(planner, seeds=(0, 1, 2)):
    """The guidance objective: distance to the goal averaged over planned steps, plans and seeds."""
    distances = []
    for seed in seeds:
        planner.generator.manual_seed(seed)
        planner.reset(starts(), GOAL)
        plan = planner.plan()
        distances.append(np.linalg.norm(plan.observations[..., :2] - GOAL, axis=-1).mean())
    return float(np.mean(distances))


@pytest.mark.parametrize("guidance, scale, ratio", [("model", 1.0, 0.5), ("plan", 3.0, 0.9), ("paper", 0.05, 0.9)])
def test_goal_guidance_brings_plans_closer(point_model, guidance, scale, ratio):
    plain = mean_goal_distance(make_planner(point_model, scale=0.0))
    guided = mean_goal_distance(make_planner(point_model, scale=scale, guidance=guidance))
    assert guided < ratio * plain


def test_plan_starts_from_the_current_state(point_model):
    planner = make_planner(point_model, scale=0.0)
    planner.reset(starts(), GOAL)
    plan = planner.plan()
    assert plan.observations.shape == (32, 40, 4) and plan.actions.shape == (32, 40, 2)
    # the first planned position is within one step from rest of the start (|a| <= 1 per axis)
    one_step = GAIN * np.sqrt(2)
    assert np.linalg.norm(plan.observations[:, 0, :2] - starts()[:, :2], axis=-1).max() < one_step


@pytest.mark.parametrize("action_mode,rolling", [("pd", False), ("diffused", False), ("pd", True)])
def test_closed_loop_reaches_towards_goal(point_model, action_mode, rolling):
    planner = make_planner(point_model, scale=1.0, samples=4, action_mode=action_mode, rolling=rolling)
    obs = starts(16)
    planner.reset(obs, GOAL)
    start_distance = np.linalg.norm(obs[:, :2] - GOAL, axis=-1).mean()
    for _ in range(40):
        action = planner.act(obs)
        assert action.shape == (16, 2) and np.all(np.abs(action) <= 1)
        position, velocity = point_step(obs[:, :2], obs[:, 2:], action)
        obs = np.c_[position, velocity].astype(np.float32)
    assert np.linalg.norm(obs[:, :2] - GOAL, axis=-1).mean() < 0.5 * start_distance


def test_single_observation_and_custom_cost(point_model):
    def stay_left(plan, goal):
        return plan["observation"][..., 0].sum(-1)

    def mean_x(cost):
        settings = PlannerSettings(horizon=5, sampling_steps=4, replan_every=4, guidance="model", guidance_scale=1.0, **POINT)
        planner = DiffusionForcingPlanner(point_model, settings, cost=cost, device="cpu")
        planner.reset(starts(1)[0])
        assert planner.act(starts(1)[0]).shape == (2,)
        return planner.last_plan.observations[0, :, 0].mean()

    assert mean_x(stay_left) < mean_x("none") - 0.2  # the custom cost steered the plan left


def test_planner_rejects_bad_inputs(point_model):
    planner = make_planner(point_model)
    with pytest.raises(DfplannerError, match="before reset"):
        planner.act(starts(1)[0])
    planner.reset(starts(4), GOAL)
    with pytest.raises(DfplannerError, match=r"shape \(4, 3\)"):
        planner.act(np.zeros((4, 3), np.float32))
    with pytest.raises(DfplannerError, match="NaN"):
        planner.act(np.full((4, 4), np.nan, np.float32))
    with pytest.raises(DfplannerError, match=r"goal has shape \(3, 2\)"):
        planner.set_goal(np.zeros((3, 2)))
    with pytest.raises(DfplannerError, match="multiple of the model's frame_stack"):
        make_planner(point_model, replan_every=3)
    if not torch.cuda.is_available():
        with pytest.raises(DfplannerError, match="no CUDA"):
            DiffusionForcingPlanner(point_model, device="cuda")


def test_non_finite_model_output_is_an_error_not_an_action(point_model):
    broken = copy.deepcopy(point_model)
    with torch.no_grad():
        broken.model.head[-1].bias.fill_(float("nan"))
    planner = make_planner(broken)
    planner.reset(starts(2), GOAL)
    with pytest.raises(DfplannerError, match="NaN or inf at sampling row 1"):
        planner.act(starts(2))


def test_best_of_candidates_keeps_the_cheapest_and_says_which(point_model):
    planner = make_planner(point_model, scale=0.0, candidates=8)
    planner.reset(starts(4), GOAL)
    estimates = []
    plan = planner.plan(on_row=lambda row, x, x0: estimates.append(x0.clone()))
    final = estimates[-1].view(4, 8, *estimates[-1].shape[1:])
    start = torch.as_tensor(starts(4)).repeat_interleave(8, 0)
    costs = GoalDistance((0, 1))(point_model.codec.decode(final.flatten(0, 1), start), torch.as_tensor(GOAL).expand(32, 2)).view(4, 8)
    np.testing.assert_array_equal(plan.kept, costs.argmin(1).numpy())
    assert len(set(plan.kept.tolist())) > 1  # not always the same slot
    kept_positions = point_model.codec.decode(final[np.arange(4), plan.kept], torch.as_tensor(starts(4)))["observation"]
    np.testing.assert_allclose(plan.observations, kept_positions.numpy(), atol=1e-6)


def test_goal_cost_counts_every_step():
    plan = {"observation": torch.tensor([[[0.0, 0.0, 0, 0], [3.0, 4.0, 0, 0]]])}
    assert GoalDistance((0, 1))(plan, torch.zeros(1, 2)).item() == pytest.approx(5.0)
    assert GoalDistance((2, 3))(plan, torch.zeros(1, 2)).item() == 0.0  # the dimensions come from the settings


def test_reward_to_go_cost_and_its_errors():
    from dfplanner.planning.costs import RewardToGo, make_cost

    assert RewardToGo()({"reward": torch.tensor([[1.0, 2.0]])}, None).item() == -3.0
    with pytest.raises(DfplannerError, match="reward channel"):
        make_cost("reward")({"observation": torch.zeros(1, 2, 4)}, None)
    with pytest.raises(DfplannerError, match="unknown guidance cost"):
        make_cost("speed")


def test_tilt_cost_is_zero_upright_grows_with_the_tilt_and_adds_to_the_goal_cost():
    from dfplanner.planning.costs import Tilt, make_cost

    def plan(angle: float, scale: float = 1.0) -> dict:  # the body rolled by `angle` about x, its quaternion scaled
        obs = torch.zeros(1, 3, 6)
        obs[..., 2], obs[..., 3] = scale * np.cos(angle / 2), scale * np.sin(angle / 2)
        return {"observation": obs}

    tilt = Tilt((2, 3, 4, 5))
    values = [tilt(plan(a), None).item() for a in (0.0, np.pi / 4, np.pi / 2, np.pi)]
    assert values[0] == pytest.approx(0.0, abs=1e-6) and values[-1] == pytest.approx(6.0)  # 3 steps, each 2 upside down
    assert values == sorted(values) and values[2] == pytest.approx(3.0)  # on its side: up axis z = 0
    assert tilt(plan(np.pi / 2, 3.0), None).item() == pytest.approx(3.0)  # a planned quaternion need not be unit
    cost = make_cost("goal", (0, 1), upright_weight=2.0, upright_dims=(2, 3, 4, 5))
    assert cost(plan(np.pi), torch.zeros(1, 2)).item() == pytest.approx(12.0)  # at the goal: only the weighted tilt
    with pytest.raises(DfplannerError, match="upright_dims"):
        make_cost("goal", (0, 1), upright_weight=1.0)


def test_set_goal_replans_at_the_next_token_towards_the_new_goal(point_model):
    planner = make_planner(point_model, scale=1.0, replan_every=40)
    obs = starts(8)
    planner.reset(obs, GOAL)
    planner.act(obs)
    planner.act(obs)
    planner.set_goal(-GOAL)
    for _ in range(2):  # finish the current token of 4 steps
        planner.act(obs)
    assert (planner.last_plan.start_step == 0).all()
    planner.act(obs)
    assert (planner.last_plan.start_step == 4).all()
    end = planner.last_plan.observations[:, -1, :2]
    assert np.linalg.norm(end + GOAL, axis=-1).mean() < np.linalg.norm(end - GOAL, axis=-1).mean()


def test_rolling_first_plan_executes_the_reference_plans_first_token(point_model):
    """On the same noise, the rolling warm-up stops at the row where token 0 is clean: up to there it
    is the reference sampler, so the executed token must be identical."""
    plans = []
    for rolling in (False, True):
        planner = make_planner(point_model, scale=1.0, rolling=rolling)
        planner.generator.manual_seed(3)
        planner.reset(starts(8), GOAL)
        plans.append(planner.plan())
    executed = point_model.layout.frame_stack
    reference, rolled = plans
    np.testing.assert_allclose(rolled.observations[:, :executed], reference.observations[:, :executed], atol=1e-6)
    np.testing.assert_allclose(rolled.actions[:, :executed], reference.actions[:, :executed], atol=1e-6)
    assert len(rolled.levels) < len(reference.levels)


def test_rolling_plans_continue_on_the_ladder(point_model):
    planner = make_planner(point_model, scale=1.0, rolling=True, horizon=6, sampling_steps=4, replan_every=point_model.layout.frame_stack)
    planner.reset(starts(4), GOAL)
    obs = starts(4)
    first = planner.plan()
    for _ in range(point_model.layout.frame_stack):
        action = planner.act(obs)
        position, velocity = point_step(obs[:, :2], obs[:, 2:], action)
        obs = np.c_[position, velocity].astype(np.float32)
    planner.act(obs)
    second = planner.last_plan
    ladder = first.levels[-1]
    assert len(second.levels) == 2  # one row per token on a pyramid
    np.testing.assert_array_equal(second.levels[0], np.r_[ladder[1:], 1000])
    np.testing.assert_array_equal(second.levels[-1], ladder)


def test_rolling_rejects_a_schedule_whose_ladder_falls(point_model):
    with pytest.raises(DfplannerError, match="rolling"):
        make_planner(point_model, rolling=True, schedule="trapezoid")


def test_goal_hold_keeps_the_plan_on_the_goal_from_its_first_arrival():
    from dfplanner.planning.goal_hold import hold_goal

    x = np.linspace(0.0, 2.0, 5)  # a plan passing through the goal at x = 1 and going on
    plan = np.stack([np.c_[x, np.zeros(5), np.ones(5), np.zeros(5)], np.c_[x, np.full(5, 3.0), np.ones(5), np.zeros(5)]]).astype(np.float32)
    held = hold_goal(plan, np.array([[1.0, 0.0], [1.0, 0.0]], np.float32), 0.3, (0, 1), (2, 3))
    np.testing.assert_array_equal(held[0, :2], plan[0, :2])  # before arrival: untouched
    np.testing.assert_array_equal(held[0, 2:], [[1.0, 0.0, 0.0, 0.0]] * 3)  # from arrival on: the goal, at rest
    np.testing.assert_array_equal(held[1], plan[1])  # a plan that never comes near the goal is left alone


def test_goal_hold_settles_the_agent_on_the_goal(point_model):
    """Without the hold the point overshoots and drifts (the data never stops); with it, it stays."""
    def final_distance(radius):
        planner = make_planner(point_model, scale=1.0, hold_radius=radius)
        obs = np.c_[np.full((8, 2), 1.2), np.zeros((8, 2))].astype(np.float32)  # starting near the goal
        planner.reset(obs, GOAL)
        for _ in range(40):
            position, velocity = point_step(obs[:, :2], obs[:, 2:], planner.act(obs))
            obs = np.c_[position, velocity].astype(np.float32)
        return np.linalg.norm(obs[:, :2] - GOAL, axis=-1).mean()

    held = final_distance(0.5)
    assert held < 0.1 and held < 0.5 * final_distance(0.0)


@pytest.mark.parametrize("ahead", [0, 6, 1000])
def test_pd_aims_track_ahead_steps_along_the_plan(point_model, ahead):
    """The PD target is the planned state `track_ahead` steps past the current one (the plan's last
    state when the plan is shorter), so the plan's later tokens decide the action too."""
    planner = make_planner(point_model, horizon=3, track_ahead=ahead)
    obs = starts(8)
    planner.reset(obs, GOAL)
    action = planner.act(obs)
    plan = planner.last_plan.observations
    target = plan[:, min(ahead, plan.shape[1] - 1)]
    kp, kd = planner.settings.pd_gains
    expected = np.clip(kp * (target[:, :2] - obs[:, :2]) + kd * (target[:, 2:] - obs[:, 2:]), -1, 1)
    np.testing.assert_allclose(action, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(plan[:, 0], plan[:, min(ahead, plan.shape[1] - 1)]) or ahead == 0


def test_track_ahead_samples_the_tokens_the_actions_aim_at(point_model):
    """A plan made to act is sampled until every token an action reads before the next plan is clean."""
    rows = []
    planner = make_planner(point_model, horizon=6, track_ahead=9, replan_every=4)  # steps 0-12 of 4-step tokens: tokens 0-3
    planner.reset(starts(4), GOAL)
    planner._plan_envs(np.arange(4), on_row=lambda row, *_: rows.append(row), needed=planner.tokens_acted_on)
    levels = planner.schedule_matrix(6)
    assert planner.tokens_acted_on == 4
    assert not levels[rows[-1], :4].any() and levels[rows[-2], :4].any()
