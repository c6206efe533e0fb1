"""Bad input never gives a traceback or a silent wrong result: each case of this table runs the real
`dfplan` entry point and must exit with code 2 and one line `dfplan: error: ...` naming what is wrong
and where (file, key, value). Crafted pickles must raise the same kind of error and run nothing."""

import json
import os
import pickle
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import d4rl_arrays, run_cli, tiny_trained_model, write_hdf5
from dfplanner.training.checkpoint import DIGEST_KEY, checkpoint_paths, record_digest
from dfplanner.cli import main
from dfplanner.errors import DfplannerError
from dfplanner.evaluation.pretrained import load_planner, shipped_checkpoint
from dfplanner.planning.routes import routes_path

UMAZE = shipped_checkpoint("maze2d-umaze-v1")
MEDIUM = shipped_checkpoint("maze2d-medium-v1")


def train(dataset, tmp_path, *extra):
    return ["train", "--env", "maze2d-umaze", "--dataset", str(dataset), "--out", str(tmp_path / "run"), *extra]


def evaluate(checkpoint=None, *extra, env="maze2d-umaze"):
    return ["eval", "--env", env, "--episodes", "1", *(["--checkpoint", str(checkpoint)] if checkpoint else []), *extra]


def bad_dataset(tmp_path, change):
    return write_hdf5(tmp_path / "bad.hdf5", change(d4rl_arrays()))


def shipped_copy(tmp_path, edit=lambda description: None):
    """The shipped umaze checkpoint (weights and routes) copied to tmp_path, its JSON description edited by `edit`."""
    json_path, weights_path = checkpoint_paths(UMAZE)
    shutil.copy(weights_path, tmp_path / "ckpt.safetensors")
    shutil.copy(routes_path(json_path), tmp_path / "ckpt.routes.safetensors")
    description = json.loads(json_path.read_text())
    edit(description)
    (tmp_path / "ckpt.json").write_text(json.dumps(description))
    return tmp_path / "ckpt.json"


def _npz(path, actions: float):
    """A small OGBench-format file of 2-D points whose actions all equal `actions`."""
    from dfplanner.data.ogbench_npz import write_npz

    n = 400
    terminals = np.zeros(n, bool)
    terminals[199::200] = True
    write_npz(path, {"observations": np.random.default_rng(0).normal(size=(n, 2)).astype(np.float32),
                     "actions": np.full((n, 2), actions, np.float32), "terminals": terminals})
    return path


def _without_routes(tmp_path):
    json_path = shipped_copy(tmp_path)
    (tmp_path / "ckpt.routes.safetensors").unlink()
    return json_path


def _routes_replaced(tmp_path):
    json_path = shipped_copy(tmp_path)
    shutil.copy(routes_path(checkpoint_paths(MEDIUM)[0]), tmp_path / "ckpt.routes.safetensors")
    return json_path


def checkpoint_for_obs_size(tmp_path, obs_dim):
    """A complete, loadable checkpoint for maze2d-umaze whose model takes observations of size obs_dim."""
    tiny_trained_model(obs_dim, {"env_id": "maze2d-umaze-v1", "planner": {"replan_every": 2}}).save(tmp_path / "ckpt")
    return tmp_path / "ckpt.json"


def nan_weights(tmp_path):
    path = shipped_copy(tmp_path)
    weights = load_file(tmp_path / "ckpt.safetensors")
    weights["head.2.bias"][0] = float("nan")
    save_file(weights, tmp_path / "ckpt.safetensors")
    record_digest(path)  # the file is what it claims to be: the NaN check is what refuses it
    return path


def not_json(tmp_path):
    path = shipped_copy(tmp_path)
    path.write_text("{oops")
    return path


def bit_flipped_weights(tmp_path):
    """The shipped checkpoint with one bit of one weight flipped: still a valid safetensors file."""
    path = shipped_copy(tmp_path)
    content = bytearray((tmp_path / "ckpt.safetensors").read_bytes())
    content[-100] ^= 0x10
    (tmp_path / "ckpt.safetensors").write_bytes(bytes(content))
    return path


