"""OGBench AntMaze: the family's protocol and facts, the SAC expert (training, resume, export) and the
data recipe that drives it, written in OGBench's npz format."""

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from dfplanner.data.datasets import load_dataset
from dfplanner.data.ogbench_recipe import generate
from dfplanner.data.sac_expert import ExpertActor, SacRecipe, evaluate_actor, train_expert
from dfplanner.envs import antmaze, family_of, planner_facts
from dfplanner.errors import DfplannerError
from dfplanner.evaluation.rollout import RandomPolicy, eval_task, evaluate

pytest.importorskip("ogbench")
HIDDEN = 16


@pytest.fixture(autouse=True)
def ogbench_data(tmp_path, monkeypatch):
    monkeypatch.setenv("OGBENCH_DATA", str(tmp_path / "ogbench"))


@pytest.fixture
def random_expert(tmp_path, monkeypatch):
    """A small random actor in the exported format, standing in for the shipped expert."""
    rng = np.random.default_rng(0)
    sizes = [(HIDDEN, 29), (HIDDEN, HIDDEN)]
    tensors = {f"hidden.{i}.{kind}": rng.normal(0, 0.3, size if kind == "weight" else size[0]).astype(np.float32)
               for i, size in enumerate(sizes) for kind in ("weight", "bias")}
    tensors.update({"mean.weight": rng.normal(0, 0.3, (8, HIDDEN)).astype(np.float32), "mean.bias": np.zeros(8, np.float32)})
    path = tmp_path / "ant.safetensors"
    save_file(tensors, str(path))
    monkeypatch.setattr(antmaze, "expert_path", lambda: path)
    return ExpertActor(path)


def test_antmaze_names_belong_to_the_ant_family_and_run_ogbench_s_protocol():
    family = family_of("antmaze-giant-stitch-v0")
    assert family is antmaze.FAMILY and family_of("pointmaze-giant-stitch-v0") is not family
    task = eval_task("antmaze-medium-navigate-v0", task=2)
    assert task.steps == 1000 and task.obs_dim == 29 and task.spaces[1].shape == (8,)
    assert [task.reset_options(i) for i in range(2)] == [{"task_id": 2}] * 2
    facts = planner_facts("antmaze-large-navigate-v0")
    assert facts["action_mode"] == "diffused" and facts["position_dims"] == (0, 1) and facts["velocity_dims"] == (15, 16)
    assert facts["upright_dims"] == (3, 4, 5, 6)  # qpos[3:7], the torso's quaternion after its xyz
    with pytest.raises(DfplannerError, match="unknown OGBench name 'antmaze-huge-navigate-v0'"):
        eval_task("antmaze-huge-navigate-v0")


def test_random_ant_episodes_report_per_task_success_and_the_goal_xy():
    result = evaluate("antmaze-medium-navigate-v0", RandomPolicy(eval_task("antmaze-medium-navigate-v0").spaces[1]),
                      episodes=2, batch_size=2, progress=False)
    assert set(result["per_task"]) == {"1", "2"} and result["success_rate"] == 0.0
    targets = np.array([e["target"] for e in result["per_episode"]])
    assert targets.shape == (2, 2) and np.linalg.norm(targets - np.array([e["start"] for e in result["per_episode"]]), axis=1).min() > 4
    assert sum(result["failures"].values()) == 2 and all(e["failure"] in result["failures"] for e in result["per_episode"])


def test_missed_goals_are_told_apart_by_the_torso_and_the_last_steps():
    upright, upside_down = np.zeros(29), np.zeros(29)
    upright[3], upside_down[4] = 1.0, 1.0  # torso quaternions (w, x, y, z): identity, and half a turn about x
    walked = upright.copy()
    walked[:2] = [3.0, 0.0]
    kinds = antmaze.failure_kinds(np.stack([upright, upside_down, walked]), np.zeros((3, 2)))
    assert kinds == ["stuck", "overturned", "timed-out"]


def test_missing_expert_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr(antmaze, "expert_path", lambda: tmp_path / "none.safetensors")
    with pytest.raises(DfplannerError, match="dfplan expert train --env ant"):
        antmaze.FAMILY.walker()


