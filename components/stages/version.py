"""version: push the pipeline's data to the DVC remote, commit dvc.lock and tag the dataset version.

A version is a git tag (`dataset-vN` or a name of the user's) on a commit whose dvc.lock records the
data; `dvc get <repo> data/augmented --rev <tag>` gets it back. Running it again with the same
data/augmented creates no new version.

The release gate (version.gate) tags a new version only if evaluate's best synthetic arm is not worse
than its best non-synthetic arm by more than the threshold; otherwise nothing is pushed or tagged, the
last tag stays the current version and the workspace keeps the rejected outputs for inspection.
"""

import json
import re
import subprocess
from pathlib import Path

import yaml

from components import paths
from components.config import Params
from components.config.data import GateParams
from components.config.quality import SYNTHETIC_ARMS
from components.dvc_cli import dvc, dvc_json
from components.errors import GateRefused, VersionError

# What a version commit records: dvc.lock and the configuration. The metrics and plots are DVC outputs
# like the data (pushed with it): `dvc metrics show -a` and `dvc exp show` read them from the cache.
COMMITTED = ["dvc.lock", "dvc.yaml", "params.yaml", ".dvc/config"]


def run(params: Params, tag: str | None = None, cwd: Path = Path(".")) -> dict:
    cwd = Path(cwd)
    try:
        stale = dvc_json(cwd, "status")
    except RuntimeError as exc:
        raise VersionError(str(exc)) from None
    if stale:
        raise VersionError(
            f"the workspace does not match dvc.lock for {sorted(stale)}: run `dvc repro` first, "
            "then version what it produced")
    data_hash = augmented_hash(read_lock(cwd))
    existing = version_tags(cwd, params.version.tag_prefix)
    same = [t for t in existing if augmented_hash(read_lock(cwd, rev=t)) == data_hash]
    if not same:
        check_gate(params.version.gate, cwd, current=existing[-1] if existing else None)
    if params.version.push:
        push(cwd, params.version.remote)
    if same:
        print(f"data/augmented is unchanged since {same[-1]}: no new version")
        return {"tag": same[-1], "created": False, "data": data_hash}
    name = tag or f"{params.version.tag_prefix}{next_number(existing, params.version.tag_prefix)}"
    if name in all_tags(cwd):
        raise VersionError(f"tag {name!r} already exists for other data; pick another name with --tag")
    message = f"{name}: data/augmented {data_hash}"
    commit(cwd, message)
    git(cwd, "tag", "-a", name, "-m", message)
    print(f"created dataset version {name} (data/augmented {data_hash})")
    if params.version.git_remote:
        push_tag(cwd, params.version.git_remote, name)
    return {"tag": name, "created": True, "data": data_hash}


def check_gate(gate: GateParams, cwd: Path, current: str | None) -> None:
    """Raise GateRefused unless metrics/evaluate.json clears the release gate (VersionError: no metrics)."""
    if not gate.enabled:
        print("release gate: off (version.gate.enabled: false)")
        return
    path = cwd / paths.metrics_file("evaluate")
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        raise VersionError(f"{path.name}: missing; the release gate reads the evaluate stage's metrics: run "
                           "`dvc repro` (it runs evaluate), or turn the gate off with version.gate.enabled: false") from None
    passed, verdict = gate_verdict(report, gate)
    if passed:
        print(f"release gate: passed: {verdict}")
        return
    kept = f"{current} stays the current version" if current else "no dataset version exists yet"
    raise GateRefused(
        f"release gate: refused: {verdict}. No version was tagged or pushed; {kept}; the rejected outputs stay "
        "in the workspace for inspection (data/augmented, metrics/evaluate.json, plots/evaluate/report.md). "
        "To release anyway, lower version.gate.min_lift or set version.gate.enabled: false in params.yaml")