def config_file(tmp_path, text):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    return path


def train_config(tmp_path, text, *extra):
    """`dfplan train` of the default umaze dataset (generated if the config passed) with a config file."""
    return ["train", "--env", "maze2d-umaze", "--config", str(config_file(tmp_path, text)), "--out", str(tmp_path / "run"), *extra]


def train_generating(tmp_path, data_dir):
    """`dfplan train` that must generate the default dataset into `data_dir` ($DFPLANNER_DATA for this
    test; conftest's isolated_data_dirs restores it afterwards)."""
    os.environ["DFPLANNER_DATA"] = str(data_dir)
    return ["train", "--env", "maze2d-umaze", "--out", str(tmp_path / "run")]


def truncated(tmp_path):
    content = write_hdf5(tmp_path / "good.hdf5", {k: np.repeat(v, 100, axis=0) for k, v in d4rl_arrays().items()}).read_bytes()
    path = tmp_path / "truncated.hdf5"
    path.write_bytes(content[: len(content) // 2])
    return path


def corrupted(tmp_path):
    content = write_hdf5(tmp_path / "good.hdf5", {k: np.repeat(v, 100, axis=0) for k, v in d4rl_arrays().items()}).read_bytes()
    path = tmp_path / "corrupted.hdf5"
    path.write_bytes(content[:8] + bytes(range(256)) * 4 + content[8 + 1024 :])
    return path


def nan_at_row_7(arrays):
    arrays["observations"][7, 1] = np.nan
    return arrays


def a_file(tmp_path):
    path = tmp_path / "a-file"
    path.write_text("")
    return path


# case -> (tmp_path -> dfplan arguments, texts the message must contain; "{tmp}" stands for tmp_path)
CASES = {
    "missing dataset file": (lambda t: train(t / "nope.hdf5", t), ["{tmp}/nope.hdf5", "no such file"]),
    "missing checkpoint": (lambda t: evaluate(t / "nope"), ["{tmp}/nope", "checkpoint not found"]),
    "truncated hdf5": (lambda t: train(truncated(t), t), ["{tmp}/truncated.hdf5", "HDF5"]),
    "corrupted hdf5": (lambda t: train(corrupted(t), t), ["{tmp}/corrupted.hdf5", "HDF5"]),
    "missing key": (lambda t: train(bad_dataset(t, lambda a: {k: v for k, v in a.items() if k != "actions"}), t),
                    ["{tmp}/bad.hdf5", "missing key 'actions'"]),
    "wrong shape": (lambda t: train(bad_dataset(t, lambda a: a | {"rewards": np.zeros((50, 2))}), t),
                    ["{tmp}/bad.hdf5", "key 'rewards' has shape (50, 2), expected (50)"]),
    "NaN in observations": (lambda t: train(bad_dataset(t, nan_at_row_7), t),
                            ["{tmp}/bad.hdf5", "'observations' has NaN or inf (first at row 7)"]),
    "actions outside [-1, 1]": (lambda t: train(bad_dataset(t, lambda a: a | {"actions": a["actions"] * 3}), t),
                                ["{tmp}/bad.hdf5", "'actions' has values outside [-1, 1]"]),
    "unknown environment": (lambda t: ["eval", "--env", "maze2d-huge"], ["unknown environment 'maze2d-huge'"]),
    "unknown environment (train)": (lambda t: ["train", "--env", "antmaze"], ["unknown environment 'antmaze'"]),
    "checkpoint for another environment": (lambda t: evaluate(UMAZE, env="maze2d-large"),
                                           [str(UMAZE), "trained for maze2d-umaze-v1, not maze2d-large-v1"]),
    "checkpoint for another observation size": (lambda t: evaluate(checkpoint_for_obs_size(t, 6)),
                                                ["{tmp}/ckpt.json", "observations of size 6, maze2d-umaze-v1 gives 4"]),
    "checkpoint from a newer format version": (
        lambda t: evaluate(shipped_copy(t, lambda d: d.update(format_version=2))),
        ["{tmp}/ckpt.json", "format version 2 is newer"]),
    "checkpoint JSON not JSON": (lambda t: evaluate(not_json(t)), ["{tmp}/ckpt.json", "not a valid JSON file"]),
    "checkpoint weights with NaN": (lambda t: evaluate(nan_weights(t)), ["{tmp}/ckpt.safetensors", "'head.2.bias' holds NaN"]),
    "checkpoint weights for another model": (
        lambda t: evaluate(shipped_copy(t, lambda d: d["model"].update(hidden=128))),
        ["{tmp}/ckpt.safetensors", "weights do not match the model in ckpt.json"]),
    "plot not a png": (lambda t: evaluate(None, "--plot", str(t / "x.txt")), ["--plot {tmp}/x.txt: the picture is a PNG"]),
    "empty checkpoint": (lambda t: evaluate(None, "--checkpoint", ""), ["--checkpoint is empty"]),
    "routes file as checkpoint": (lambda t: evaluate(routes_path(UMAZE)), ["is a checkpoint's routes file; pass the checkpoint itself (maze2d-umaze-v1.json)"]),
    "data naming no env": (lambda t: ["train", "--dataset", _npz(t / "data.npz", actions=0.5), "--out", t / "run"],
                           ["{tmp}/data.npz names no env: pass --env ENV, the env it was recorded in"]),
    "actions outside the env's space": (lambda t: ["train", "--dataset", _npz(t / "data.npz", actions=5.0), "--out", t / "run",
                                                   "--env", "pointmaze-medium-navigate-v0"],
                                        ["key 'actions' has values outside [-1, 1]"]),
    "weights digest deleted": (lambda t: evaluate(shipped_copy(t, lambda d: d.pop(DIGEST_KEY))),
                               ["ckpt.json: records no sha256 of ckpt.safetensors", "--allow-unverified"]),
    "routes missing": (lambda t: evaluate(_without_routes(t)), ["ckpt.json: its routes file ckpt.routes.safetensors is missing"]),
    "routes replaced": (lambda t: evaluate(_routes_replaced(t)), ["ckpt.routes.safetensors: sha256 differs from the one recorded in ckpt.json"]),
    "invalid scheduling matrix": (
        lambda t: evaluate(shipped_copy(t, lambda d: d["planner"].update(schedule=[[10, 5], [20, 0], [0, 0]]))),
        ["scheduling matrix column 0 increases from row 0 to row 1 (10 -> 20)"]),
    "zero episodes": (lambda t: ["eval", "--episodes", "0"], ["argument --episodes: must be in 1..100,000, got 0"]),
    "negative episodes": (lambda t: ["eval", "--episodes", "-3"], ["argument --episodes: must be in 1..100,000, got -3"]),
    "zero training steps": (lambda t: ["train", "--env", "maze2d-umaze", "--steps", "0"], ["argument --steps: must be in 1..1,000,000,000, got 0"]),
    "negative generated steps": (lambda t: ["data", "generate", "--env", "maze2d-umaze", "--steps", "-5"],
                                 ["argument --steps: must be in 1..100,000,000, got -5"]),
    "output folder missing": (lambda t: evaluate(None, "--json", str(t / "no" / "x.json")),
                              ["cannot write {tmp}/no/x.json", "folder {tmp}/no does not exist"]),
    "output path is a folder": (lambda t: evaluate(None, "--json", str(t)), ["cannot write {tmp}: it is a folder"]),
    "run folder not creatable": (lambda t: train(write_hdf5(t / "ok.hdf5", d4rl_arrays()), a_file(t)),
                                 ["cannot create run folder {tmp}/a-file/run"]),
    "unknown Minari id": (lambda t: train("minari:nobody/nothing-v0", t),
                          ["minari:nobody/nothing-v0: not found locally", "never downloaded"]),
    "checkpoint weights bit-flipped": (lambda t: evaluate(bit_flipped_weights(t)),
                                       ["{tmp}/ckpt.safetensors: sha256 differs from the one recorded in ckpt.json"]),
    "checkpoint folder without a model": (lambda t: evaluate(t), ["{tmp}: checkpoint not found (looked for {tmp}/model.json and {tmp}/model.safetensors)"]),
    "unknown config key": (lambda t: train_config(t, "[training]\nstpes = 7\n"),
                           ["{tmp}/bad.toml: unknown key in [training] 'stpes'; did you mean 'steps'?"]),
    "unknown config section": (lambda t: train_config(t, "[trainig]\nsteps = 7\n"),
                               ["{tmp}/bad.toml: unknown section 'trainig'; did you mean 'training'?"]),
    "unknown planner key": (lambda t: train_config(t, "[planner]\nguidance_scal = 3\n"),
                            ["{tmp}/bad.toml: [planner]", "guidance_scal", "did you mean 'guidance_scale'?"]),
    "config value of the wrong type": (lambda t: train_config(t, '[training]\nlr = "fast"\n'),
                                       ["{tmp}/bad.toml: [training] lr must be a number, got 'fast'"]),
    "config value out of range": (lambda t: train_config(t, "[model]\nhidden = -4\n"),
                                  ["{tmp}/bad.toml: [model] hidden must be 1 to 4,096, got -4"]),
    "transformer key on a GRU": (lambda t: train_config(t, "[model]\nheads = 2\n"),
                                 ["[model] heads is a transformer setting; this model's type is 'recurrent'"]),
    "unusable device (eval)": (lambda t: evaluate(None, "--device", "mps"), ["--device mps is not usable on this machine"]),
    "unusable device (train)": (lambda t: ["train", "--env", "maze2d-umaze", "--device", "mps"], ["--device mps is not usable on this machine"]),
    "$DFPLANNER_DATA is a file": (lambda t: train_generating(t, a_file(t)), ["dataset folder {tmp}/a-file ($DFPLANNER_DATA) is a file, not a folder"]),
    "$DFPLANNER_DATA not writable": (lambda t: train_generating(t, "/sys"), ["folder /sys is not writable"]),
    "--json not writable, even for root": (lambda t: evaluate(None, "--json", "/sys/dfplan.json"),
                                           ["cannot write /sys/dfplan.json: folder /sys is not writable"]),
    "zero threads": (lambda t: ["train", "--env", "maze2d-umaze", "--threads", "0"], ["argument --threads: must be in 1..1,024, got 0"]),
    "negative threads": (lambda t: ["train", "--env", "maze2d-umaze", "--threads", "-2"], ["argument --threads: must be in 1..1,024, got -2"]),
    "oracle with a checkpoint": (lambda t: ["eval", "--policy", "oracle", "--checkpoint", str(UMAZE)],
                                 ["--policy oracle does not use --checkpoint"]),
    "random with planner flags": (lambda t: ["eval", "--policy", "random", "--guidance-scale", "3", "--device", "cpu"],
                                  ["--policy random does not use --guidance-scale, --device"]),
    "observations narrower than the env's": (
        lambda t: ["train", "--env", "maze2d-large", "--dataset", str(bad_dataset(t, lambda a: a | {"observations": a["observations"][:, :3]})),
                   "--out", str(t / "run")],
        ["{tmp}/bad.hdf5: observations and actions have 3 and 2 columns; maze2d-large-v1 has 4 and 2"]),
    "--resume without a run": (lambda t: ["train", "--out", str(t / "run"), "--resume"], ["{tmp}/run holds no run (no run.json)"]),
}
if not torch.cuda.is_available():
    CASES["--device cuda without a GPU"] = (lambda t: evaluate(None, "--device", "cuda"), ["--device cuda", "no CUDA GPU"])


# Planner settings are validated when the planner is built, before any episode (dfplanner/planning/settings.py).
CASES.update({
    "huge candidates": (lambda t: evaluate(None, "--candidates", "100000"), ["argument --candidates: must be in 1..64, got 100000"]),
    "huge MCG samples": (lambda t: evaluate(None, "--mcg-samples", "100000"), ["argument --mcg-samples: must be in 1..64, got 100000"]),
    "huge horizon": (lambda t: evaluate(None, "--horizon", "100000"), ["argument --horizon: must be in 1..10,000, got 100000"]),
    "huge seed": (lambda t: evaluate(None, "--seed", "99999999999999999999999"), ["argument --seed: must be in 0..4,294,967,295"]),
    "negative plan seed": (lambda t: ["plan", "--out", str(t / "p.png"), "--seed", "-1"], ["argument --seed: must be in 0..4,294,967,295, got -1"]),
    "huge episode count": (lambda t: evaluate(None, "--episodes", "1000000000"), ["argument --episodes: must be in 1..100,000"]),
    "huge maze2d dataset": (lambda t: ["data", "generate", "--env", "maze2d-umaze", "--steps", "90000000"],
                            ["--steps 90000000 makes 90,000,000 steps; at most 20,000,000"]),
    "huge OGBench dataset": (lambda t: ["data", "generate", "--env", "pointmaze-medium-navigate-v0", "--episodes", "900000"],
                             ["makes 990,990,000 steps; at most 20,000,000"]),
    "huge batch": (lambda t: evaluate(None, "--batch-size", "100000"), ["argument --batch-size: must be in 1..4,096"]),
    "huge model in a config": (lambda t: train_config(t, "[model]\nhidden = 100000000\n"), ["[model] hidden must be 1 to 4,096, got 100000000"]),
    "unknown flag": (lambda t: ["eval", "--no-such-flag"], ["unrecognized arguments: --no-such-flag"]),
    "zero candidates": (lambda t: evaluate(None, "--candidates", "0"), ["argument --candidates: must be in 1..64, got 0"]),
    "negative candidates": (lambda t: evaluate(None, "--candidates", "-1"), ["argument --candidates: must be in 1..64, got -1"]),
    "negative MCG samples": (lambda t: evaluate(None, "--mcg-samples", "-4"), ["argument --mcg-samples: must be in 1..64, got -4"]),
    "negative stabilization level": (lambda t: evaluate(None, "--stabilization-level", "-3"), ["argument --stabilization-level: must be in 0..100,000, got -3"]),
    "stabilization level above K": (lambda t: evaluate(None, "--stabilization-level", "5000"), ["stabilization_level must lie in [0, 1000]"]),
    "negative context tokens": (lambda t: evaluate(None, "--context-tokens", "-1"), ["argument --context-tokens: must be in 0..1,000, got -1"]),
    "NaN guidance scale": (lambda t: evaluate(None, "--guidance-scale", "nan"), ["guidance_scale must be a finite number"]),
    "infinite guidance scale": (lambda t: evaluate(None, "--guidance-scale", "inf"), ["guidance_scale must be a finite number"]),
    "negative hold radius": (lambda t: evaluate(None, "--hold-radius", "-1"), ["hold_radius must be a finite number"]),
    "negative route traffic": (lambda t: evaluate(None, "--route-traffic", "-1"), ["route_traffic must be a finite number"]),
})


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gives_one_line_and_exit_code_2(case, tmp_path, capsys):
    make_args, texts = CASES[case]
    args = [str(a) for a in make_args(tmp_path)]
    code = main(args)
    captured = capsys.readouterr()
    assert code == 2, captured
    # the error is the first and only line: no progress bar before it, so no work was started
    assert captured.err.startswith("dfplan: error: ") and captured.err.count("\n") == 1, captured.err
    for text in texts:
        assert text.replace("{tmp}", str(tmp_path)) in captured.err
    assert "Traceback" not in captured.err + captured.out


def test_observation_of_the_wrong_shape_handed_to_the_policy():
    planner = load_planner(UMAZE, "maze2d-umaze-v1", device="cpu")
    planner.reset(np.zeros(4, np.float32), goal=np.ones(2))
    with pytest.raises(DfplannerError, match=r"act: observation has shape \(5,\), expected \(4,\) or \(1, 4\)"):
        planner.act(np.zeros(5))


class Payload:
    """Unpickling this runs a shell command that creates `marker`: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def crafted_pickle(tmp_path):
    """(bytes of a malicious pickle, the marker file it would create); checked to really work."""
    marker = tmp_path / "code-ran"
    payload = pickle.dumps({"state_dict": Payload(marker)})
    pickle.loads(payload)
    assert marker.exists()  # the payload is live: unpickling it runs code
    marker.unlink()
    return payload, marker


PICKLE_CASES = {
    "--checkpoint X.pt": ("eval", "evil.pt", "not a dfplanner checkpoint"),
    "--checkpoint X.pkl": ("eval", "evil.pkl", "not a dfplanner checkpoint"),
    "--checkpoint X.json": ("eval", "evil.json", "not a valid JSON file"),
    "--checkpoint X.safetensors": ("eval", "evil.safetensors", "not a valid safetensors file"),
    "--dataset X.pkl": ("train", "evil.pkl", "not an HDF5 file"),
    "--dataset X.hdf5": ("train", "evil.hdf5", "not an HDF5 file"),
}


@pytest.mark.parametrize("case", list(PICKLE_CASES))
def test_crafted_pickle_runs_no_code(case, crafted_pickle, tmp_path, capsys):
    payload, marker = crafted_pickle
    command, name, message = PICKLE_CASES[case]
    path = tmp_path / name
    path.write_bytes(payload)
    if name == "evil.safetensors":  # a valid description (without digest) beside it: the weights file is what is read
        description = json.loads(checkpoint_paths(UMAZE)[0].read_text())
        del description[DIGEST_KEY]
        (tmp_path / "evil.json").write_text(json.dumps(description))
    args = evaluate(path) if command == "eval" else train(path, tmp_path)
    if name == "evil.safetensors":  # trusted, so that the weights file is read (and refused for what it is)
        args = [*args, "--allow-unverified"]
    assert main([str(a) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dfplan: error: {path}: {message}") and err.count("\n") == 1
    assert not marker.exists()


@pytest.mark.slow  # a subprocess
def test_crafted_pickle_checkpoint_in_a_real_process(crafted_pickle, tmp_path):
    payload, marker = crafted_pickle
    path = tmp_path / "model.pt"
    path.write_bytes(payload)
    proc = run_cli("eval", "--env", "maze2d-umaze", "--checkpoint", str(path))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"dfplan: error: {path}: not a dfplanner checkpoint (expected NAME.json with "
                                        "NAME.safetensors); pickle and torch.save files are never loaded"]
    assert not marker.exists()


def test_a_missing_minari_id_creates_no_folders(tmp_path, monkeypatch, capsys):
    """Minari's own lookup creates ~/.minari/datasets; a failed lookup must leave the user's home as it was."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MINARI_DATASETS_PATH")
    (tmp_path / "home").mkdir()
    assert main(train("minari:nobody/nothing-v0", tmp_path)) == 2
    assert "not found locally" in capsys.readouterr().err
    assert list((tmp_path / "home").iterdir()) == [] and not (tmp_path / "run").exists()


def test_a_failed_training_leaves_no_run_folder(tmp_path, capsys):
    """The planner settings fail at the first evaluation, before any checkpoint: nothing is left to resume."""
    data = write_hdf5(tmp_path / "data.hdf5", d4rl_arrays(300))
    config = config_file(tmp_path, "[tokens]\nframe_stack = 2\nwindow = 4\n[model]\nhidden = 8\n[planner]\nreplan_every = 3\n")
    args = train(data, tmp_path, "--config", str(config), "--steps", "4", "--save-every", "4", "--eval-every", "1", "--eval-episodes", "1")
    assert main(args) == 2
    assert "replan_every (3) must be a multiple" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_trusted_checkpoint_without_digest_loads_when_asked(tmp_path, capsys):
    path = shipped_copy(tmp_path, lambda d: d.pop(DIGEST_KEY))
    assert main([*evaluate(path), "--allow-unverified"]) == 0
    assert main([*evaluate(None, "--horizon", "100"), "--episodes", "1"]) == 0
    assert "dfplan: note: horizon 100 tokens is longer than an episode (30 tokens of 10 steps)" in capsys.readouterr().err
