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
FAST = {"device": "cpu"}


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
    # episodes of 12 steps: each environment's new episode (reset after call 13) planned at its steps 0 and 10
    assert (policy.plan.start_step == 10).all()


def test_single_observation_and_vector_env_batch(umaze_policy):
    env = gymnasium.make("maze2d-umaze-v1")
    obs, info = env.reset(seed=0)
    umaze_policy.reset(obs, goal=info["target"])
    action = umaze_policy(obs)
    assert action.shape == (2,) and action.dtype == np.float32 and np.all(np.abs(action) <= 1)
    steps = umaze_policy.planner.settings.horizon * umaze_policy.planner.trained.layout.frame_stack
    assert umaze_policy.planned_positions.shape == (steps, 2)

    envs = gymnasium.vector.SyncVectorEnv([lambda: gymnasium.make("maze2d-umaze-v1") for _ in range(3)])
    obs, info = envs.reset(seed=0)
    umaze_policy.reset(obs, goal=info["target"])
    for step in range(12):
        actions = umaze_policy(obs)
        assert actions.shape == (3, 2) and np.all(np.abs(actions) <= 1)
        obs, *_ = envs.step(actions)
        assert umaze_policy.planned_positions.shape == (3, steps - step % 10, 2)
    assert (umaze_policy.plan.start_step == 10).all()


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


def autoreset_run(policy, reset_second: bool) -> np.ndarray:
    """Actions of two environments over 20 steps; optionally the second one restarts after step 13."""
    policy.planner.generator.manual_seed(0)
    obs = np.array([[3.0, 1.0, 0, 0], [1.0, 3.0, 0, 0]], np.float32)
    policy.reset(obs, goal=[[1.0, 1.0], [3.0, 3.0]])
    actions = []
    for step in range(20):
        if step == 13 and reset_second:
            policy.reset(obs, goal=[[3.0, 3.0], [2.0, 3.0]], mask=np.array([False, True]))
        actions.append(policy(obs))
        obs = obs + np.c_[0.01 * actions[-1], np.zeros((2, 2))].astype(np.float32)
    return np.array(actions)


def test_autoreset_restarts_only_the_masked_environments(umaze_policy):
    planner = umaze_policy.planner
    plain = autoreset_run(umaze_policy, reset_second=False)
    restarted = autoreset_run(umaze_policy, reset_second=True)
    assert planner.goal.tolist() == [[1.0, 1.0], [2.0, 3.0]]
    assert planner.history.episode_step.tolist() == [20, 7]
    assert planner.last_plan.start_step.tolist() == [10, 0]  # the restarted env planned at once, the other did not
    # the other environment goes on exactly as without the reset until its own next plan (step 20)
    np.testing.assert_array_equal(restarted[:, 0], plain[:, 0])
    assert not np.allclose(restarted[13:, 1], plain[13:, 1])
    with pytest.raises(DfplannerError, match=r"reset mask has shape \(3,\)"):
        umaze_policy.reset(np.zeros((2, 4), np.float32), mask=np.ones(3, bool))


def test_without_reset_the_first_call_aims_for_the_maze_target():
    policy = dfplanner.load_policy("maze2d-umaze-v1", **FAST)
    policy(np.array([3.0, 1.0, 0.0, 0.0], np.float32))
    assert policy.planner.goal.tolist() == [MAZES["maze2d-umaze-v1"].goal.tolist()]
    with pytest.raises(DfplannerError, match="neither an env with a shipped checkpoint .* nor a checkpoint path"):
        dfplanner.load_policy("maze2d-huge")


def test_every_shipped_name_the_cli_takes_loads_as_a_policy():
    """The names `dfplan eval --env` plans with load here too (OGBench's dataset names among them), and
    a policy knows its episode length from its family."""
    policy = dfplanner.load_policy("pointmaze-medium-navigate-v0", **FAST)
    assert policy.default_goal is None and policy.planner.settings.episode_steps == 1000
    policy.reset(np.array([0.0, 0.0], np.float32), goal=np.array([8.0, 8.0]))
    assert policy(np.array([0.0, 0.0], np.float32)).shape == (2,)


def test_shipped_umaze_policy_reaches_the_goal_in_a_gymnasium_loop():
    policy = dfplanner.load_policy("maze2d-umaze", device="cpu")
    env = gymnasium.make("maze2d-umaze-v1")
    obs, info = env.reset(seed=0, options={"start": [3.0, 1.0]})  # the far end of the U
    policy.reset(obs, goal=info["target"])
    rewards = []
    for _ in range(env.spec.max_episode_steps):  # one episode
        obs, reward, *_ = env.step(policy(obs))
        rewards.append(reward)
    arrival = int(np.argmax(rewards))
    assert sum(rewards) > 0 and all(rewards[arrival:])  # it reaches the goal and stays there


def test_reset_without_arguments_starts_a_new_episode_at_the_next_call(umaze_policy):
    """The usual agent API: reset() between episodes, the next observation starts the new one."""
    obs = np.array([3.0, 1.0, 0.0, 0.0], np.float32)
    umaze_policy.reset(obs, goal=[3.0, 3.0])
    for _ in range(12):
        umaze_policy(obs)
    umaze_policy.reset()
    umaze_policy(obs)
    assert umaze_policy.planner.history.episode_step.tolist() == [1]  # a fresh episode, one action in
    assert umaze_policy.planner.goal.tolist() == [MAZES["maze2d-umaze-v1"].goal.tolist()]
    umaze_policy.reset(goal=[1.0, 3.0])
    umaze_policy(obs)
    assert umaze_policy.planner.goal.tolist() == [[1.0, 3.0]] and umaze_policy.plan.start_step == 0


@pytest.mark.parametrize("goal, message", [
    (np.zeros(3), r"goal has shape \(3,\); expected \(2,\) or \(1, 2\)"),
    (np.zeros((2, 2, 2)), r"goal has shape \(2, 2, 2\)"),
    (np.array([np.nan, 1.0]), "goal contains NaN or inf"),
    ("far away", "goal must be numbers"),
])
def test_a_goal_of_the_wrong_size_is_refused_at_reset(umaze_policy, goal, message):
    """At reset, with a message about the goal itself (a 3-D goal on a 2-D maze failed one call later,
    as a numpy broadcast error)."""
    with pytest.raises(DfplannerError, match=message):
        umaze_policy.reset(np.array([3.0, 1.0, 0.0, 0.0], np.float32), goal=goal)
