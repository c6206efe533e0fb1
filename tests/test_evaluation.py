import json

import gymnasium
import numpy as np
import pytest

from dfplanner.envs import maze_spec
from dfplanner.errors import DfplannerError
from dfplanner.envs.maze2d import OraclePolicy
from dfplanner.evaluation.rollout import RandomPolicy, evaluate

SUMMARY_KEYS = {
    "env", "policy", "episodes", "seed", "multi_goal", "return_mean", "return_std", "normalized_score_mean",
    "normalized_score_std", "normalized_score_sem", "success_rate", "first_reach_mean", "decisions_per_second",
    "wall_time_s", "per_episode",
}


def test_oracle_summary_is_consistent_and_json_able():
    result = evaluate("maze2d-umaze", OraclePolicy("maze2d-umaze"), episodes=6, seed=0, batch_size=4, progress=False)
    assert SUMMARY_KEYS <= set(result)
    json.dumps(result, allow_nan=False)
    episodes = result["per_episode"]
    assert len(episodes) == 6 and result["env"] == "maze2d-umaze-v1" and result["policy"] == "oracle"
    assert result["success_rate"] == 1.0
    for episode in episodes:
        assert episode["normalized_score"] == pytest.approx(maze_spec("maze2d-umaze").get_normalized_score(episode["return"]))
        # reach and stay: rewarded on every step from the first arrival to the end (300 steps)
        assert episode["return"] == 300 - episode["first_reach"] + 1
        assert episode["target"] == [1.0, 1.0]
    assert result["return_mean"] == pytest.approx(np.mean([e["return"] for e in episodes]))
    assert result["normalized_score_mean"] > 100  # far above D4RL's expert reference


def test_episodes_do_not_depend_on_batch_size():
    def run(batch_size):
        return evaluate("maze2d-medium", OraclePolicy("maze2d-medium"), episodes=5, seed=7, multi_goal=True,
                        batch_size=batch_size, progress=False)["per_episode"]

    assert run(1) == run(3)
    other_seed = evaluate("maze2d-medium", OraclePolicy("maze2d-medium"), episodes=5, seed=8, multi_goal=True,
                          progress=False)["per_episode"]
    assert [e["start"] for e in other_seed] != [e["start"] for e in run(5)]


def test_random_policy_scores_near_zero_and_trajectories_are_kept():
    result = evaluate("maze2d-large", RandomPolicy(gymnasium.spaces.Box(-1.0, 1.0, (2,)), 0), episodes=3, progress=False, trajectories=3)
    assert result["normalized_score_mean"] < 10
    xy = result["trajectories"]
    assert xy.shape == (3, 801, 2)
    np.testing.assert_allclose(xy[:, 0], [e["start"] for e in result["per_episode"]], atol=1e-6)


class BrokenPolicy:
    name = "broken"

    def __init__(self, bad_step, value):
        self.bad_step, self.value, self.t = bad_step, value, 0

    def reset(self, observations, targets):
        self.t = 0

    def act(self, observations):
        actions = np.zeros((len(observations), 2))
        if self.t == self.bad_step:
            actions[1, 0] = self.value
        self.t += 1
        return actions


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_actions_never_reach_the_env(value):
    with pytest.raises(DfplannerError, match="broken returned NaN/inf actions at step 5 of episode 1"):
        evaluate("maze2d-umaze", BrokenPolicy(5, value), episodes=2, progress=False)


def test_bad_arguments():
    oracle = OraclePolicy("maze2d-umaze")
    for kwargs, message in [({"episodes": 0}, "episodes"), ({"episodes": 1, "batch_size": 0}, "batch size"),
                            ({"episodes": 1, "seed": -1}, "seed")]:
        with pytest.raises(DfplannerError, match=message):
            evaluate("maze2d-umaze", oracle, progress=False, **kwargs)
    with pytest.raises(DfplannerError, match="unknown environment"):
        evaluate("maze2d-tiny", oracle, episodes=1, progress=False)


def test_episode_seed_gives_the_cli_s_episodes_in_one_s_own_loop():
    """`env.reset(seed=dfplanner.episode_seed(S, i))` is the start of `evaluate(..., seed=S)`'s episode i."""
    import dfplanner
    from dfplanner.envs.maze2d import Maze2dEnv

    result = evaluate("maze2d-medium", RandomPolicy(gymnasium.spaces.Box(-1.0, 1.0, (2,)), 0), episodes=3, seed=5,
                      multi_goal=True, batch_size=2, progress=False)
    env = Maze2dEnv("maze2d-medium", multi_goal=True)
    for i, episode in enumerate(result["per_episode"]):
        observation, info = env.reset(seed=dfplanner.episode_seed(5, i))
        np.testing.assert_allclose(observation[:2], episode["start"])
        np.testing.assert_allclose(info["target"], episode["target"])
    assert not np.allclose(env.reset(seed=5)[0][:2], result["per_episode"][0]["start"])
