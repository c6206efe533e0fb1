import time

import numpy as np
import pytest

import dfplanner
from conftest import d4rl_arrays, write_hdf5
from dfplanner.envs import pos_to_cell
from dfplanner.envs.maze2d import Maze2dEnv
from dfplanner.errors import DfplannerError

N = 50


def test_real_d4rl_file_with_extra_keys_and_no_timeouts(tmp_path):
    arrays = d4rl_arrays()
    extra = {"infos/action_log_probs": np.zeros(N), "metadata/algorithm": np.bytes_(b"expert"), "infos/goal": np.ones((N, 2))}
    data = dfplanner.load_dataset(write_hdf5(tmp_path / "maze2d-medium-sparse-v1.hdf5", arrays | extra))
    for key in ("observations", "actions", "rewards"):
        np.testing.assert_array_equal(getattr(data, key), arrays[key])
        assert getattr(data, key).dtype == np.float32
    np.testing.assert_array_equal(data.episode_ends, [10, 30, N])
    np.testing.assert_array_equal(data.goals, np.ones((N, 2)))
    assert data.env_id == "maze2d-medium-v1" and data.num_episodes == 3 and len(data) == N


def test_episode_ends_from_timeouts_or_terminals(tmp_path):
    timeouts = np.zeros(N, dtype=bool)
    timeouts[[19, N - 1]] = True
    data = dfplanner.load_dataset(write_hdf5(tmp_path / "d.hdf5", d4rl_arrays() | {"timeouts": timeouts}))
    np.testing.assert_array_equal(data.episode_ends, [10, 20, 30, N])
    assert data.goals is None and data.env_id == ""


def corrupt(arrays, key, value):
    return arrays | {key: value}


BAD_ARRAYS = {
    "missing key": (lambda a: {k: v for k, v in a.items() if k != "actions"}, "missing key 'actions'"),
    "wrong shape": (lambda a: corrupt(a, "rewards", np.zeros((N, 2))), "'rewards' has shape"),
    "1-d observations": (lambda a: corrupt(a, "observations", np.zeros(N)), "'observations' has shape"),
    "length mismatch": (lambda a: corrupt(a, "actions", a["actions"][:-1]), "'actions' has 49 rows"),
    "terminals length": (lambda a: corrupt(a, "terminals", a["terminals"][:-1]), "'terminals' has shape"),
    "nan": (lambda a: corrupt(a, "observations", np.where(np.arange(N)[:, None] == 7, np.nan, a["observations"])),
            "'observations' has NaN or inf .*row 7"),
    "inf": (lambda a: corrupt(a, "rewards", np.full(N, np.inf)), "'rewards' has NaN or inf"),
    "action range": (lambda a: corrupt(a, "actions", a["actions"] * 1.5), "'actions' has values outside"),
    "empty": (lambda a: {k: v[:0] for k, v in a.items()}, "'observations' is empty"),
}


@pytest.mark.parametrize("case", list(BAD_ARRAYS))
def test_bad_arrays_name_file_and_key(tmp_path, case):
    make, message = BAD_ARRAYS[case]
    path = write_hdf5(tmp_path / "bad.hdf5", make(d4rl_arrays()), env_id="maze2d-umaze-v1")
    with pytest.raises(DfplannerError, match=f"{path}: .*{message}"):
        dfplanner.load_dataset(path)


def test_actions_within_float_tolerance_are_accepted(tmp_path):
    arrays = d4rl_arrays()
    arrays["actions"][0, 0] = 1.0 + 1e-7
    assert len(dfplanner.load_dataset(write_hdf5(tmp_path / "ok.hdf5", arrays, env_id="maze2d-umaze-v1"))) == N


def test_action_range_is_the_recorded_envs(tmp_path):
    """Pendulum's torques reach 2: fine for a file recorded there, an error for one recorded in a maze."""
    arrays = d4rl_arrays() | {"actions": np.full((N, 1), 2.0)}
    assert len(dfplanner.load_dataset(write_hdf5(tmp_path / "pendulum.hdf5", arrays, env_id="Pendulum-v1"))) == N
    arrays = d4rl_arrays() | {"actions": np.full((N, 1), 2.5)}
    with pytest.raises(DfplannerError, match=r"outside \[-2, 2\], the action space of Pendulum-v1 \(max \|a\| = 2.5\)"):
        dfplanner.load_dataset(write_hdf5(tmp_path / "too-strong.hdf5", arrays, env_id="Pendulum-v1"))


