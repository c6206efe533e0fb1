import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import dfplanner  # noqa: F401  (registers the environments)
from dfplanner.envs import MAZES, maze_spec, pos_to_cell, resolve_env_id
from dfplanner.envs.maze2d import Maze2dEnv
from dfplanner.errors import DfplannerError

ENV_IDS = ["maze2d-umaze-v1", "maze2d-medium-v1", "maze2d-large-v1"]


@pytest.mark.filterwarnings("ignore:.*infinity")  # D4RL's observations are unbounded
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env_passes(env_id):
    check_env(gym.make(env_id).unwrapped, skip_render_check=True)


@pytest.mark.parametrize("env_id, steps", list(zip(ENV_IDS, [300, 600, 800])))
def test_registered_episode_length_and_no_termination(env_id, steps):
    env = gym.make(env_id)
    assert env.spec.max_episode_steps == steps == env.unwrapped.max_episode_steps
    env.reset(seed=0)
    for t in range(steps):
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        assert not terminated
        assert truncated == (t == steps - 1)
        assert set(info) >= {"target", "success"}


def test_reset_follows_d4rl():
    env = Maze2dEnv("maze2d-large")
    maze = env.maze
    cells = {tuple(c) for c in maze.free_cells}
    assert maze.goal_cell in cells and len(cells) == (~maze.walls).sum()
    starts, speeds = [], []
    for seed in range(300):
        obs, info = env.reset(seed=seed)
        assert obs.dtype == np.float32 and obs.shape == (4,)
        np.testing.assert_array_equal(info["target"], [7.0, 9.0])  # the 'G' cell exactly
        cell = np.round(obs[:2])
        assert tuple(cell.astype(int)) in cells and np.abs(obs[:2] - cell).max() <= 0.1 + 1e-6
        starts.append(tuple(cell.astype(int)))
        speeds.append(obs[2:])
    assert len(set(starts)) > 0.8 * len(cells)  # uniform over free cells + goal
    assert 0.07 < np.std(speeds) < 0.13  # N(0, 0.1)


def test_multi_goal_target_is_a_random_free_cell_with_noise():
    env = Maze2dEnv("maze2d-medium", multi_goal=True)
    targets = np.array([env.reset(seed=seed)[1]["target"] for seed in range(100)])
    offsets = targets - np.round(targets)
    assert np.abs(offsets).max() <= 0.1 and np.abs(offsets).max() > 0.05
    assert not env.maze.walls[tuple(np.round(targets).astype(int).T)].any()
    assert len(np.unique(np.round(targets), axis=0)) > 10


def test_same_seed_same_episode():
    def rollout(seed):
        env = Maze2dEnv("maze2d-umaze", multi_goal=True)
        obs, info = env.reset(seed=seed)
        rng = np.random.default_rng(0)
        return np.concatenate([obs, info["target"], *[env.step(rng.uniform(-1, 1, 2))[0] for _ in range(50)]])

    np.testing.assert_array_equal(rollout(3), rollout(3))
    assert not np.array_equal(rollout(3), rollout(4))


def test_sparse_reward_after_the_step_within_half_a_unit():
    env = Maze2dEnv("maze2d-umaze")
    for distance, reward in [(0.49, 1.0), (0.51, 0.0)]:
        env.reset(seed=0, options={"start": [1.0, 1.0 + distance]})
        _, r, _, _, info = env.step(np.zeros(2))  # at rest, no force: the particle stays put
        assert r == reward and info["success"] == bool(reward)


