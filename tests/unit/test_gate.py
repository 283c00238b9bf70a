"""The release gate of the version step: its verdict on evaluate's metrics, and a refused version that
tags and pushes nothing and keeps the workspace as it was."""

import json
import subprocess

import pytest
import yaml

from components import cli, paths
from components.config import validate
from components.config.data import GateParams
from components.errors import VersionError
from components.stages import version


def report(**means: float) -> dict:
    return {"arms": {arm: {"seeds": 3, "accuracy": {"mean": m + 0.01, "std": 0.0},
                           "balanced_accuracy": {"mean": m, "std": 0.0}} for arm, m in means.items()}}


def test_verdict_compares_the_best_synthetic_arm_with_the_best_other_arm():
    metrics = report(real=0.80, real_classic=0.82, real_synthetic=0.81, real_synthetic_classic=0.79)
    passed, why = version.gate_verdict(metrics, GateParams())
    assert not passed
    assert "real_synthetic has balanced_accuracy 0.8100" in why and "real_classic 0.8200" in why
    assert "lift -0.0100" in why
    assert version.gate_verdict(metrics, GateParams(min_lift=-0.02))[0]
    assert version.gate_verdict(report(real=0.80, real_synthetic=0.80), GateParams())[0]  # a tie passes
    assert not version.gate_verdict(report(real=0.80, real_synthetic=0.81), GateParams(min_lift=0.02))[0]


def test_a_tie_at_the_ceiling_or_at_chance_is_refused_with_the_reason():
    passed, why = version.gate_verdict(report(real=1.0, real_classic=1.0, real_synthetic=1.0), GateParams())
    assert not passed and "at the ceiling" in why and "cannot tell" in why
    chance = report(real=0.25, real_synthetic=0.25)
    for entry in chance["arms"].values():
        entry["recall"] = dict.fromkeys("abcd", 0.25)
    passed, why = version.gate_verdict(chance, GateParams(min_lift=-0.5))
    assert not passed and "at chance (1/4 classes)" in why
    assert version.gate_verdict(report(real=0.9, real_synthetic=0.9), GateParams())[0]  # an ordinary tie passes


def test_verdict_uses_the_metric_named_in_params():
    metrics = report(real=0.80, real_synthetic=0.81)
    metrics["arms"]["real"]["accuracy"]["mean"] = 0.9
    assert version.gate_verdict(metrics, GateParams())[0]
    assert not version.gate_verdict(metrics, GateParams(metric="accuracy"))[0]


def test_without_synthetic_arms_there_is_nothing_to_gate():
    passed, why = version.gate_verdict(report(real=0.8), GateParams())
    assert passed and "no synthetic arm" in why


def git(cwd, *args):
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@x", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A git repo whose dataset-v1 recorded other data than the workspace's dvc.lock; DVC calls stubbed."""
    git(tmp_path, "init", "-q", "-b", "main")
    lock = {"stages": {"assemble": {"outs": [{"path": "data/augmented", "md5": "old.dir"}]}}}
    (tmp_path / "dvc.lock").write_text(json.dumps(lock))
    git(tmp_path, "add", "dvc.lock")
    git(tmp_path, "commit", "-q", "-m", "v1")
    git(tmp_path, "tag", "dataset-v1")
    lock["stages"]["assemble"]["outs"][0]["md5"] = "new.dir"
    (tmp_path / "dvc.lock").write_text(json.dumps(lock))
    pushed = []
    monkeypatch.setattr(version, "dvc_json", lambda cwd, *args: {})
    monkeypatch.setattr(version, "push", lambda cwd, remote: pushed.append(remote))
    return tmp_path, pushed


def params(**gate):
    return validate({"prepare": {"source": {"kind": "idx", "path": "x"}}, "version": {"gate": gate}})


