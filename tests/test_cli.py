import json

import pytest

from conftest import run_cli
from dfplanner.cli import main


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