def test_explicit_start_and_target_options():
    env = Maze2dEnv("maze2d-large")
    obs, info = env.reset(seed=0, options={"start": [3.05, 2.0], "target": [1.0, 10.0]})
    np.testing.assert_allclose(obs, [3.05, 2.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_array_equal(info["target"], [1.0, 10.0])
    for bad in ([0.0, 0.0], [np.nan, 1.0], [1.0, 2.0, 3.0], [50.0, 50.0]):
        with pytest.raises(DfplannerError, match="start"):
            env.reset(options={"start": bad})


def test_qpos_of_a_cell_lies_in_that_cell_and_walls_stop_the_particle():
    # umaze row 1 = "#GOO#": cell (1, 2) has walls at (0, 2) above and (2, 2) below. In D4RL's frame the
    # particle (radius 0.1) in cell r moves within qpos x in [r - 0.6, r + 0.2].
    env = Maze2dEnv("maze2d-umaze")
    for push, stop in [(-1.0, 0.4), (1.0, 1.2)]:
        env.reset(options={"start": [1.0, 2.0]})
        for _ in range(200):
            obs, *_ = env.step(np.array([push, 0.0]))
        assert obs[0] == pytest.approx(stop, abs=0.01)
        np.testing.assert_array_equal(pos_to_cell(obs[:2]), [1, 2])


def test_velocity_is_clipped_before_each_step():
    env = Maze2dEnv("maze2d-large")
    env.reset(options={"start": [3.0, 1.0]})
    env.data.qvel[:] = [0.0, 50.0]
    obs, *_ = env.step(np.zeros(2))
    assert obs[3] <= 5.0 and obs[1] - 1.0 <= 0.05 + 1e-6


def test_names_and_normalized_scores():
    assert resolve_env_id("maze2d-large") == resolve_env_id("maze2d-large-v1") == "maze2d-large-v1"
    with pytest.raises(DfplannerError, match="maze2d-umaze.*maze2d-medium.*maze2d-large"):
        resolve_env_id("maze2d-huge")
    for env_id, (low, high) in zip(ENV_IDS, [(23.85, 161.86), (13.13, 277.39), (6.7, 273.99)]):
        assert maze_spec(env_id).get_normalized_score(low) == pytest.approx(0.0)
        assert Maze2dEnv(env_id).get_normalized_score(high) == pytest.approx(100.0)
    assert maze_spec("maze2d-medium").goal_cell == (6, 6) and len(MAZES) == 3


def test_dynamics_match_gymnasium_robotics(gymnasium_robotics):
    """Same state, same action: gymnasium-robotics PointMaze gives the same next state in its own frame.

    The frames map as gym_x = y + 0.7 - W/2, gym_y = H/2 - 0.7 - x, gym_action = (a_y, -a_x). The states
    are re-synchronised before each step: open loop, wall contacts amplify float round-off (a 1e-15
    nudge grows to ~1e-4 over 1000 steps), which would test chaos, not the physics.
    """
    for ours, theirs in [("maze2d-umaze", "PointMaze_UMaze-v3"), ("maze2d-medium", "PointMaze_Medium-v3"),
                         ("maze2d-large", "PointMaze_Large-v3")]:
        env = Maze2dEnv(ours)
        env.reset(seed=0)
        point = gym.make(theirs, continuing_task=True).unwrapped.point_env
        rows, cols = env.maze.walls.shape

        def to_gym(q, v):
            return np.array([q[1] + 0.7 - cols / 2, rows / 2 - 0.7 - q[0]]), np.array([v[1], -v[0]])

        rng = np.random.default_rng(0)
        wall_steps, error = 0, 0.0
        for _ in range(1000):
            action = rng.uniform(-1.2, 1.2, 2)  # beyond the bounds: both must clip
            point.set_state(*to_gym(env.data.qpos, env.data.qvel))
            env.step(action)
            point.step(np.array([action[1], -action[0]]))
            position, velocity = to_gym(env.data.qpos, env.data.qvel)
            error = max(error, np.abs(position - point.data.qpos).max(), np.abs(velocity - point.data.qvel).max())
            wall_steps += env.data.ncon > 1  # the particle always touches the ground plane
        assert error < 1e-9
        assert wall_steps > 20  # the comparison covered wall contacts


def test_rgb_array_frames_show_walls_target_and_particle():
    from dfplanner.envs.maze2d import COLORS, PIXELS_PER_CELL

    env = gym.make("maze2d-umaze-v1", render_mode="rgb_array")
    env.reset(seed=0, options={"start": [3.0, 1.0], "target": [1.0, 3.0]})
    frame = env.render()
    walls = MAZES["maze2d-umaze-v1"].walls
    assert frame.shape == (walls.shape[0] * PIXELS_PER_CELL, walls.shape[1] * PIXELS_PER_CELL, 3) and frame.dtype == np.uint8
    colors = {name: (frame == color).all(-1) for name, color in COLORS.items()}
    assert colors["wall"].mean() == pytest.approx(walls.mean(), abs=0.02)
    particle_rows, particle_cols = np.nonzero(colors["particle"])
    assert pos_to_cell(np.array([3.0, 1.0])).tolist() == [particle_rows.mean() // PIXELS_PER_CELL, particle_cols.mean() // PIXELS_PER_CELL]
    target_rows, target_cols = np.nonzero(colors["target"])
    assert pos_to_cell(np.array([1.0, 3.0])).tolist() == [target_rows.mean() // PIXELS_PER_CELL, target_cols.mean() // PIXELS_PER_CELL]
    assert Maze2dEnv("maze2d-umaze").render() is None
    with pytest.raises(DfplannerError, match="render_mode 'human' is not supported"):
        Maze2dEnv("maze2d-umaze", render_mode="human")