def gate_verdict(report: dict, gate: GateParams) -> tuple[bool, str]:
    """Whether evaluate's report clears the gate, and why, naming the arms and their scores."""
    arms = report.get("arms", {})
    means = {arm: entry[gate.metric]["mean"] for arm, entry in arms.items()}
    synthetic = {arm: v for arm, v in means.items() if arm in SYNTHETIC_ARMS}
    baseline = {arm: v for arm, v in means.items() if arm not in SYNTHETIC_ARMS}
    if not synthetic or not baseline:
        missing = "synthetic" if not synthetic else "non-synthetic"
        return True, f"evaluate ran no {missing} arm ({sorted(arms)}), so there is no lift to check"
    degenerate = degenerate_tie(list(means.values()), len(next(iter(arms.values())).get("recall", {})))
    if degenerate:
        return False, (f"every arm has {gate.metric} {next(iter(means.values())):.4f}, {degenerate}: the evaluation "
                       "cannot tell whether the synthetic data helps (a task too easy or too hard, or too little "
                       "training: evaluate.fit)")
    best_synth = max(synthetic, key=synthetic.get)
    best_base = max(baseline, key=baseline.get)
    gain = synthetic[best_synth] - baseline[best_base]
    seeds = arms[best_synth].get("seeds", "?")
    verdict = (f"the best synthetic arm {best_synth} has {gate.metric} {synthetic[best_synth]:.4f} (mean of {seeds} "
               f"seeds), the best non-synthetic arm {best_base} {baseline[best_base]:.4f}: lift {gain:+.4f}, "
               f"version.gate.min_lift {gate.min_lift:+.4f}")
    return gain >= gate.min_lift - 1e-9, verdict


def degenerate_tie(means: list[float], classes: int) -> str | None:
    """Why a tie of every arm proves nothing (all at ceiling, or all at chance: 1/classes), else None."""
    if max(means) - min(means) > 1e-9:
        return None
    if means[0] >= 1 - 1e-9:
        return "at the ceiling"
    if classes and means[0] <= 1 / classes + 1e-9:
        return f"at chance (1/{classes} classes)"
    return None


def read_lock(cwd: Path, rev: str | None = None) -> dict:
    if rev is None:
        try:
            text = (cwd / "dvc.lock").read_text()
        except FileNotFoundError:
            raise VersionError("no dvc.lock: run `dvc repro` before versioning") from None
    else:
        text = git(cwd, "show", f"{rev}:dvc.lock")
    return yaml.safe_load(text) or {}


def augmented_hash(lock: dict) -> str | None:
    for stage in lock.get("stages", {}).values():
        for out in stage.get("outs", []):
            if out.get("path") == paths.AUGMENTED.as_posix():
                return out.get("md5")
    return None


def version_tags(cwd: Path, prefix: str) -> list[str]:
    """Tags `<prefix>N`, oldest number first."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)$")
    numbered = [(int(m.group(1)), t) for t in all_tags(cwd) if (m := pattern.match(t))]
    return [t for _, t in sorted(numbered)]


def next_number(existing: list[str], prefix: str) -> int:
    return max((int(t[len(prefix):]) for t in existing), default=0) + 1


def all_tags(cwd: Path) -> list[str]:
    return git(cwd, "tag", "--list").split()


def push(cwd: Path, remote: str | None) -> None:
    args = ["push"] + (["--remote", remote] if remote else [])
    result = dvc(cwd, *args)
    if result.returncode != 0:
        raise VersionError(
            f"dvc push failed: {result.stderr.strip() or result.stdout.strip()}\n"
            "set a default remote with `dvc remote add -d <name> <dir-or-url>` (make setup does this), "
            "or name one in params.yaml version.remote")
    print(result.stdout.strip())


def push_tag(cwd: Path, remote: str, tag: str) -> None:
    """The tag (and the commit it names) to the git remote; refused: the tag stays here, with the fix."""
    try:
        git(cwd, "push", remote, f"refs/tags/{tag}")
    except VersionError as exc:
        said = " ".join(str(exc).split())
        raise VersionError(f"{tag} was tagged here, but pushing it to git remote {remote!r} failed ({said}); fix "
                           f"the remote (git remote -v) and run `git push {remote} {tag}`, or set "
                           "version.git_remote: null") from None
    print(f"pushed {tag} to git remote {remote}")


def commit(cwd: Path, message: str) -> None:
    present = [p for p in COMMITTED if (cwd / p).exists()]
    git(cwd, "add", "--", *present)
    if git(cwd, "diff", "--cached", "--name-only").strip():
        git(cwd, "commit", "-m", message)


def git(cwd: Path, *args: str) -> str:
    identity = [] if has_identity(cwd) else ["-c", "user.name=genaug", "-c", "user.email=genaug@localhost"]
    result = subprocess.run(["git", *identity, *args], cwd=cwd, text=True, capture_output=True)
    if result.returncode != 0:
        raise VersionError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def has_identity(cwd: Path) -> bool:
    result = subprocess.run(["git", "config", "user.email"], cwd=cwd, capture_output=True, text=True)
    return bool(result.stdout.strip())
