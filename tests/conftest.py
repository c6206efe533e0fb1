import sys
import tempfile
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # the synthetic point task helpers

# Fixtures that train a model first: their tests are `slow` (`pytest -m "not slow"` skips them).
TRAINING_FIXTURES = {"point_model", "tiny_run", "reference", "pendulum_run"}


def pytest_collection_modifyitems(items):
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def isolated_data_dirs(tmp_path, monkeypatch):
    """Never read or write the user's dataset caches."""
    monkeypatch.setenv("DFPLANNER_DATA", str(tmp_path / "dfplanner-data"))
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))


@pytest.fixture
def gymnasium_robotics(tmp_path, monkeypatch):
    """The optional gymnasium-robotics, its envs registered; it leaves one MJCF file per maze env in the
    temp folder, so that folder is the test's own."""
    module = pytest.importorskip("gymnasium_robotics")
    import gymnasium

    gymnasium.register_envs(module)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return module


torch.set_num_threads(2)


@pytest.fixture(scope="session")
def point_model(tmp_path_factory):
    """A small Diffusion Forcing model trained for a few seconds on the synthetic point task."""
    from point_task import random_walks

    from dfplanner.training.config import DEFAULTS, merge
    from dfplanner.training.trainer import Trainer

    config = merge(DEFAULTS, {
        "tokens": {"frame_stack": 4, "window": 12},
        "model": {"hidden": 64},
        "training": {"steps": 1500, "batch_size": 64, "warmup": 50, "save_every": 1500},
    })
    trainer = Trainer(random_walks(), config, tmp_path_factory.mktemp("point"), device="cpu")
    return trainer.run(progress=False)


def d4rl_arrays(n: int = 50, seed: int = 0) -> dict:
    """A small valid D4RL-format dataset: 4-d observations, 2-d actions in [-1, 1], three episodes."""
    import numpy as np

    rng = np.random.default_rng(seed)
    terminals = np.zeros(n, dtype=bool)
    terminals[[9, 29]] = True
    return {
        "observations": rng.normal(size=(n, 4)).astype(np.float32),
        "actions": rng.uniform(-1, 1, size=(n, 2)).astype(np.float32),
        "rewards": rng.integers(0, 2, size=n).astype(np.float32),
        "terminals": terminals,
    }


def write_hdf5(path, arrays: dict, env_id: str | None = None):
    """A D4RL-format file; `env_id`: the env it says it was recorded in (the `env_id` attribute)."""
    import h5py

    with h5py.File(path, "w") as file:
        for key, value in arrays.items():
            file.create_dataset(key, data=value)
        if env_id is not None:
            file.attrs["env_id"] = env_id
    return path


def run_cli(*args, timeout: float = 120, **kwargs):
    """`dfplan ARGS` in a fresh Python process (real stderr, real exit code, real signals)."""
    import subprocess

    return subprocess.run([sys.executable, "-m", "dfplanner.cli", *args], capture_output=True, text=True, timeout=timeout, **kwargs)


def tiny_trained_model(obs_dim: int = 4, metadata: dict | None = None):
    """An untrained, complete TrainedModel of a few hundred weights: for checkpoint plumbing, not planning."""
    import numpy as np

    from dfplanner.training.checkpoint import TrainedModel
    from dfplanner.diffusion.noise import NoiseSchedule
    from dfplanner.data.tokens import Normalizer, TokenLayout

    layout = TokenLayout(obs_dim=obs_dim, act_dim=2, frame_stack=2)
    normalizer = Normalizer(np.zeros(layout.step_dim, np.float32), np.ones(layout.step_dim, np.float32),
                            np.zeros(obs_dim, np.float32), np.ones(obs_dim, np.float32))
    return TrainedModel.create({"hidden": 8}, NoiseSchedule(num_levels=10), layout, normalizer, metadata)