def test_recipe_drives_the_expert_and_writes_ogbench_s_npz(tmp_path, random_expert):
    """Stitch episodes of 201 steps, OGBench's keys and dtypes, qpos/qvel before each step, terminals at
    each episode's end; the file loads as the ant dataset it names."""
    out = tmp_path / "antmaze-medium-stitch-v0.npz"
    info = generate("antmaze-medium-stitch-v0", antmaze.FAMILY.walker(), episodes=10, seed=3, out=out, progress=False)
    with np.load(out) as archive:
        arrays = {key: archive[key] for key in archive.files}
    assert {k: v.dtype for k, v in arrays.items()} == {"observations": np.float32, "actions": np.float32, "terminals": np.bool_,
                                                       "qpos": np.float32, "qvel": np.float32}
    assert arrays["observations"].shape == (2010, 29) and arrays["actions"].shape == (2010, 8) and info["val_episodes"] == 1
    assert np.flatnonzero(arrays["terminals"]).tolist() == list(range(200, 2010, 201))
    np.testing.assert_allclose(arrays["observations"], np.concatenate([arrays["qpos"], arrays["qvel"]], axis=1), atol=1e-6)
    assert np.abs(arrays["actions"]).max() <= 1.0
    dataset = load_dataset(str(out))
    assert dataset.env_id == "antmaze-medium-stitch-v0" and len(dataset.episode_ends) == 10
    import ogbench.utils  # OGBench's own loader reads the file as one of its downloads

    theirs = ogbench.utils.load_dataset(str(out))
    assert theirs["observations"].shape == (2000, 29) and theirs["next_observations"].shape == (2000, 29)
    again = generate("antmaze-medium-stitch-v0", antmaze.FAMILY.walker(), episodes=10, seed=3, out=tmp_path / "b.npz", progress=False)
    assert np.load(again["path"])["actions"].tobytes() == arrays["actions"].tobytes()


def test_ant_oracle_is_the_expert_along_the_oracle_direction(random_expert):
    """Away from the goal's cell: the expert heading for OGBench's oracle subgoal; in it: for the goal."""
    from dfplanner.envs.ogbench import Subgoals, make_env, unit

    oracle = antmaze.FAMILY.oracle("antmaze-medium-navigate-v0")
    observations = np.zeros((2, 29), np.float32)
    observations[:, :2] = [[0.0, 0.0], [7.5, 8.5]]
    goal = np.array([8.0, 8.0])
    oracle.reset(observations, np.array([goal, goal]))
    actions = oracle.act(observations)
    env = make_env("antmaze-medium-v0")
    subgoal = Subgoals(env.unwrapped)(np.zeros(2), goal)
    env.close()
    expected = random_expert(antmaze.expert_input(observations, np.stack([unit(subgoal), unit(goal - observations[1, :2])])))
    np.testing.assert_allclose(actions, expected, atol=1e-6)
    assert np.linalg.norm(subgoal - goal) > 1  # the first ant heads for a subgoal, not straight at the goal


def test_sac_expert_trains_resumes_and_exports_what_it_acts_with(tmp_path):
    """A few hundred SAC steps: the run saves resumable state, resumes to a larger step count, and the
    exported numpy actor acts as SB3's deterministic policy."""
    sb3 = pytest.importorskip("stable_baselines3")
    recipe = SacRecipe(steps=300, random_steps=100, batch_size=32, hidden=(32, 32), save_every=150, eval_episodes=1)
    actor_path = train_expert(antmaze.make_expert_env, tmp_path / "run", recipe, seed=0, progress=False)
    rows = (tmp_path / "run" / "curve.csv").read_text().splitlines()
    assert rows[0].startswith("env_steps,return") and [r.split(",")[0] for r in rows[1:]] == ["150", "300"]
    train_expert(antmaze.make_expert_env, tmp_path / "run", SacRecipe(**{**recipe.__dict__, "steps": 450}), seed=0, progress=False)
    model = sb3.SAC.load(tmp_path / "run" / "sac.zip", device="cpu")
    assert model.num_timesteps == 450 and json.loads((tmp_path / "run" / "recipe.json").read_text())["steps"] == 450
    observations = np.random.default_rng(0).normal(size=(4, 29))
    np.testing.assert_allclose(ExpertActor(actor_path)(observations), model.predict(observations, deterministic=True)[0], atol=1e-5)
    with pytest.raises(DfplannerError, match="another recipe"):
        train_expert(antmaze.make_expert_env, tmp_path / "run", SacRecipe(**{**recipe.__dict__, "batch_size": 64}), progress=False)
    scores = evaluate_actor(ExpertActor(actor_path), antmaze.make_expert_env, episodes=1, seed=0)
    assert set(scores) == {"return", "length", "speed"} and 0 < scores["length"] <= 1000
    assert evaluate_actor(ExpertActor(actor_path), antmaze.make_expert_env, episodes=1, seed=0) == scores  # directions seeded too


@pytest.mark.parametrize("name", ["antmaze-medium-navigate-v0", "antmaze-large-navigate-v0", "antmaze-giant-navigate-v0",
                                  "antmaze-medium-stitch-v0", "antmaze-large-stitch-v0",
                                  "antmaze-giant-stitch-v0"])
def test_shipped_ant_planner_walks_to_the_goal_through_its_inverse_dynamics_head(tmp_path, name):
    """`dfplan eval --env NAME` out of the box: the shipped planner's torques come from its
    inverse-dynamics head on the planned states, and the ant reaches task 5's goal (across the maze)
    in both episodes."""
    from dfplanner.cli import main

    out = tmp_path / "result.json"
    assert main(["eval", "--env", name, "--task", "5", "--episodes", "2", "--batch-size", "2", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["planner"]["action_mode"] == "inverse" and result["planner"]["route_traffic"] > 0  # lane-keeping routes
    assert result["success_rate"] == 1.0
