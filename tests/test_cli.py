import json
import subprocess
import sys

import pytest

from dfplanner.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "dfplanner.cli", *args], capture_output=True, text=True, timeout=120)


def test_eval_writes_json_and_prints_a_table(tmp_path, capsys):
    out = tmp_path / "oracle.json"
    code = main(["eval", "--env", "maze2d-umaze", "--policy", "oracle", "--episodes", "3", "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["episodes"] == 3 and result["policy"] == "oracle" and result["env"] == "maze2d-umaze-v1"
    assert "normalized score" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["oracle.json"]


@pytest.mark.parametrize("args, message", [
    (["eval", "--episodes", "0"], "episodes must be positive"),
    (["eval", "--env", "maze2d-huge", "--episodes", "1"], "unknown environment 'maze2d-huge'"),
    (["eval", "--episodes", "1", "--json", "/nonexistent-dir/x.json"], "folder /nonexistent-dir does not exist"),
    (["data", "generate", "--env", "maze2d-umaze", "--steps", "-5"], "steps must be positive"),
])
def test_user_errors_exit_2_with_one_line(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("dfplan: error: ") and message in err and err.count("\n") == 1


def test_user_error_in_a_subprocess_has_no_traceback(tmp_path):
    bad = tmp_path / "x.json"
    bad.mkdir()
    proc = run_cli("eval", "--episodes", "1", "--json", str(bad))
    assert proc.returncode == 2
    assert proc.stderr.startswith("dfplan: error: cannot write") and "Traceback" not in proc.stderr


def test_data_generate_subprocess(tmp_path):
    out = tmp_path / "u.hdf5"
    proc = run_cli("data", "generate", "--env", "maze2d-umaze", "--steps", "300", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and str(out) in proc.stdout
