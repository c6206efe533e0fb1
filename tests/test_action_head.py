"""Action heads: inverse dynamics and goal-conditioned BC fitted on the data with hindsight targets; the
planner acting through the inverse head; the BC baseline on the CLI; heads saved beside a checkpoint."""

import copy
import json

import numpy as np
import pytest

from dfplanner.cli import main
from dfplanner.errors import DfplannerError
from dfplanner.planning.action_head import HeadSpec, fit_action_head, hindsight_pairs
from dfplanner.planning.planner import DiffusionForcingPlanner
from dfplanner.planning.settings import PlannerSettings
from dfplanner.training.checkpoint import head_path, load_trained_model, save_head
from point_task import DAMPING, GAIN, point_step, random_walks

POINT = {"position_dims": (0, 1), "velocity_dims": (2, 3)}
GOAL = np.array([1.5, 1.5], np.float32)


@pytest.fixture(scope="module")
def walks():
    return random_walks(episodes=200, seed=1)


@pytest.fixture(scope="module")
def inverse_head(walks):
    return fit_action_head(walks, HeadSpec("inverse", (0, 1, 2, 3), 1, 1, hidden=64, layers=2), steps=800, batch_size=256, progress=False)


def test_hindsight_targets_stay_in_their_episode(walks):
    spec = HeadSpec("bc", (0, 1), 5, 40)
    obs, targets, actions = hindsight_pairs(walks, spec, 5000, np.random.default_rng(0))
    assert obs.shape == (5000, 4) and targets.shape == (5000, 2) and actions.shape == (5000, 2)
    rows = {tuple(o): i for i, o in enumerate(walks.observations)}
    starts = np.array([rows[tuple(o)] for o in obs[:200]])
    episode = starts // 60
    later = [np.flatnonzero((walks.observations[:, :2] == t).all(axis=1)) for t in targets[:200]]
    assert all(any(j // 60 == e and j > s for j in js) for js, e, s in zip(later, episode, starts))


def test_inverse_head_learns_the_dynamics(walks, inverse_head):
    """The point's action is (v' - 0.9 v) / 0.1 (unclipped); the head recovers it from (o, o')."""
    rng = np.random.default_rng(5)
    position, velocity = rng.uniform(-2, 2, (500, 2)), rng.normal(0, 0.2, (500, 2))
    action = rng.uniform(-0.9, 0.9, (500, 2))
    next_position, next_velocity = point_step(position, velocity, action)
    obs = np.c_[position, velocity].astype(np.float32)
    predicted = inverse_head.act(obs, np.c_[next_position, next_velocity].astype(np.float32))
    error = np.mean((predicted - action) ** 2)
    assert error < 0.1 * np.var(action)
    assert np.allclose((next_velocity - DAMPING * velocity) / GAIN, action)  # the law it learned


def test_planner_acts_through_the_inverse_head(point_model, inverse_head):
    model = copy.copy(point_model)
    model.heads = {"inverse": inverse_head}
    settings = PlannerSettings(horizon=10, sampling_steps=10, uncertainty=1.0, replan_every=4, guidance="model",
                               guidance_scale=1.0, hold_radius=0.0, action_mode="inverse", **POINT)
    planner = DiffusionForcingPlanner(model, settings, device="cpu")
    rng = np.random.default_rng(0)
    obs = np.c_[rng.uniform(-2, -1, (16, 2)), np.zeros((16, 2))].astype(np.float32)
    planner.reset(obs, GOAL)
    start = np.linalg.norm(obs[:, :2] - GOAL, axis=-1).mean()
    for _ in range(40):
        action = planner.act(obs)
        expected = inverse_head.act(obs, planner.history.plan["observation"][np.arange(16), planner.history.episode_step - 1 - planner.history.plan_start])
        np.testing.assert_allclose(action, np.clip(expected, -1, 1), atol=1e-5)
        position, velocity = point_step(obs[:, :2], obs[:, 2:], action)
        obs = np.c_[position, velocity].astype(np.float32)
    assert np.linalg.norm(obs[:, :2] - GOAL, axis=-1).mean() < 0.5 * start
    with pytest.raises(DfplannerError, match="aims 6 steps ahead, outside the 1..1"):
        DiffusionForcingPlanner(model, PlannerSettings.from_dict({**settings.to_dict(), "track_ahead": 5}), device="cpu")
    with pytest.raises(DfplannerError, match="dfplan head train --checkpoint CHECKPOINT --kind inverse"):
        DiffusionForcingPlanner(point_model, settings, device="cpu")


def test_heads_are_saved_beside_the_checkpoint_with_their_digest(tmp_path, point_model, inverse_head):
    point_model.save(tmp_path / "model")
    save_head(tmp_path / "model.json", inverse_head)
    loaded = load_trained_model(tmp_path / "model.json")
    obs = np.zeros((3, 4), np.float32)
    np.testing.assert_allclose(loaded.heads["inverse"].act(obs, obs + 0.1), inverse_head.act(obs, obs + 0.1))
    assert json.loads((tmp_path / "model.json").read_text())["heads"]["inverse"]["ahead_min"] == 1
    point_model.save(tmp_path / "model")  # a training run saving again: the head fitted beside it stays
    assert "inverse" in load_trained_model(tmp_path / "model.json").heads
    path = head_path(tmp_path / "model.json", "inverse")
    path.write_bytes(path.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(DfplannerError, match="model.inverse.safetensors: sha256 differs"):
        load_trained_model(tmp_path / "model.json")


def test_bc_baseline_runs_on_the_shipped_checkpoint_s_routes(tmp_path, capsys):
    """`dfplan head train --kind bc` on a copy of a shipped checkpoint, then `eval --policy bc`: the
    behaviour-cloning head aimed at the routes' subgoals reaches umaze's goal."""
    import shutil

    from dfplanner.evaluation.pretrained import shipped_checkpoint
    from dfplanner.planning.routes import routes_path
    from dfplanner.planning.settings import settings_for

    shipped = shipped_checkpoint("maze2d-umaze-v1")
    for source, name in ((shipped, "ckpt.json"), (shipped.with_suffix(".safetensors"), "ckpt.safetensors"),
                         (routes_path(shipped), "ckpt.routes.safetensors")):
        shutil.copy(source, tmp_path / name)
    assert main(["data", "generate", "--env", "maze2d-umaze", "--steps", "100000", "--out", str(tmp_path / "data.hdf5")]) == 0
    assert main(["head", "train", "--checkpoint", str(tmp_path / "ckpt.json"), "--kind", "bc", "--steps", "800",
                 "--dataset", str(tmp_path / "data.hdf5")]) == 0
    out = tmp_path / "bc.json"
    assert main(["eval", "--env", "maze2d-umaze", "--policy", "bc", "--checkpoint", str(tmp_path / "ckpt.json"),
                 "--episodes", "10", "--batch-size", "10", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["success_rate"] >= 0.8
    assert result["bc"]["route_lookahead"] == settings_for(json.loads(shipped.read_text())).route_lookahead  # the planner's subgoals
    ckpt = ["--policy", "bc", "--checkpoint", str(tmp_path / "ckpt.json"), "--episodes", "1", "--json", str(out)]
    assert main(["eval", "--env", "maze2d-umaze", *ckpt, "--route-lookahead", "10"]) == 0  # its own subgoals
    assert json.loads(out.read_text())["bc"]["route_lookahead"] == 10
    assert main(["eval", "--env", "maze2d-umaze", *ckpt, "--horizon", "3"]) == 2  # a plan's setting: bc has no plan
    assert "--policy bc does not use --horizon" in capsys.readouterr().err
    assert main(["eval", "--env", "maze2d-umaze", *ckpt, "--route-traffic", "1"]) == 2  # routes made before links were counted
    assert "route_traffic must be 0" in capsys.readouterr().err
    assert main(["eval", "--env", "maze2d-umaze", "--policy", "bc", "--episodes", "1"]) == 2  # the shipped one has no bc head
    assert "dfplan head train --checkpoint CHECKPOINT --kind bc" in capsys.readouterr().err


def test_bc_refuses_a_checkpoint_of_another_env(capsys):
    """As the planner does: the shipped umaze checkpoint is not medium's."""
    from dfplanner.evaluation.pretrained import shipped_checkpoint

    args = ["eval", "--env", "maze2d-medium", "--policy", "bc", "--checkpoint", str(shipped_checkpoint("maze2d-umaze-v1")), "--episodes", "1"]
    assert main(args) == 2 and "checkpoint was trained for maze2d-umaze-v1, not maze2d-medium-v1" in capsys.readouterr().err
