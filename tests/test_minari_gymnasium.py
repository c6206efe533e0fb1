"""A Minari dataset of a goal-free MuJoCo env (HalfCheetah-v5, recorded with minari.DataCollector):
trained with the reward channel, evaluated on the env the dataset recovers, on that env's returns."""

import json
import warnings

import gymnasium as gym
import numpy as np
import pytest

from dfplanner.cli import main
from dfplanner.envs.minari import FAMILY
from dfplanner.training.checkpoint import load_trained_model
from tiny_config import tiny_config

DATASET = "halfcheetah/test-v0"
EPISODE_STEPS = 40  # the recorded env's own limit, which the recovered env keeps


@pytest.fixture
def recorded():
    pytest.importorskip("jax")  # minari.DataCollector needs minari[create]
    import minari

    env = minari.DataCollector(gym.make("HalfCheetah-v5", max_episode_steps=EPISODE_STEPS))
    rng = np.random.default_rng(0)
    for episode in range(6):
        env.reset(seed=episode)
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, 6).astype(np.float32))
            done = terminated or truncated
    with warnings.catch_warnings():  # minari warns about optional metadata left empty
        warnings.simplefilter("ignore")
        return env.create_dataset(dataset_id=DATASET, algorithm_name="uniform random", author="test", author_email="t@t",
                                  code_permalink="-", description="-")


def test_eval_runs_on_the_recovered_env_and_reports_its_returns(recorded, tmp_path):
    config, out, result_path = tmp_path / "tiny.toml", tmp_path / "run", tmp_path / "eval.json"
    config.write_text(tiny_config(warmup=2, batch_size=8))
    assert main(["train", "--dataset", f"minari:{DATASET}", "--config", str(config), "--steps", "5", "--out", str(out)]) == 0
    model = load_trained_model(out / "model")
    assert model.metadata["env_id"] == "HalfCheetah-v5" and "reward" in model.layout.channels  # envs/configs/gymnasium.toml
    assert main(["eval", "--env", f"minari:{DATASET}", "--checkpoint", str(out / "model"), "--episodes", "2",
                 "--guidance-scale", "1", "--json", str(result_path)]) == 0
    result = json.loads(result_path.read_text())
    assert result["success_rate"] is None and result["env"] == f"minari:{DATASET}"
    assert result["max_episode_steps"] == EPISODE_STEPS  # the recovered env's limit: gym's HalfCheetah-v5 has 1,000
    env = FAMILY.eval_task(f"minari:{DATASET}").make_env()
    assert env.spec.id == "HalfCheetah-v5" and env.spec.max_episode_steps == EPISODE_STEPS
    returns = [episode["return"] for episode in result["per_episode"]]
    assert all(np.isfinite(returns)) and returns[0] != returns[1]  # episodes seeded apart
    scores = [episode["normalized_score"] for episode in result["per_episode"]]  # D4RL's references for halfcheetah
    np.testing.assert_allclose(scores, 100 * (np.array(returns) + 280.178953) / (12135.0 + 280.178953))

def test_goal_options_are_refused_with_the_reason(recorded, capsys):
    assert main(["eval", "--env", f"minari:{DATASET}", "--multi-goal", "--episodes", "1"]) == 2
    assert "HalfCheetah-v5 has no goal" in capsys.readouterr().err
