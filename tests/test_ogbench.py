"""OGBench PointMaze: the data recipe and its npz format, loading, and OGBench's evaluation protocol."""

import json
import pickle

import gymnasium
import numpy as np
import pytest

import dfplanner
from conftest import run_cli
from dfplanner.envs import ogbench as og
from dfplanner.errors import DfplannerError
from dfplanner.evaluation.rollout import RandomPolicy, eval_task, evaluate
from dfplanner.data.ogbench_npz import DEFAULT_DATA_DIR, data_dir, write_npz
from dfplanner.data.ogbench_recipe import default_path, generate, vertex_cells
from dfplanner.data.tokens import Normalizer, TokenLayout
from dfplanner.data.windows import WindowSampler

ogbench = pytest.importorskip("ogbench")
FILE_KEYS = {"observations": np.float32, "actions": np.float32, "terminals": np.bool_, "qpos": np.float32, "qvel": np.float32}
NAVIGATE_EPISODES, STITCH_EPISODES = 10, 30


@pytest.fixture(autouse=True)
def ogbench_data(tmp_path, monkeypatch):
    """Never read or write the user's OGBench folder."""
    monkeypatch.setenv("OGBENCH_DATA", str(tmp_path / "ogbench"))
    return tmp_path / "ogbench"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("og")
    navigate = generate("pointmaze-medium-navigate-v0", og.FAMILY.walker(), episodes=NAVIGATE_EPISODES, out=folder / "pointmaze-medium-navigate-v0.npz", progress=False)
    stitch = generate("pointmaze-large-stitch-v0", og.FAMILY.walker(), episodes=STITCH_EPISODES, out=folder / "pointmaze-large-stitch-v0.npz", progress=False)
    return navigate, stitch


def test_recipe_sizes_and_names_are_ogbench_s():
    """commands.sh: navigate 1000 x 1001 steps (giant 500 x 2001), stitch 5000 x 201; OGBench's file names."""
    sizes = {name: (og.dataset_spec(name).episodes, og.dataset_spec(name).episode_steps) for name in
             ("pointmaze-medium-navigate-v0", "pointmaze-giant-navigate-v0", "pointmaze-giant-stitch-v0")}
    assert sizes == {"pointmaze-medium-navigate-v0": (1000, 1001), "pointmaze-giant-navigate-v0": (500, 2001),
                     "pointmaze-giant-stitch-v0": (5000, 201)}
    assert default_path("pointmaze-giant-navigate-v0", 500, 0) == data_dir() / "pointmaze-giant-navigate-v0.npz"
    assert default_path("pointmaze-giant-navigate-v0", 7, 0).name == "pointmaze-giant-navigate-v0-7episodes-seed0.npz"
    assert DEFAULT_DATA_DIR == ogbench.utils.DEFAULT_DATASET_DIR