def test_a_refused_version_tags_and_pushes_nothing(repo):
    root, pushed = repo
    (root / paths.METRICS).mkdir()
    (root / paths.metrics_file("evaluate")).write_text(json.dumps(report(real=0.8, real_synthetic=0.6)))
    with pytest.raises(VersionError) as err:
        version.run(params(), cwd=root)
    message = str(err.value)
    assert "release gate: refused" in message and "lift -0.2000" in message
    assert "dataset-v1 stays the current version" in message
    assert "version.gate.min_lift" in message and "version.gate.enabled: false" in message
    assert git(root, "tag", "--list").split() == ["dataset-v1"] and pushed == []
    assert "new.dir" in (root / "dvc.lock").read_text()  # the rejected workspace is left as it was

    out = version.run(params(enabled=False), cwd=root)
    assert out == {"tag": "dataset-v2", "created": True, "data": "new.dir"}


def test_the_command_line_exits_3_on_a_refusal_and_2_on_an_error(repo, monkeypatch, capsys):
    """`make pipeline` reports a refusal as the pipeline's outcome (status 3), but stops on an error (2)."""
    root, _ = repo
    monkeypatch.chdir(root)
    (root / "params.yaml").write_text(yaml.safe_dump(params().model_dump(mode="json")))
    with pytest.raises(SystemExit) as missing:
        cli.main(["version"])
    assert missing.value.code == 2 and "evaluate.json: missing" in capsys.readouterr().err
    (root / paths.METRICS).mkdir()
    (root / paths.metrics_file("evaluate")).write_text(json.dumps(report(real=0.8, real_synthetic=0.6)))
    with pytest.raises(SystemExit) as refused:
        cli.main(["version"])
    assert refused.value.code == 3 and "genaug version: release gate: refused" in capsys.readouterr().err


def test_a_missing_evaluation_is_named(repo):
    root, _ = repo
    with pytest.raises(VersionError, match="evaluate.json: missing.*version.gate.enabled: false"):
        version.run(params(), cwd=root)


def test_a_passing_gate_tags_the_version_and_pushes_the_tag_to_the_git_remote(repo, tmp_path_factory):
    root, pushed = repo
    origin = tmp_path_factory.mktemp("origin")
    git(origin, "init", "-q", "--bare")
    git(root, "remote", "add", "origin", str(origin))
    (root / paths.METRICS).mkdir()
    (root / paths.metrics_file("evaluate")).write_text(json.dumps(report(real=0.7, real_synthetic=0.8)))
    settings = validate({"prepare": {"source": {"kind": "idx", "path": "x"}}, "version": {"git_remote": "origin"}})
    out = version.run(settings, cwd=root)
    assert out == {"tag": "dataset-v2", "created": True, "data": "new.dir"} and pushed == [None]
    assert git(origin, "tag", "--list").split() == ["dataset-v2"]
    assert git(origin, "rev-parse", "dataset-v2^{commit}") == git(root, "rev-parse", "HEAD")
    assert "new.dir" in git(origin, "show", "dataset-v2:dvc.lock")


def test_a_tag_the_git_remote_refuses_stays_here_with_the_fix(repo):
    root, _ = repo
    settings = validate({"prepare": {"source": {"kind": "idx", "path": "x"}},
                         "version": {"git_remote": "nowhere", "gate": {"enabled": False}}})
    with pytest.raises(VersionError, match=r"dataset-v2 was tagged here, but pushing it to git remote 'nowhere' "
                                           r"failed.*git push nowhere dataset-v2"):
        version.run(settings, cwd=root)
    assert "dataset-v2" in git(root, "tag", "--list").split()


def test_a_workspace_that_does_not_match_dvc_lock_is_not_versioned(repo, monkeypatch):
    root, pushed = repo
    monkeypatch.setattr(version, "dvc_json", lambda cwd, *args: {"evaluate": [{"changed outs": {}}]})
    with pytest.raises(VersionError, match=r"does not match dvc.lock for \['evaluate'\]: run `dvc repro` first"):
        version.run(params(enabled=False), cwd=root)
    assert git(root, "tag", "--list").split() == ["dataset-v1"] and pushed == []
