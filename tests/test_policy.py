"""load_policy: the README's plain gymnasium loop, single and vector envs, goals per episode, autoreset."""

import functools
import re
from pathlib import Path

import gymnasium
import numpy as np
import pytest

import dfplanner
from dfplanner.envs.layouts import MAZES
from dfplanner.errors import DfplannerError

README = Path(__file__).parents[1] / "README.md"
FAST = {"candidates": 2, "device": "cpu"}  # the shipped settings use 8 candidates; 2 keep the tests quick


@pytest.fixture(scope="module")
def umaze_policy():
    return dfplanner.load_policy("maze2d-umaze", **FAST)


def test_readme_example_runs(monkeypatch):
    """The README's policy example, verbatim except shorter loops and episodes (so autoreset happens)
    and fewer candidate plans."""
    code = re.search(r"<!-- policy-example.*?```python\n(.*?)```", README.read_text(), re.S).group(1)
    shortened = code.replace("range(800)", "range(20)").replace("range(2000)", "range(25)")
    assert shortened.count("range(") == 2 and "range(800)" not in shortened and "range(2000)" not in shortened
    monkeypatch.setattr(gymnasium.registry["maze2d-large-v1"], "max_episode_steps", 12)
    monkeypatch.setattr(dfplanner, "load_policy", functools.partial(dfplanner.load_policy, **FAST), raising=False)
    namespace: dict = {}
    exec(compile(shortened, str(README), "exec"), namespace)
    policy = namespace["policy"]
    assert policy.planned_positions.shape[0] == 4 and policy.planned_positions.shape[2] == 2
    # episodes of 12 steps: the autoreset at step 12 made the batch replan at step 13, then every 10 steps
    assert policy.plan.start_step == 23


def test_single_observation_and_vector_env_batch(umaze_policy):
    env = gymnasium.make("maze2d-umaze-v1")
    obs, info = env.reset(seed=0)
    umaze_policy.reset(obs, goal=info["target"])
    action = umaze_policy(obs)
    assert action.shape == (2,) and action.dtype == np.float32 and np.all(np.abs(action) <= 1)
    assert umaze_policy.planned_positions.shape == (200, 2)

    envs = gymnasium.vector.SyncVectorEnv([lambda: gymnasium.make("maze2d-umaze-v1") for _ in range(3)])
    obs, info = envs.reset(seed=0)
    umaze_policy.reset(obs, goal=info["target"])
    for step in range(12):
        actions = umaze_policy(obs)
        assert actions.shape == (3, 2) and np.all(np.abs(actions) <= 1)
        obs, *_ = envs.step(actions)
        assert umaze_policy.planned_positions.shape == (3, 200 - step % 10, 2)
    assert umaze_policy.plan.start_step == 10


def test_the_goal_of_each_episode_steers_the_plan(umaze_policy):
    """From the top-right corner, one goal lies left along the top row, the other down the right column."""
    umaze_policy.planner.generator.manual_seed(0)  # the same draws however the tests before used the policy
    env = gymnasium.make("maze2d-umaze-v1")
    goals = np.array([[1.0, 1.0], [3.0, 3.0]])
    heading = []
    for goal in goals:
        obs, _ = env.reset(seed=0, options={"start": [1.0, 3.0]})
        umaze_policy.reset(obs, goal=goal)
        umaze_policy(obs)
        heading.append(umaze_policy.planned_positions[:100].mean(0))
    distances = np.linalg.norm(np.array(heading)[:, None] - goals[None], axis=-1)  # [plan, goal]
    assert distances[0, 0] < distances[1, 0] and distances[1, 1] < distances[0, 1]


def test_autoreset_restarts_only_the_masked_environments(umaze_policy):
    planner = umaze_policy.planner
    obs = np.array([[3.0, 1.0, 0, 0], [1.0, 3.0, 0, 0]], np.float32)
    umaze_policy.reset(obs, goal=[[1.0, 1.0], [3.0, 3.0]])
    for _ in range(13):
        umaze_policy(obs)
    umaze_policy.reset(obs, goal=[[3.0, 3.0], [2.0, 3.0]], mask=np.array([False, True]))
    assert planner.goal.tolist() == [[1.0, 1.0], [2.0, 3.0]]
    assert planner._episode_step.tolist() == [13, 0]
    umaze_policy(obs)
    assert umaze_policy.plan.start_step == 13  # the whole batch replans at once, mid-token
    with pytest.raises(DfplannerError, match=r"reset mask has shape \(3,\)"):
        umaze_policy.reset(obs, mask=np.ones(3, bool))


def test_without_reset_the_first_call_aims_for_the_maze_target():
    policy = dfplanner.load_policy("maze2d-umaze-v1", **FAST)
    policy(np.array([3.0, 1.0, 0.0, 0.0], np.float32))
    assert policy.planner.goal.tolist() == [MAZES["maze2d-umaze-v1"].goal.tolist()]
    with pytest.raises(DfplannerError, match="neither a maze .* nor a checkpoint path"):
        dfplanner.load_policy("maze2d-huge")


def test_shipped_umaze_policy_reaches_the_goal_in_a_gymnasium_loop():
    policy = dfplanner.load_policy("maze2d-umaze", device="cpu")
    env = gymnasium.make("maze2d-umaze-v1")
    obs, info = env.reset(seed=0, options={"start": [3.0, 1.0]})  # the far end of the U
    policy.reset(obs, goal=info["target"])
    rewards = []
    for _ in range(150):
        obs, reward, *_ = env.step(policy(obs))
        rewards.append(reward)
    assert sum(rewards) > 0


def test_reset_without_arguments_starts_a_new_episode_at_the_next_call(umaze_policy):
    """The usual agent API: reset() between episodes, the next observation starts the new one."""
    obs = np.array([3.0, 1.0, 0.0, 0.0], np.float32)
    umaze_policy.reset(obs, goal=[3.0, 3.0])
    for _ in range(12):
        umaze_policy(obs)
    umaze_policy.reset()
    umaze_policy(obs)
    assert umaze_policy.planner._episode_step.tolist() == [1]  # a fresh episode, one action in
    assert umaze_policy.planner.goal.tolist() == [MAZES["maze2d-umaze-v1"].goal.tolist()]
    umaze_policy.reset(goal=[1.0, 3.0])
    umaze_policy(obs)
    assert umaze_policy.planner.goal.tolist() == [[1.0, 3.0]] and umaze_policy.plan.start_step == 0
