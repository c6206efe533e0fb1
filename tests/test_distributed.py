"""Distributed training: torchrun with 2 CPU processes (gloo) trains, keeps the replicas identical, resumes."""

import json
import os
import subprocess
import sys

import pytest

from dfplanner.data.maze2d_recipe import generate
from tiny_config import tiny_config

TINY = tiny_config(warmup=2, batch_size=8, save_every=2, log_every=2)


def torchrun(folder, *args):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "dfplanner.cli", "train", "--dataset", "u.hdf5", "--config", "tiny.toml", "--out", "run",
               "--threads", "1", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def distributed_metadata(folder):
    description = json.loads((folder / "run" / "model.json").read_text())
    return description["training_steps"], description["distributed"]


@pytest.mark.slow  # a subprocess
@pytest.mark.skipif(sys.platform == "win32", reason="torchrun's standalone rendezvous")
def test_two_processes_train_identical_replicas_and_resume(tmp_path):
    generate("maze2d-umaze", steps=2000, out=tmp_path / "u.hdf5", progress=False)
    (tmp_path / "tiny.toml").write_text(TINY)

    out = torchrun(tmp_path, "--steps", "4")
    assert out.count("batch 8 x 2 processes = 16") == 1  # only rank 0 speaks
    steps, distributed = distributed_metadata(tmp_path)
    digests = distributed["weights_sha256"]
    assert steps == 4 and distributed["world_size"] == 2 and len(digests) == 2 and digests[0] == digests[1]

    out = torchrun(tmp_path, "--steps", "6", "--resume")
    assert "resuming run at step 4" in out
    steps, distributed = distributed_metadata(tmp_path)
    assert steps == 6 and distributed["weights_sha256"][0] == distributed["weights_sha256"][1] != digests[0]
    assert json.loads((tmp_path / "run" / "train_state.json").read_text())["step"] == 6