@pytest.mark.parametrize("which", [0, 1])
def test_generated_files_are_ogbench_s_format_and_load_in_both_loaders(files, which):
    info = files[which]
    spec = og.dataset_spec(info["env"])
    for path, episodes in ((info["path"], info["episodes"]), (info["val_path"], info["episodes"] // 10)):
        with np.load(path, allow_pickle=False) as archive:
            assert {key: archive[key].dtype for key in archive.files} == FILE_KEYS
            arrays = {key: archive[key] for key in archive.files}
        n = episodes * spec.episode_steps
        assert all(len(array) == n for array in arrays.values()) and arrays["observations"].shape == (n, 2)
        ends = np.flatnonzero(arrays["terminals"]) + 1
        np.testing.assert_array_equal(ends, np.arange(1, episodes + 1) * spec.episode_steps)
        np.testing.assert_array_equal(arrays["qpos"], arrays["observations"])  # the state before each step
        assert np.abs(arrays["actions"]).max() <= 1.0
        theirs = ogbench.utils.load_dataset(path)  # next_observations: a shift within episodes
        assert len(theirs["observations"]) == n - episodes
        ours = dfplanner.load_dataset(path)
        np.testing.assert_array_equal(ours.episode_ends, ends)
        assert not ours.continuous and ours.env_id == spec.name and ours.goals is None
        inside = np.ones(n, dtype=bool)
        inside[ends - 1] = False  # the rows whose successor is in the same episode: OGBench's transitions
        np.testing.assert_array_equal(ours.observations[inside], theirs["observations"])
        np.testing.assert_array_equal(ours.observations[np.roll(inside, 1)], theirs["next_observations"])
        np.testing.assert_array_equal(ours.actions[inside], theirs["actions"])


def test_vertex_cells_exclude_straight_hallways():
    maze_map = og.make_env("pointmaze-medium-v0").unwrapped.maze_map
    vertex = vertex_cells(maze_map)
    assert (1, 1) in vertex and (3, 3) not in vertex  # a corner; a left-right corridor cell
    assert len(vertex) < (maze_map == 0).sum()


def test_navigate_follows_the_oracle_and_stitch_ends_four_cells_away(files):
    navigate = np.load(files[0]["path"])
    obs, actions = navigate["observations"].reshape(NAVIGATE_EPISODES, -1, 2), navigate["actions"].reshape(NAVIGATE_EPISODES, -1, 2)
    free_moves = np.linalg.norm(obs[:, 1:] - obs[:, :-1] - 0.2 * actions[:, :-1], axis=-1) < 1e-4  # qpos += 0.2 a
    assert free_moves.mean() > 0.5
    env = og.make_env("pointmaze-large-v0").unwrapped
    stitch = np.load(files[1]["path"])["observations"].reshape(STITCH_EPISODES, -1, 2)
    distances = [env.get_oracle_subgoal(start, start)[1][env.xy_to_ij(end)] for start, end in zip(stitch[:, 0], stitch[:, -1])]
    assert np.mean(np.array(distances) == 4) > 0.8  # 201 steps reach a goal 4 cells away despite N(0, 0.5) noise


def test_same_seed_same_file(tmp_path):
    paths = [generate("pointmaze-large-stitch-v0", og.FAMILY.walker(), episodes=10, seed=seed, out=tmp_path / f"{i}.npz", progress=False)["path"]
             for i, seed in enumerate((0, 0, 1))]
    first, second, third = (np.load(path)["observations"] for path in paths)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, third)


def test_windows_never_cross_episodes(tmp_path):
    episodes, length = 4, 30
    observations = np.repeat(np.arange(episodes, dtype=np.float32), length)[:, None].repeat(2, axis=1)  # x = episode
    terminals = np.zeros(episodes * length, dtype=bool)
    terminals[length - 1 :: length] = True
    write_npz(tmp_path / "d.npz", {"observations": observations, "actions": np.zeros_like(observations), "terminals": terminals})
    data = dfplanner.load_dataset(tmp_path / "d.npz")
    np.testing.assert_array_equal(data.episode_ends, [30, 60, 90, 120])
    layout = TokenLayout(obs_dim=2, act_dim=2, frame_stack=2, channels=("observation",), observation_deltas=False)
    identity = Normalizer(np.zeros(2, np.float32), np.ones(2, np.float32), np.zeros(2, np.float32), np.ones(2, np.float32))
    sampler = WindowSampler(data.observations, data.actions, data.rewards, data.episode_ends, layout, tokens=20,
                            normalizer=identity, cross_episodes=data.continuous)  # training: config flag AND continuous
    batch = sampler.batch(sampler.starts)
    start_episode = batch.observations[:, 0].numpy()
    window_episode = batch.tokens.numpy().reshape(len(sampler.starts), 20, 2, 2)[..., 0]
    mask = batch.mask.numpy()
    assert mask.any(axis=1).all() and not mask.all()
    assert (window_episode[mask] == np.broadcast_to(start_episode[:, None, None], window_episode.shape)[mask]).all()


def test_ogbench_id_is_looked_up_locally_never_downloaded(files, ogbench_data):
    with pytest.raises(DfplannerError, match="never downloaded"):
        dfplanner.load_dataset("ogbench:pointmaze-medium-navigate-v0")
    ogbench_data.mkdir()
    (ogbench_data / "pointmaze-medium-navigate-v0.npz").write_bytes(open(files[0]["path"], "rb").read())
    data = dfplanner.load_dataset("ogbench:pointmaze-medium-navigate-v0")
    assert data.env_id == "pointmaze-medium-navigate-v0" and data.num_episodes == NAVIGATE_EPISODES


def _good(n=20):
    terminals = np.zeros(n, dtype=bool)
    terminals[[9, n - 1]] = True
    return {"observations": np.zeros((n, 2), np.float32), "actions": np.zeros((n, 2), np.float32), "terminals": terminals}


BAD_FILES = {
    "missing key": (lambda p: np.savez(p, **{k: v for k, v in _good().items() if k != "actions"}), "missing key 'actions'"),
    "wrong shape": (lambda p: np.savez(p, **_good() | {"actions": np.zeros(20, np.float32)}), "'actions' has shape"),
    "length mismatch": (lambda p: np.savez(p, **_good() | {"terminals": _good()["terminals"][:-1]}), "'terminals' has shape"),
    "wrong dtype": (lambda p: np.savez(p, **_good() | {"terminals": _good()["terminals"].astype(np.float32)}), "'terminals' has dtype float32"),
    "float64": (lambda p: np.savez(p, **_good() | {"observations": np.zeros((20, 2))}), "'observations' has dtype float64"),
    "not an npz": (lambda p: p.write_text("observations,actions\n1,2\n"), "not a readable npz"),
    "a pickle inside": (lambda p: np.savez(p, **_good() | {"actions": np.array([{"evil": 1}] * 20, dtype=object)}), "key 'actions' unreadable"),
    "a pickle file": (lambda p: p.write_bytes(pickle.dumps(_good())), "not a readable npz"),
    "truncated": (lambda p: (np.savez_compressed(p, **_good()), p.write_bytes(p.read_bytes()[:300])), "not a readable npz|unreadable"),
    "cut mid-episode": (lambda p: np.savez(p, **{k: v[:15] for k, v in _good().items()}), "'terminals' does not end an episode"),
    "single array": (lambda p: p.write_bytes(_npy_bytes()), "not an npz archive"),
}


def _npy_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.zeros(3))
    return buffer.getvalue()


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_files_are_one_line_errors_naming_file_and_key(tmp_path, case):
    make, message = BAD_FILES[case]
    path = tmp_path / "bad.npz"
    with open(path, "wb"):
        pass
    make(path)
    with pytest.raises(DfplannerError, match=message) as error:
        dfplanner.load_dataset(path)
    assert str(error.value).startswith(f"{path}: ") and "\n" not in str(error.value)


