"""The CLI table and dvc.yaml stay in step; user errors print one clear line, not a traceback."""

import subprocess
import sys
from pathlib import Path

import yaml

from components.cli import STAGES, stage, summary

REPO = Path(__file__).resolve().parents[2]


def test_every_dvc_stage_is_a_cli_stage_and_back():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert set(stages) == set(STAGES)
    assert list(stages) == list(STAGES)  # in pipeline order: benchmarks/learning_curve.py runs them so
    for name, entry in stages.items():
        assert entry["cmd"] == f"python -m components {name}"
        assert f"components/stages/{name}.py" in entry["deps"]
        assert callable(stage(name)) and summary(name)   # a module with run() and a docstring for --help


def test_bad_params_give_a_clear_message_and_exit_2(tmp_path):
    (tmp_path / "params.yaml").write_text("prepare:\n  source: {kind: idx}\n  colour: red\n")
    result = subprocess.run([sys.executable, "-m", "components", "prepare"], cwd=tmp_path,
                            capture_output=True, text=True, env={"PYTHONPATH": str(REPO), "PATH": ""})
    assert result.returncode == 2
    assert "prepare.colour: unknown key" in result.stderr
    assert "prepare.source.path: required but missing" in result.stderr
    assert "Traceback" not in result.stderr
