"""Runs are never lost and results are reproducible: atomic checkpoints, exact resume after SIGKILL,
Ctrl-C saving, byte-identical evaluations for one seed, and no NaN or inf ever reaching the env."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import dfplanner.training.checkpoint
from conftest import d4rl_arrays, run_cli, tiny_trained_model, write_hdf5
from dfplanner.training.checkpoint import load_trained_model, read_tensors
from dfplanner.cli import main
from dfplanner.envs.maze2d import Maze2dEnv
from dfplanner.errors import DfplannerError
from dfplanner.evaluation.rollout import evaluate
from dfplanner.planning.planner import DiffusionForcingPlanner
from dfplanner.planning.settings import PlannerSettings

TINY = """
[tokens]
frame_stack = 2
window = 4
[model]
hidden = 16
[training]
batch_size = 16
warmup = 5
log_every = 10
"""
TOTAL_STEPS, SAVE_EVERY = 200, 10


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A tiny uninterrupted training run; the interrupted runs must end exactly where it ends."""
    folder = tmp_path_factory.mktemp("train")
    data, config = write_hdf5(folder / "data.hdf5", d4rl_arrays(3000)), folder / "tiny.toml"
    config.write_text(TINY)

    def args(out, save_every=SAVE_EVERY):
        return ["train", "--env", "maze2d-umaze", "--dataset", str(data), "--config", str(config), "--out", str(out),
                "--steps", str(TOTAL_STEPS), "--save-every", str(save_every), "--threads", "1"]

    threads = torch.get_num_threads()
    try:
        assert main(args(folder / "reference")) == 0
    finally:
        torch.set_num_threads(threads)
    return folder / "reference", args