def test_evaluation_spreads_episodes_over_the_five_tasks():
    env = og.make_env("pointmaze-medium-v0").unwrapped
    result = evaluate("pointmaze-medium-navigate-v0", og.OraclePolicy("pointmaze-medium-v0"), episodes=10, seed=3,
                      batch_size=4, progress=False)
    assert result["max_episode_steps"] == 1000 and result["success_rate"] == 1.0
    assert result["per_task"] == {str(k): {"episodes": 2, "success_rate": 1.0} for k in range(1, 6)}
    for i, episode in enumerate(result["per_episode"]):
        task = env.task_infos[i % 5]
        assert episode["task_id"] == i % 5 + 1
        assert np.abs(np.subtract(episode["start"], task["init_xy"])).max() <= 1.0  # OGBench's start/goal noise
        assert np.abs(np.subtract(episode["target"], task["goal_xy"])).max() <= 1.0
        assert episode["first_reach"] < 1000  # terminated at the goal
    again = evaluate("pointmaze-medium-navigate-v0", og.OraclePolicy("pointmaze-medium-v0"), episodes=10, seed=3,
                     batch_size=10, progress=False)
    assert [e["start"] for e in again["per_episode"]] == [e["start"] for e in result["per_episode"]]


def test_per_task_success_rates_are_per_task():
    task_two_goal = np.array(og.make_env("pointmaze-large-v0").unwrapped.task_infos[1]["goal_xy"])

    class OnlyTaskTwo(og.OraclePolicy):
        """The oracle when the goal is task 2's, standing still otherwise."""

        def act(self, observations):
            on_task_two = np.abs(self.targets - task_two_goal).max(axis=1) <= 1.0
            return super().act(observations) * on_task_two[:, None]

    result = evaluate("pointmaze-large-stitch-v0", OnlyTaskTwo("pointmaze-large-v0"), episodes=5, progress=False)
    assert result["per_task"]["2"] == {"episodes": 1, "success_rate": 1.0}
    assert all(result["per_task"][k]["success_rate"] == 0.0 for k in "1345") and result["success_rate"] == 0.2


def test_one_task_and_bad_task_ids():
    task = eval_task("pointmaze-giant-navigate-v0", task=3)
    assert [task.reset_options(i) for i in range(3)] == [{"task_id": 3}] * 3 and task.steps == 1000
    for bad, message in [(("pointmaze-giant-navigate-v0", False, 6), "--task must be in 1..5"),
                         (("maze2d-large", False, 2), "--task K picks one of OGBench"),
                         (("pointmaze-medium-v0", True, None), "--multi-goal is for maze2d"),
                         (("pointmaze-huge-navigate-v0", False, None), "unknown OGBench name")]:
        with pytest.raises(DfplannerError, match=message):
            eval_task(*bad)


