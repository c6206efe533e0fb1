"""gymnasium-robotics PointMaze through Minari: record with minari.DataCollector, train, evaluate on the recovered env."""

import json
import warnings

import numpy as np
import pytest

import dfplanner
from dfplanner.training.checkpoint import load_trained_model
from dfplanner.cli import main
from dfplanner.envs.layouts import MAZES
from dfplanner.envs.minari import FAMILY
from dfplanner.envs.pointmaze import PointMazeFrame, PointMazeInD4rlFrame
from dfplanner.evaluation.rollout import episode_seed
from tiny_config import tiny_config

DATASET = "pointmaze/test-v0"
EPISODE_STEPS = 300
TINY = tiny_config(warmup=5, batch_size=16, save_every=50)


@pytest.fixture
def recorded(gymnasium_robotics):
    """3000 steps of a noisy PD controller towards desired_goal in PointMaze_Large-v3, with resets."""
    pytest.importorskip("jax")  # minari.DataCollector needs minari[create]
    import gymnasium as gym
    import minari

    env = minari.DataCollector(gym.make("PointMaze_Large-v3", continuing_task=True, max_episode_steps=EPISODE_STEPS))
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    for _ in range(3000):
        toward = obs["desired_goal"] - obs["observation"][:2]
        action = 2.0 * toward - 0.5 * obs["observation"][2:] + rng.normal(0.0, 0.5, 2)
        obs, _, terminated, truncated, _ = env.step(np.clip(action, -1, 1).astype(np.float32))
        if terminated or truncated:
            obs, _ = env.reset()
    with warnings.catch_warnings():  # minari warns about optional metadata left empty
        warnings.simplefilter("ignore")
        return env.create_dataset(dataset_id=DATASET, algorithm_name="noisy PD", author="test", author_email="t@t",
                                  code_permalink="-", description="-")


def test_loader_keeps_the_episodes_and_maps_the_frame(recorded):
    data = dfplanner.load_dataset(f"minari:{DATASET}")
    episodes = list(recorded.iterate_episodes())
    frame = PointMazeFrame(9, 12)  # maze2d-large: 9 rows, 12 columns
    assert data.env_id == "maze2d-large-v1" and not data.continuous  # the collector reset between episodes
    np.testing.assert_array_equal(data.episode_ends, np.cumsum([len(ep.actions) for ep in episodes]))
    assert data.episode_ends[-1] == 3000 and len(episodes) == 3000 // EPISODE_STEPS
    gym_obs = np.concatenate([ep.observations["observation"][:-1] for ep in episodes])
    np.testing.assert_allclose(data.observations, frame.state(gym_obs), atol=1e-6)
    np.testing.assert_allclose(data.actions, frame.action(np.concatenate([ep.actions for ep in episodes])), atol=1e-7)
    np.testing.assert_array_equal(data.rewards, np.concatenate([ep.rewards for ep in episodes]))


def test_recovered_env_in_d4rl_frame(recorded):
    raw = recorded.recover_environment()
    wrapped = PointMazeInD4rlFrame(recorded.recover_environment(), MAZES["maze2d-large-v1"])
    frame = PointMazeFrame(9, 12)
    gym_obs, _ = raw.reset(seed=3)
    obs, info = wrapped.reset(seed=3)
    np.testing.assert_allclose(obs, frame.state(gym_obs["observation"][None])[0], atol=1e-6)
    np.testing.assert_allclose(info["target"], frame.position(gym_obs["desired_goal"][None])[0])
    action = np.array([0.3, -0.8])
    gym_obs, gym_reward, *_ = raw.step(frame.gym_action(action[None])[0])
    obs, reward, _, _, info = wrapped.step(action)
    np.testing.assert_allclose(obs, frame.state(gym_obs["observation"][None])[0], atol=1e-6)
    assert reward == gym_reward and "success" in info


def test_train_and_eval_on_the_recovered_env(recorded, tmp_path):
    config, out = tmp_path / "tiny.toml", tmp_path / "run"
    config.write_text(TINY)
    assert main(["train", "--dataset", f"minari:{DATASET}", "--config", str(config), "--steps", "50", "--out", str(out)]) == 0
    model = load_trained_model(out / "model")
    assert model.metadata["env_id"] == "maze2d-large-v1" and model.metadata["dataset"] == f"minari:{DATASET}"
    result_path = tmp_path / "eval.json"
    assert main(["eval", "--env", f"minari:{DATASET}", "--checkpoint", str(out / "model"), "--episodes", "2",
                 "--json", str(result_path)]) == 0
    result = json.loads(result_path.read_text())
    assert result["env"] == f"minari:{DATASET}" and result["max_episode_steps"] == EPISODE_STEPS
    assert result["normalized_score_mean"] is None  # no D4RL normalization outside maze2d's own envs
    env = FAMILY.eval_task(f"minari:{DATASET}").make_env()  # the episodes are the recovered env's own, seeded per episode
    for i, episode in enumerate(result["per_episode"]):
        observation, info = env.reset(seed=episode_seed(0, i))
        np.testing.assert_allclose(episode["start"], observation[:2], atol=1e-6)
        np.testing.assert_allclose(episode["target"], info["target"], atol=1e-6)
    again = tmp_path / "again.json"
    assert main(["eval", "--env", f"minari:{DATASET}", "--checkpoint", str(out / "model"), "--episodes", "2", "--json", str(again)]) == 0
    assert [e["return"] for e in json.loads(again.read_text())["per_episode"]] == [e["return"] for e in result["per_episode"]]


def test_oracle_reaches_pointmaze_goals_through_the_frame_mapping(recorded, tmp_path):
    out = tmp_path / "oracle.json"
    assert main(["eval", "--env", f"minari:{DATASET}", "--policy", "oracle", "--episodes", "4", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["success_rate"] == 1.0


def test_run_folder_named_after_the_dataset(recorded, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.toml").write_text(TINY)
    assert main(["train", "--dataset", f"minari:{DATASET}", "--config", "tiny.toml", "--steps", "2"]) == 0
    assert (tmp_path / "runs" / "pointmaze-test-v0" / "model.json").is_file()


@pytest.mark.parametrize("args, message", [
    (["eval", "--env", "minari:pointmaze/missing-v0", "--episodes", "1"], "not found locally"),
    (["eval", "--env", f"minari:{DATASET}", "--multi-goal", "--episodes", "1"], "draws its own goal"),
    (["train"], "give --env"),
    (["train", "--env", "maze2d-umaze", "--dataset", f"minari:{DATASET}"], "recorded in maze2d-large-v1, not maze2d-umaze-v1"),
])
def test_user_errors(recorded, args, message, capsys):
    assert main(args) == 2
    assert message in capsys.readouterr().err
