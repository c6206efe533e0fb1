import dataclasses

import h5py
import numpy as np
import pytest

import dfplanner
from dfplanner.envs import maze_spec
from dfplanner.errors import DfplannerError
from dfplanner.data.maze2d_recipe import collect, data_dir, default_dataset_path, generate

D4RL_DTYPES = {
    "observations": (np.float32, 4),
    "actions": (np.float32, 2),
    "rewards": (np.float32, None),
    "terminals": (np.bool_, None),
    "timeouts": (np.bool_, None),
    "infos/goal": (np.float32, 2),
    "infos/qpos": (np.float32, 2),
    "infos/qvel": (np.float32, 2),
}
STEPS = 4000


@pytest.fixture(scope="module")
def umaze_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("gen") / "umaze.hdf5"
    generate("maze2d-umaze", steps=STEPS, seed=0, out=path, progress=False)
    with h5py.File(path, "r") as file:
        return path, {key: file[key][()] for key in D4RL_DTYPES}


def test_exactly_d4rl_keys_shapes_dtypes_gzip(umaze_file):
    path, _ = umaze_file
    with h5py.File(path, "r") as file:
        datasets = {}
        file.visititems(lambda name, obj: datasets.update({name: obj}) if isinstance(obj, h5py.Dataset) else None)
        assert set(datasets) == set(D4RL_DTYPES)
        for key, (dtype, width) in D4RL_DTYPES.items():
            assert datasets[key].dtype == dtype, key
            assert datasets[key].shape == ((STEPS,) if width is None else (STEPS, width)), key
            assert datasets[key].compression == "gzip", key
    assert list(path.parent.iterdir()) == [path]  # the temporary file was renamed, nothing left over


def test_d4rl_recipe(umaze_file):
    _, data = umaze_file
    maze = maze_spec("maze2d-umaze")
    obs, goals, timeouts = data["observations"], data["infos/goal"], data["timeouts"]
    # reward[t] tests obs[t] against the fixed evaluation target (D4RL's relabelling, off by one)
    np.testing.assert_array_equal(data["rewards"], np.linalg.norm(obs[:, :2] - maze.goal, axis=1) <= 0.5)
    assert not data["terminals"].any()
    np.testing.assert_array_equal(data["infos/qpos"], obs[:, :2])
    np.testing.assert_array_equal(data["infos/qvel"], obs[:, 2:])
    assert np.abs(data["actions"]).max() <= 1.0
    # the target changes exactly after the flagged steps, each flag is an arrival or a timeout
    changed = (goals[1:] != goals[:-1]).any(axis=1)
    np.testing.assert_array_equal(changed, timeouts[:-1])
    ends = np.flatnonzero(timeouts)
    lengths = np.diff(np.concatenate([[-1], ends]))
    arrived = np.linalg.norm(obs[ends, :2] - goals[ends], axis=1) < 0.1
    assert (arrived | (lengths == maze.max_episode_steps + 1)).all() and arrived.sum() > 10
    # new targets are random free cells + U(-0.1, 0.1)
    offsets = goals - np.round(goals)
    assert np.abs(offsets).max() <= 0.1 and not maze.walls[tuple(np.round(goals).astype(int).T)].any()
    # one continuous run, never teleported: semi-implicit Euler links every consecutive pair
    np.testing.assert_allclose(obs[1:, :2], obs[:-1, :2] + 0.01 * obs[1:, 2:], atol=1e-5)


def test_target_changes_once_the_episode_length_has_passed():
    maze = dataclasses.replace(maze_spec("maze2d-large"), max_episode_steps=20)
    timeouts = collect(maze, steps=400, seed=0, progress=False)["timeouts"]
    lengths = np.diff(np.concatenate([[-1], np.flatnonzero(timeouts)]))
    assert lengths.max() == 21 and (lengths == 21).sum() > 5  # D4RL: done once `ts >= max_episode_steps`


def test_same_seed_same_data_other_seed_other_data(tmp_path, umaze_file):
    _, data = umaze_file
    generate("maze2d-umaze", steps=STEPS, seed=0, out=tmp_path / "again.hdf5", progress=False)
    generate("maze2d-umaze", steps=STEPS, seed=1, out=tmp_path / "other.hdf5", progress=False)
    with h5py.File(tmp_path / "again.hdf5") as again, h5py.File(tmp_path / "other.hdf5") as other:
        np.testing.assert_array_equal(again["observations"][()], data["observations"])
        assert not np.array_equal(other["observations"][()], data["observations"])


def test_default_paths_never_collide(tmp_path, monkeypatch):
    assert data_dir() == tmp_path / "dfplanner-data"  # set by conftest
    default = default_dataset_path("maze2d-large")
    assert default.name == "maze2d-large-sparse-v1.hdf5"
    assert default_dataset_path("maze2d-large", steps=4_000_000, seed=0) == default
    others = {default_dataset_path("maze2d-large", steps=1000), default_dataset_path("maze2d-large", seed=1)}
    assert len(others | {default}) == 3
    info = generate("maze2d-medium", steps=500, progress=False)
    assert info["path"] == str(default_dataset_path("maze2d-medium", steps=500))
    assert len(dfplanner.load_dataset(info["path"])) == 500


def test_unwritable_output_fails_before_generating(tmp_path):
    with pytest.raises(DfplannerError, match="does not exist"):
        generate("maze2d-umaze", steps=10**7, out=tmp_path / "missing" / "x.hdf5", progress=False)  # minutes, if it started
    with pytest.raises(DfplannerError, match="steps"):
        generate("maze2d-umaze", steps=0, progress=False)


def test_minari_roundtrip(tmp_path):
    import minari
    path = tmp_path / "u.hdf5"
    generate("maze2d-umaze", steps=2000, seed=3, out=path, minari_id="dfplanner/umaze-v0", progress=False)
    raw = minari.load_dataset("dfplanner/umaze-v0")
    assert raw.total_steps == 2000 and raw.spec.env_spec.id == "maze2d-umaze-v1"
    from_hdf5, from_minari = dfplanner.load_dataset(path), dfplanner.load_dataset("minari:dfplanner/umaze-v0")
    for field in ("observations", "actions", "episode_ends", "goals"):
        np.testing.assert_array_equal(getattr(from_minari, field), getattr(from_hdf5, field), err_msg=field)
    assert from_minari.env_id == from_hdf5.env_id == "maze2d-umaze-v1"
    assert from_minari.continuous  # one run: each episode starts where the last one ended
    # Minari stores the env's step reward (tests the next observation), D4RL's file the relabelled one
    np.testing.assert_array_equal(from_minari.rewards[:-1], from_hdf5.rewards[1:])
    with pytest.raises(DfplannerError, match="already exists"):
        generate("maze2d-umaze", steps=10, out=tmp_path / "v.hdf5", minari_id="dfplanner/umaze-v0", progress=False)
    with pytest.raises(DfplannerError, match="bad Minari dataset id"):
        generate("maze2d-umaze", steps=10, out=tmp_path / "w.hdf5", minari_id="no version", progress=False)