def test_random_policy_runs_the_protocol():
    result = evaluate("pointmaze-medium-v0", RandomPolicy(gymnasium.spaces.Box(-1.0, 1.0, (2,)), 0), episodes=5, progress=False)
    assert set(result["per_task"]) == {"1", "2", "3", "4", "5"} and result["success_rate"] == 0.0


def test_cli_eval_one_task_json_and_planner_without_checkpoint(tmp_path):
    out = tmp_path / "r.json"
    ran = run_cli("eval", "--env", "pointmaze-large-navigate-v0", "--policy", "oracle", "--episodes", "3", "--task", "2", "--json", str(out))
    assert ran.returncode == 0, ran.stderr
    result = json.loads(out.read_text())
    assert result["per_task"] == {"2": {"episodes": 3, "success_rate": 1.0}} and "per task" in ran.stdout
    ran = run_cli("eval", "--env", "pointmaze-medium-v0", "--policy", "planner")  # the env alone: no dataset, no checkpoint
    assert ran.returncode == 2 and ran.stderr.count("\n") == 1 and "no shipped checkpoint for pointmaze-medium-v0" in ran.stderr


def test_cli_generate_writes_ogbench_s_file_names(ogbench_data):
    ran = run_cli("data", "generate", "--env", "pointmaze-medium-stitch-v0", "--episodes", "10")  # OGBENCH_DATA: the fixture's
    assert ran.returncode == 0, ran.stderr
    assert sorted(p.name for p in ogbench_data.iterdir()) == ["pointmaze-medium-stitch-v0-10episodes-seed0-val.npz",
                                                              "pointmaze-medium-stitch-v0-10episodes-seed0.npz"]
    ran = run_cli("data", "generate", "--env", "pointmaze-medium-stitch-v0", "--out", str(ogbench_data / "x.hdf5"))
    assert ran.returncode == 2 and "end in .npz" in ran.stderr


@pytest.mark.slow
def test_train_from_an_ogbench_id_then_plan_its_tasks(files, ogbench_data, tmp_path, monkeypatch):
    """`dfplan train --dataset ogbench:NAME` names its run folder after NAME and trains with the pointmaze
    family config; the checkpoint then plans OGBench's tasks with the family's facts (kinematic point)."""
    from dfplanner.training.checkpoint import load_trained_model
    from dfplanner.cli import main

    ogbench_data.mkdir()
    (ogbench_data / "pointmaze-medium-navigate-v0.npz").write_bytes(open(files[0]["path"], "rb").read())
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--dataset", "ogbench:pointmaze-medium-navigate-v0", "--steps", "5", "--batch-size", "4"]) == 0
    model = load_trained_model(tmp_path / "runs" / "pointmaze-medium-navigate-v0" / "model")
    assert model.metadata["env_id"] == "pointmaze-medium-navigate-v0" and model.layout.frame_stack == 10  # envs/configs/pointmaze.toml
    out = tmp_path / "eval.json"
    assert main(["eval", "--env", "pointmaze-medium-navigate-v0", "--checkpoint", "runs/pointmaze-medium-navigate-v0",
                 "--episodes", "2", "--task", "3", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["per_task"]) == {"3"} and result["planner"]["pd_gains"] == [5.0, 0.0]


def test_eval_plot_draws_ogbench_s_maze(tmp_path):
    """--plot draws OGBench's maze in its own frame: the oracle's paths stay off the wall cells."""
    from PIL import Image

    from dfplanner.cli import main

    png = tmp_path / "giant.png"
    assert main(["eval", "--env", "pointmaze-giant-navigate-v0", "--policy", "oracle", "--episodes", "2", "--plot", str(png)]) == 0
    with Image.open(png) as image:
        assert image.format == "PNG"
    layout = og.FAMILY.layout("pointmaze-giant-navigate-v0")
    assert layout.walls.shape == (12, 16) and layout.cell == 4.0
    free = np.argwhere(~layout.walls)[0]
    centre = np.array(layout.origin) + layout.cell * free[::-1]  # (across, down) of a free cell's centre = its (x, y)
    env = og.make_env("pointmaze-giant-v0").unwrapped
    np.testing.assert_allclose(centre, env.ij_to_xy(tuple(free)))