def test_truncated_and_corrupted_files(tmp_path):
    good = write_hdf5(tmp_path / "good.hdf5", {k: np.repeat(v, 100, axis=0) for k, v in d4rl_arrays().items()})
    content = good.read_bytes()
    truncated = tmp_path / "truncated.hdf5"
    truncated.write_bytes(content[: len(content) // 2])
    corrupted = tmp_path / "corrupted.hdf5"
    corrupted.write_bytes(content[:8] + bytes(range(256)) * 4 + content[8 + 1024 :])
    for path in (truncated, corrupted):
        with pytest.raises(DfplannerError, match=f"{path}: (unreadable|not an HDF5)"):
            dfplanner.load_dataset(path)


def test_missing_sources_fail_fast_and_clearly(tmp_path):
    with pytest.raises(DfplannerError, match="nope.hdf5: no such file"):
        dfplanner.load_dataset(tmp_path / "nope.hdf5")
    with pytest.raises(DfplannerError, match="not a Minari dataset"):
        dfplanner.load_dataset(tmp_path)
    with pytest.raises(DfplannerError, match="dfplan data generate --env maze2d-large"):
        dfplanner.load_dataset("maze2d-large")
    start = time.perf_counter()
    with pytest.raises(DfplannerError, match="minari:D4RL/pointmaze/large-v2: not found locally"):
        dfplanner.load_dataset("minari:D4RL/pointmaze/large-v2")
    assert time.perf_counter() - start < 5  # offline: no download attempt


def test_d4rl_source_needs_the_d4rl_package():
    try:
        import d4rl  # noqa: F401
    except Exception:
        with pytest.raises(DfplannerError, match="d4rl:maze2d-large-v1 needs the d4rl package"):
            dfplanner.load_dataset("d4rl:maze2d-large-v1")
    else:
        pytest.skip("d4rl imports here")


@pytest.mark.filterwarnings("ignore:`eval_env` is set to None")
def test_gymnasium_robotics_pointmaze_minari_dataset_is_converted_to_d4rl_frame(gymnasium_robotics):
    """A dataset shaped like D4RL/pointmaze/*-v2 (dict observations, N + 1 per episode), recorded in the real env."""
    import gymnasium as gym
    import minari
    from minari.data_collector import EpisodeBuffer

    env = gym.make("PointMaze_UMaze-v3", continuing_task=True, reset_target=False, max_episode_steps=1000)
    rng = np.random.default_rng(0)
    buffers, lengths = [], [40, 25]
    for seed, length in enumerate(lengths):
        obs, _ = env.reset(seed=seed)
        observations, actions, rewards = [obs], [], []
        for _ in range(length):
            action = rng.uniform(-1, 1, 2).astype(np.float32)
            obs, reward, *_ = env.step(action)
            observations.append(obs)
            actions.append(action)
            rewards.append(reward)
        buffers.append(EpisodeBuffer(
            observations={key: np.array([o[key] for o in observations]) for key in observations[0]},
            actions=np.array(actions), rewards=np.array(rewards),
            terminations=np.zeros(length, dtype=bool), truncations=np.arange(length) == length - 1,
        ))
    minari.create_dataset_from_buffers("test/pointmaze-umaze-v0", buffers, env=env, algorithm_name="random",
                                       author="test", author_email="t@t", code_permalink="-", description="-")
    data = dfplanner.load_dataset("minari:test/pointmaze-umaze-v0")
    assert data.env_id == "maze2d-umaze-v1"
    np.testing.assert_array_equal(data.episode_ends, np.cumsum(lengths))
    assert data.observations.shape == (sum(lengths), 4) and data.goals.shape == (sum(lengths), 2)
    np.testing.assert_array_equal(data.rewards, np.concatenate([b.rewards for b in buffers]))
    walls = Maze2dEnv("maze2d-umaze").maze.walls
    assert not walls[tuple(pos_to_cell(data.goals).T)].any()
    assert not walls[tuple(pos_to_cell(data.observations[:, :2]).T)].any()
    ours = Maze2dEnv("maze2d-umaze")
    for t in range(lengths[0] - 1):  # converted transitions obey our dynamics
        ours.data.qpos[:], ours.data.qvel[:] = data.observations[t, :2], data.observations[t, 2:]
        next_obs, *_ = ours.step(data.actions[t])
        np.testing.assert_allclose(next_obs, data.observations[t + 1], atol=1e-4)
