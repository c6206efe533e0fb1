"""Any registered gymnasium env (here Pendulum-v1): train on a file recorded in it, evaluate with
returns only and reward guidance; the planner's facts come from the env's spaces."""

import json

import numpy as np
import pytest

from conftest import write_hdf5
from dfplanner.training.checkpoint import load_trained_model
from dfplanner.cli import main
from dfplanner.evaluation.pretrained import load_planner
from pendulum_task import ENV, recorded
from tiny_config import tiny_config


@pytest.fixture(scope="module")
def pendulum_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pendulum")
    config = folder / "tiny.toml"
    config.write_text(tiny_config(steps=30, warmup=5, batch_size=16))
    assert main(["train", "--dataset", str(recorded(folder / "pendulum.hdf5")), "--config", str(config),
                 "--out", str(folder / "run")]) == 0
    return folder / "run"


def test_training_uses_the_env_and_the_reward_channel(pendulum_run):
    model = load_trained_model(pendulum_run / "model")
    assert model.metadata["env_id"] == ENV
    assert model.layout.channels == ("action", "reward", "observation")  # envs/configs/gymnasium.toml


def test_planner_facts_come_from_the_env(pendulum_run):
    settings = load_planner(pendulum_run / "model", ENV, 3).settings
    assert settings.cost == "reward" and settings.action_mode == "diffused"
    assert settings.action_limit == 2.0  # Pendulum's torque bound, not maze2d's 1
    assert settings.guidance_scale == 0.0  # reward guidance lowered Pendulum's return: opt in (README)


@pytest.mark.parametrize("scale", ["0", "1"])
def test_eval_reports_returns_without_success(pendulum_run, tmp_path, capsys, scale):
    out = tmp_path / "eval.json"
    assert main(["eval", "--env", ENV, "--checkpoint", str(pendulum_run), "--episodes", "2", "--batch-size", "2",
                 "--guidance-scale", scale, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["env"] == ENV and result["max_episode_steps"] == 200
    assert result["success_rate"] is None and result["first_reach_mean"] is None
    assert all(set(episode) == {"return", "normalized_score"} for episode in result["per_episode"])
    again = tmp_path / "again.json"
    assert main(["eval", "--env", ENV, "--checkpoint", str(pendulum_run), "--episodes", "2", "--batch-size", "2",
                 "--guidance-scale", scale, "--json", str(again)]) == 0  # the same seed: the same episodes, to the bit
    assert [e["return"] for e in json.loads(again.read_text())["per_episode"]] == [e["return"] for e in result["per_episode"]]
    assert result["planner"]["cost"] == "reward" and result["planner"]["guidance_scale"] == float(scale)
    assert "success rate      none: the env has no goal" in capsys.readouterr().out


def test_random_policy_runs_any_registered_env(tmp_path):
    out = tmp_path / "random.json"
    assert main(["eval", "--env", ENV, "--policy", "random", "--episodes", "3", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["episodes"] == 3 and result["return_mean"] < -300  # random torques do not swing it up


USER_ERRORS = {
    "no oracle": (["eval", "--env", ENV, "--policy", "oracle"], "there is no oracle for Pendulum-v1"),
    "no goal": (["eval", "--env", ENV, "--multi-goal", "--policy", "random"], "Pendulum-v1 has no goal"),
    "unregistered": (["eval", "--env", "Nowhere-v0"], "unknown environment 'Nowhere-v0'.*registered gymnasium id"),
    "no data made": (["train", "--env", ENV], "dfplan makes no data for Pendulum-v1; give --dataset"),
    "image observations": (["eval", "--env", "CarRacing-v3", "--policy", "random"], "needs a flat Box observation space|could not make"),
}


@pytest.mark.parametrize("case", list(USER_ERRORS))
def test_user_errors(case, capsys):
    args, message = USER_ERRORS[case]
    assert main(args) == 2
    error = capsys.readouterr().err
    assert len(error.strip().splitlines()) == 1
    assert __import__("re").search(message, error), error


def test_a_file_with_other_widths_is_refused_before_training(tmp_path):
    arrays = {"observations": np.zeros((40, 4)), "actions": np.zeros((40, 1)), "rewards": np.zeros(40), "terminals": np.zeros(40, bool)}
    path = write_hdf5(tmp_path / "wide.hdf5", arrays)
    assert main(["train", "--env", ENV, "--dataset", str(path), "--out", str(tmp_path / "run")]) == 2
    assert not (tmp_path / "run").exists()


def test_actions_beyond_the_envs_bound_are_refused(tmp_path, capsys):
    path = recorded(tmp_path / "strong.hdf5", episodes=1, noise=0.0, env_id=None)
    import h5py

    with h5py.File(path, "r+") as file:
        file["actions"][0] = [3.0]
    assert main(["train", "--env", ENV, "--dataset", str(path), "--out", str(tmp_path / "run")]) == 2
    assert "'actions' has values outside [-2, 2], the action space of Pendulum-v1 (max |a| = 3)" in capsys.readouterr().err
