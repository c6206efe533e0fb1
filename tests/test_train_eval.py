"""End to end on CPU: generate a small dataset, train a tiny planner, resume, reload, plan episodes."""

import json
from pathlib import Path

import numpy as np
import pytest

from dfplanner.training.checkpoint import load_trained_model
from dfplanner.cli import main
from dfplanner.evaluation.pretrained import SHIPPED_DIR
from tiny_config import tiny_config

TINY = tiny_config(warmup=5, save_every=10, log_every=5)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    data, config = folder / "umaze.hdf5", folder / "tiny.toml"
    config.write_text(TINY)
    assert main(["data", "generate", "--env", "maze2d-umaze", "--steps", "5000", "--out", str(data)]) == 0
    args = ["train", "--env", "maze2d-umaze", "--dataset", str(data), "--config", str(config), "--out", str(folder / "run")]
    assert main([*args, "--steps", "20", "--eval-every", "20", "--eval-episodes", "2"]) == 0
    return folder, args


def test_tensorboard_gets_losses_scores_plan_and_denoising_pictures(tiny_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder, _ = tiny_run
    events = EventAccumulator(str(folder / "run" / "tensorboard")).Reload()
    assert {"train/loss", "train/samples_per_s", "eval/normalized_score", "eval/success_rate"} <= set(events.Tags()["scalars"])
    assert {"eval/plans", "eval/denoising"} <= set(events.Tags()["images"])


def test_training_writes_the_datas_routes_beside_the_model(tiny_run):
    """The routes come from the training data: every cell is a recorded position, linked by recorded steps."""
    from dfplanner.training.checkpoint import load_trained_model
    from dfplanner.data.datasets import load_dataset

    folder, _ = tiny_run
    routes = load_trained_model(folder / "run").routes
    data = load_dataset(folder / "umaze.hdf5").observations[:, :2]
    assert routes is not None and len(routes.sources) > 0
    nearest = np.sqrt(((routes.nodes[:, None, :] - data[None]) ** 2).sum(-1)).min(1)
    assert nearest.max() < 8 * routes.step  # each cell (5 steps wide) has its mean among the data's positions


def test_resume_takes_everything_from_the_run_and_refuses_contradicting_flags(tiny_run, tmp_path, capsys):
    folder, args = tiny_run
    run = folder / "run"
    state = json.loads((run / "train_state.json").read_text())
    assert state["step"] == 20
    assert main([*args, "--steps", "30"]) == 2  # refuses to overwrite a run
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--out", str(run), "--resume", "--steps", "10"]) == 2
    assert f"--steps 10 contradicts the run in {run}, which has steps 20" in capsys.readouterr().err
    assert main(["train", "--out", str(run), "--resume", "--env", "maze2d-large"]) == 2
    assert "--env maze2d-large-v1 contradicts the run" in capsys.readouterr().err
    other = tmp_path / "other.toml"
    other.write_text("[training]\nlr = 0.5\n")
    assert main(["train", "--out", str(run), "--resume", "--config", str(other)]) == 2
    assert "it sets [training] lr = 0.5" in capsys.readouterr().err
    assert main([*args, "--resume"]) == 0  # flags that agree with the run are fine
    assert main(["train", "--out", str(run), "--resume"]) == 0
    out = capsys.readouterr().out
    assert f"resuming {run} at step 20 of 20" in out and f"tensorboard --logdir {run / 'tensorboard'}" in out
    assert main(["train", "--out", str(run), "--resume", "--steps", "30"]) == 0  # a larger --steps extends the run
    model = load_trained_model(run)  # a run folder is a checkpoint: its model.*
    assert model.metadata["training_steps"] == 30 and model.metadata["env_id"] == "maze2d-umaze-v1"
    assert json.loads((run / "run.json").read_text())["config"]["training"]["steps"] == 30


def test_config_show_prints_what_train_uses(tiny_run, capsys):
    import tomllib

    from dfplanner.training.config import load_config

    folder, _ = tiny_run
    assert main(["config", "show", "--env", "maze2d-umaze", "--config", str(folder / "tiny.toml")]) == 0
    shown = tomllib.loads(capsys.readouterr().out)
    assert shown == load_config("maze2d-umaze", folder / "tiny.toml") and shown["model"]["hidden"] == 32
    assert main(["config", "show", "--run", str(folder / "run")]) == 0
    recorded = tomllib.loads(capsys.readouterr().out)
    assert recorded == json.loads((folder / "run" / "run.json").read_text())["config"] and recorded["training"]["save_every"] == 10


def test_eval_with_the_trained_checkpoint(tiny_run, tmp_path):
    folder, _ = tiny_run
    out, png = tmp_path / "eval.json", tmp_path / "plot.png"
    code = main(["eval", "--env", "maze2d-umaze", "--checkpoint", str(folder / "run" / "model"), "--episodes", "2",
                 "--mcg-samples", "2", "--json", str(out), "--plot", str(png)])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["policy"] == "planner" and result["episodes"] == 2
    assert result["planner"]["mcg_samples"] == 2 and result["planner"]["horizon"] == 4
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = tmp_path / "again.json"
    assert main(["eval", "--env", "maze2d-umaze", "--checkpoint", str(folder / "run" / "model"), "--episodes", "2",
                 "--mcg-samples", "2", "--json", str(again)]) == 0  # a seed gives the same episodes and plans, to the bit
    assert [e["return"] for e in json.loads(again.read_text())["per_episode"]] == [e["return"] for e in result["per_episode"]]


def test_shipped_umaze_planner_scores_as_committed(tmp_path):
    """The shipped checkpoint loads from the installed package and scores what results/ says: on 20
    episodes of seed 3 (not the committed run's seed 0), within 4 standard errors of the committed
    100-episode mean, every episode reaching the goal."""
    committed = json.loads((ROOT / "results" / "planner_maze2d-umaze.json").read_text())
    out = tmp_path / "umaze.json"
    assert main(["eval", "--env", "maze2d-umaze", "--episodes", "20", "--seed", "3", "--batch-size", "20", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["policy"] == "planner" and result["planner"]["checkpoint"] == "shipped"
    sem = committed["normalized_score_std"] / np.sqrt(result["episodes"])
    assert result["success_rate"] == 1.0 and result["normalized_score_mean"] > committed["normalized_score_mean"] - 4 * sem


@pytest.mark.parametrize("env_id", sorted(p.stem for p in SHIPPED_DIR.glob("*.json")))
def test_shipped_checkpoint_plans_with_its_committed_config(env_id):
    """What `dfplan eval` runs is what envs/configs says (and what `dfplan train` would record)."""
    from dfplanner.cli import _config_name
    from dfplanner.training.config import load_config
    from dfplanner.evaluation.pretrained import shipped_checkpoint

    recorded = json.loads(shipped_checkpoint(env_id).read_text())
    assert recorded["env_id"] == env_id
    config = load_config(_config_name(env_id))
    assert recorded["planner"] == config["planner"]
    assert recorded["model"] == config["model"] and recorded["window"] == config["tokens"]["window"]
