"""`dfplan plan`: one plan's denoising recorded row by row and drawn as a GIF or PNG."""

import numpy as np
import pytest
from PIL import Image

from dfplanner.cli import main
from dfplanner.evaluation.denoising import record_denoising
from dfplanner.envs.maze2d import Maze2dEnv
from dfplanner.evaluation.pretrained import load_planner, shipped_checkpoint


def test_recording_follows_the_schedule_to_the_kept_plan():
    planner = load_planner(shipped_checkpoint("maze2d-umaze-v1"), device="cpu", candidates=3, hold_radius=0.0)  # the raw sample
    observation, info = Maze2dEnv("maze2d-umaze").reset(seed=0)
    denoising = record_denoising(planner, observation, info["target"])
    rows, tokens = denoising.schedule.shape
    assert denoising.rows.tolist() == list(range(1, rows))  # every sampling row, in order
    assert denoising.positions.shape == (rows - 1, tokens * denoising.frame_stack, 2)
    np.testing.assert_allclose(denoising.positions[-1], planner.last_plan.observations[0, :, :2], atol=1e-5)
    assert not np.allclose(denoising.positions[0], denoising.positions[-1])  # the first estimate is still rough


@pytest.mark.parametrize("suffix", [".gif", ".png"])
def test_plan_command_writes_the_picture(tmp_path, capsys, suffix):
    out = tmp_path / f"plan{suffix}"
    # 10 steps per token and one row of delay per token over 20 tokens: 10 + 19 rows after the all-noise row
    flags = ["--sampling-steps", "10", "--uncertainty", "1", "--candidates", "2", "--device", "cpu"]
    assert main(["plan", "--env", "maze2d-umaze", "--out", str(out), "--seed", "1", *flags]) == 0
    assert f"wrote {out}: 29 sampling rows of a pyramid schedule over 20 tokens" in capsys.readouterr().out
    with Image.open(out) as image:
        assert image.format == suffix[1:].upper()
        assert getattr(image, "n_frames", 1) == (29 if suffix == ".gif" else 1)  # the held last frame merges into one
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


def test_plan_command_draws_ogbench_s_maze_in_its_frame(tmp_path):
    """dfplan plan on an OGBench dataset's env (it failed after planning, drawing maze2d's frame)."""
    out = tmp_path / "plan.png"
    assert main(["plan", "--env", "pointmaze-medium-navigate-v0", "--out", str(out), "--device", "cpu"]) == 0
    with Image.open(out) as image:
        assert image.format == "PNG"
    assert main(["plan", "--env", "Pendulum-v1", "--out", str(tmp_path / "p.png")]) == 2  # no maze: refused before planning


@pytest.mark.parametrize("args, message", [
    (["--out", "plan.mp4"], "use a .gif or .png file name"),
    (["--out", "/nonexistent-dir/plan.gif"], "folder /nonexistent-dir does not exist"),
    (["--out", "plan.gif", "--fps", "0"], "--fps must be positive"),
    (["--out", "plan.gif", "--env", "maze2d-huge"], "unknown environment 'maze2d-huge'"),
])
def test_plan_command_user_errors(args, message, capsys):
    assert main(["plan", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dfplan: error: ") and message in err and err.count("\n") == 1


def test_plan_command_draws_the_picture_preset_by_default(tmp_path, capsys):
    """By default enough rows to see the pyramid (29, not the 3 of the shipped schedule); --preset shipped draws the acting plan."""
    out = tmp_path / "plan.png"
    assert main(["plan", "--env", "maze2d-umaze", "--out", str(out), "--device", "cpu"]) == 0
    assert "29 sampling rows of a pyramid schedule over 20 tokens, seed 0, preset picture" in capsys.readouterr().out
    assert main(["plan", "--env", "maze2d-umaze", "--out", str(out), "--device", "cpu", "--preset", "shipped"]) == 0
    assert "3 sampling rows of a pyramid schedule over 5 tokens, seed 0, preset shipped" in capsys.readouterr().out


@pytest.mark.parametrize("maze", ["maze2d-umaze", "maze2d-large"])
def test_picture_plans_reach_the_target(maze):
    """The picture shows a plan that gets there: guidance through the model over 29 rows (benchmarks/plan_walls.py)."""
    for seed in range(3):
        planner = load_planner(shipped_checkpoint(f"{maze}-v1"), device="cpu", preset="picture", seed=seed)
        observation, info = Maze2dEnv(maze).reset(seed=seed)
        positions = record_denoising(planner, observation, info["target"]).positions[-1]
        assert np.linalg.norm(positions - info["target"], axis=1).min() < 0.5


@pytest.mark.parametrize("episodes, rows", [(3, 1), (6, 2), (40, 4)])
def test_eval_plot_draws_the_episodes_asked_for_up_to_16(tmp_path, episodes, rows):
    """Four panels to a row; 40 episodes draw the last 16 (the limit `--plot`'s help states)."""
    png = tmp_path / "episodes.png"
    assert main(["eval", "--env", "maze2d-umaze", "--policy", "oracle", "--episodes", str(episodes), "--batch-size", "5",
                 "--plot", str(png)]) == 0
    with Image.open(png) as image:
        width, height = image.size
    columns = min(episodes, 4)
    assert round(height / width * columns) == rows
