import json
import re
from pathlib import Path

import pytest

from conftest import run_cli
from dfplanner.cli import build_parser, main
from dfplanner.planning.settings import PlannerSettings

ROOT = Path(__file__).parents[1]


def test_eval_writes_json_and_prints_a_table(tmp_path, capsys):
    out = tmp_path / "oracle.json"
    code = main(["eval", "--env", "maze2d-umaze", "--policy", "oracle", "--episodes", "3", "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["episodes"] == 3 and result["policy"] == "oracle" and result["env"] == "maze2d-umaze-v1"
    assert "normalized score" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["oracle.json"]


@pytest.mark.slow  # a subprocess
def test_user_error_in_a_subprocess_has_no_traceback(tmp_path):
    bad = tmp_path / "x.json"
    bad.mkdir()
    proc = run_cli("eval", "--episodes", "1", "--json", str(bad))
    assert proc.returncode == 2
    assert proc.stderr.startswith("dfplan: error: cannot write") and "Traceback" not in proc.stderr


@pytest.mark.slow  # a subprocess
def test_data_generate_subprocess(tmp_path):
    out = tmp_path / "u.hdf5"
    proc = run_cli("data", "generate", "--env", "maze2d-umaze", "--steps", "300", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and str(out) in proc.stdout


def test_version_and_defaults_in_help(capsys):
    import pytest

    import dfplanner
    from dfplanner.cli import build_parser

    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"dfplan {dfplanner.__version__}"
    help_text = " ".join(build_parser()._subparsers._group_actions[0].choices["eval"].format_help().split())
    assert "(default: 20)" in help_text and "(default: maze2d-large)" in help_text and "(default: None)" not in help_text


@pytest.mark.parametrize("policy", ["oracle", "random", "planner"])
@pytest.mark.parametrize("batch_size", ["1", "2"])
def test_eval_video_records_the_first_environment(tmp_path, policy, batch_size):
    """Every policy's episodes are recorded (the planner and random policies once probed the env first,
    which used up the recorder and left the folder empty)."""
    import imageio.v3 as iio

    folder = tmp_path / "video"
    assert main(["eval", "--env", "maze2d-umaze", "--policy", policy, "--episodes", "2", "--batch-size", batch_size, "--video", str(folder)]) == 0
    if batch_size == "2":  # the first environment runs episode 0 only
        assert sorted(p.name for p in folder.iterdir()) == ["maze2d-umaze-v1-episode-0.mp4"]
        return
    videos = sorted(p.name for p in folder.iterdir())
    assert videos == ["maze2d-umaze-v1-episode-0.mp4", "maze2d-umaze-v1-episode-1.mp4"]
    frames = iio.imread(folder / videos[0])
    assert frames.ndim == 4 and frames.shape[0] > 250  # one frame per step of a 300-step episode


def test_config_reference_is_generated_from_the_schema():
    from dfplanner.training.config import reference

    assert (ROOT / "docs" / "config.md").read_text() == reference()


def test_project_files_users_expect():
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    citation = (ROOT / "CITATION.cff").read_text()
    assert "Diffusion Forcing: Next-token Prediction Meets Full-Sequence Diffusion" in citation and "2407.01392" in citation
    assert "## 0.1.0" in (ROOT / "CHANGELOG.md").read_text()
    assert (ROOT / "dfplanner" / "py.typed").exists() and "py.typed" in (ROOT / "setup.cfg").read_text()


def test_help_shows_every_default_and_config_show_every_planner_setting(capsys):
    """Planner flags show the package default (they said only "the checkpoint's"), the help speaks of
    every family, and `config show --env` prints all settings the planner acts with and their layer."""
    commands = build_parser()._subparsers._group_actions[0].choices
    help_text = " ".join(commands["eval"].format_help().split())
    assert "--horizon HORIZON tokens planned per decision (frame_stack env steps each) (package default: 20)" in help_text
    assert "pointmaze-{medium,large,giant}-{navigate,stitch}-v0" in help_text and "antmaze-" in help_text
    assert "ogbench:NAME" in " ".join(commands["train"].format_help().split())
    assert main(["config", "show", "--env", "maze2d-large"]) == 0
    shown = capsys.readouterr().out
    assert "#   track_ahead = 15" in shown and "maze2d env facts" in shown
    assert re.search(r"#   horizon = 5 +checkpoint \[planner\]", shown) and re.search(r"#   episode_steps = 800 +the env's episode length", shown)
    assert shown.count("\n#   ") == len(PlannerSettings().to_dict())
