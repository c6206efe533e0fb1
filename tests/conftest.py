import sys
import tempfile
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # the synthetic point task helpers


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

    from dfplanner.config import DEFAULTS, merge
    from dfplanner.training import Trainer

    config = merge(DEFAULTS, {
        "tokens": {"frame_stack": 4, "window": 12},
        "model": {"hidden": 64},
        "training": {"steps": 1500, "batch_size": 64, "warmup": 50, "save_every": 1500},
    })
    trainer = Trainer(random_walks(), config, tmp_path_factory.mktemp("point"), device="cpu")
    return trainer.run(progress=False)