def start_training(args):
    return subprocess.Popen([sys.executable, "-m", "dfplanner.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def saved_step(run) -> int:
    path = run / "train_state.json"
    return json.loads(path.read_text())["step"] if path.exists() else 0


def wait_for(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def assert_same_run(run, reference):
    """Same step, data-order RNG and optimizer settings; bitwise the same weights, EMA, optimizer and noise RNG."""
    state, expected = (json.loads((r / "train_state.json").read_text()) for r in (run, reference))
    assert state["step"] == expected["step"] == TOTAL_STEPS
    for key in ("data_rng", "param_groups"):
        assert state[key] == expected[key]
    tensors, expected_tensors = (read_tensors(r / state["tensors"]) for r in (run, reference))
    assert tensors.keys() == expected_tensors.keys()
    assert {"model.head.2.bias", "ema.head.2.bias", "optim.0.exp_avg", "rng.noise"} <= tensors.keys()
    for name, tensor in tensors.items():
        assert torch.equal(tensor, expected_tensors[name]), name
    assert (run / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()


def test_sigkilled_training_resumes_exactly(reference, tmp_path):
    reference_run, args = reference
    run = tmp_path / "run"
    process = start_training(args(run))
    try:
        wait_for(lambda: saved_step(run) >= 4 * SAVE_EVERY)
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate()
    assert process.returncode == -signal.SIGKILL  # killed mid-run, not finished
    killed_at = saved_step(run)
    assert 4 * SAVE_EVERY <= killed_at < TOTAL_STEPS
    resumed = run_cli("train", "--out", str(run), "--resume")  # the run folder knows the rest
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run} at step {killed_at}" in resumed.stdout
    assert_same_run(run, reference_run)


def test_ctrl_c_saves_the_current_step_and_exits_cleanly(reference, tmp_path):
    reference_run, args = reference
    run = tmp_path / "run"
    process = start_training(args(run))
    wait_for(lambda: saved_step(run) >= SAVE_EVERY)  # training is under way
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "Traceback" not in err and err.strip().endswith("dfplan: interrupted")
    step = saved_step(run)
    assert 0 < step < TOTAL_STEPS and f"stopped at step {step}, step {step} saved" in out
    assert load_trained_model(run / "model").metadata["training_steps"] == step
    hint = out.split("resume with: ")[1].splitlines()[0]
    assert hint == f"dfplan train --out {run} --resume"
    assert main(hint.split()[1:]) == 0  # the printed command, as printed
    assert_same_run(run, reference_run)


def test_two_identical_runs_give_identical_weights(tmp_path):
    """The README's guarantee: same data, config, seed and thread count give the same weights, bit for
    bit. Sized like the shipped GRU (256 units, batch 128) on 2 threads, in two processes: there
    torch's default CPU kernels differed from run to run in the last bits."""
    data, config = write_hdf5(tmp_path / "data.hdf5", d4rl_arrays(3000)), tmp_path / "gru.toml"
    config.write_text("[tokens]\nframe_stack = 5\nwindow = 6\n[training]\nwarmup = 2\n")
    weights = []
    for name in ("first", "second"):
        done = run_cli("train", "--env", "maze2d-umaze", "--dataset", str(data), "--config", str(config),
                       "--out", str(tmp_path / name), "--steps", "5", "--threads", "2")
        assert done.returncode == 0, done.stderr
        weights.append((tmp_path / name / "model.safetensors").read_bytes())
    assert weights[0] == weights[1]


@pytest.mark.parametrize("failure, raised", [(OSError(28, "No space left on device"), DfplannerError), (KeyboardInterrupt(), KeyboardInterrupt)])
def test_a_failed_write_keeps_the_previous_checkpoint_and_leaves_no_temp_file(failure, raised, tmp_path, monkeypatch):
    trained = tiny_trained_model()
    trained.save(tmp_path / "model")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    torch.nn.init.ones_(trained.model.head[-1].weight)

    def write_half_then_fail(tensors, filename):
        with open(filename, "wb") as handle:
            handle.write(b"\x00" * 100)
        raise failure

    monkeypatch.setattr(dfplanner.training.checkpoint, "save_file", write_half_then_fail)
    with pytest.raises(raised) as error:
        trained.save(tmp_path / "model")
    if raised is DfplannerError:
        assert str(error.value) == f"cannot write {tmp_path / 'model.safetensors'}: No space left on device"
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert load_trained_model(tmp_path / "model").model.head[-1].weight.ne(1).any()


class Killed(Exception):
    """Stands for a SIGKILL at the point where it is raised."""


def killed(*args):
    raise Killed


def test_a_kill_between_train_state_files_resumes_the_previous_step(reference, tmp_path, monkeypatch):
    """train_state.json is the commit point: new tensors without it leave the previous step loadable."""
    import dfplanner.training.trainer
    from dfplanner.training.config import load_config
    from dfplanner.data.datasets import load_dataset
    from dfplanner.training.trainer import Trainer

    reference_run, args = reference
    config = load_config("maze2d-umaze", reference_run.parent / "tiny.toml")
    config["training"] |= {"steps": TOTAL_STEPS, "save_every": 1000}
    dataset = load_dataset(reference_run.parent / "data.hdf5")
    trainer = Trainer(dataset, config, tmp_path, device="cpu")
    trainer.run(steps=10, progress=False)
    monkeypatch.setattr(dfplanner.training.trainer, "write_json", killed)
    with pytest.raises(Killed):
        trainer.run(steps=20, progress=False)
    assert sorted(p.name for p in tmp_path.glob("train_state*")) == ["train_state-00000010.safetensors", "train_state-00000020.safetensors", "train_state.json"]
    monkeypatch.undo()
    again = Trainer(dataset, config, tmp_path, device="cpu")
    assert again.resume() and again.step == 10


def test_same_seed_gives_byte_identical_evaluation_json(tmp_path):
    timings = ("decisions_per_second", "policy_time_s", "wall_time_s")
    outputs = []
    for run in range(2):
        out = tmp_path / f"eval{run}.json"
        assert main(["eval", "--env", "maze2d-umaze", "--episodes", "2", "--batch-size", "2", "--seed", "5",
                     "--candidates", "2", "--sampling-steps", "2", "--horizon", "4", "--replan-every", "20",
                     "--json", str(out)]) == 0
        result = json.loads(out.read_text())
        assert all(result.pop(key) > 0 for key in timings)
        outputs.append(json.dumps(result, indent=1))
    assert outputs[0] == outputs[1]
    assert len({json.dumps(e["start"]) for e in json.loads(outputs[0])["per_episode"]}) == 2


class NanAfter:
    """A goal cost that turns NaN from its `calls`-th call on (e.g. a bug in a user's cost)."""

    def __init__(self, calls):
        self.calls, self.count = calls, 0

    def __call__(self, plan, goal):
        self.count += 1
        cost = (plan["observation"][..., :2] - goal[:, None]).norm(dim=-1).sum(-1)
        return cost * float("nan") if self.count >= self.calls else cost


@pytest.mark.parametrize("broken", ["weights", "cost"])
def test_the_planner_never_sends_nan_or_inf_to_the_environment(point_model, broken, monkeypatch):
    import copy

    trained, cost = copy.deepcopy(point_model), "goal"
    if broken == "weights":
        with torch.no_grad():
            trained.model.head[-1].bias[0] = float("inf")
    else:
        cost = NanAfter(calls=20)
    settings = PlannerSettings.from_dict({"horizon": 4, "sampling_steps": 3, "replan_every": 4, "guidance_scale": 1.0,
                                         "position_dims": (0, 1), "velocity_dims": (2, 3)})
    planner = DiffusionForcingPlanner(trained, settings, cost=cost, device="cpu")
    sent = []
    real_step = Maze2dEnv.step
    monkeypatch.setattr(Maze2dEnv, "step", lambda env, action: sent.append(np.array(action)) or real_step(env, action))
    with pytest.raises(DfplannerError, match="NaN or inf|non-finite"):
        evaluate("maze2d-umaze", planner, episodes=2, batch_size=2, progress=False)
    assert np.isfinite(np.array(sent)).all()
    if broken == "cost":
        assert len(sent) > 0  # it failed mid-episode, after finite actions


def test_a_run_folder_belongs_to_one_process(reference, tmp_path, capsys):
    """A second `dfplan train --out SAME` while the first runs is refused and leaves the first's files
    alone; a lock left by a process that is gone (a kill -9) is taken over."""
    _, args = reference
    run = tmp_path / "run"
    first = start_training(args(run, save_every=5))
    try:
        wait_for(lambda: (run / "run.lock").exists() and saved_step(run) > 0)
        record = (run / "run.json").read_bytes()
        assert main(args(run)) == 2 and main(["train", "--out", str(run), "--resume"]) == 2
        assert f"is in use by another dfplan train (pid {first.pid})" in capsys.readouterr().err
        assert (run / "run.json").read_bytes() == record
    finally:
        first.kill()
        first.wait()
    assert (run / "run.lock").read_text().strip() == str(first.pid)  # killed: its lock stays behind
    assert main(["train", "--out", str(run), "--resume"]) == 0 and not (run / "run.lock").exists()
    assert_same_run(run, reference[0])
