"""version: push the pipeline's data to the DVC remote, commit dvc.lock and tag the dataset version.

A version is a git tag (`dataset-vN` or a name of the user's) on a commit whose dvc.lock records the
data; `dvc get <repo> data/augmented --rev <tag>` gets it back. Running it again with the same
data/augmented creates no new version.
"""

import re
import subprocess
from pathlib import Path

import yaml

from components import paths
from components.config import Params
from components.dvc_cli import dvc, dvc_json
from components.errors import VersionError

# What a version commit records besides dvc.lock: the configuration and the small metric files.
COMMITTED = ["dvc.lock", "dvc.yaml", "params.yaml", ".dvc/config"]
FORCE_ADDED = [paths.METRICS, paths.PLOTS]


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
    return {"tag": name, "created": True, "data": data_hash}


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


def commit(cwd: Path, message: str) -> None:
    present = [p for p in COMMITTED if (cwd / p).exists()]
    git(cwd, "add", "--", *present)
    forced = [str(p) for p in FORCE_ADDED if (cwd / p).exists()]
    if forced:
        git(cwd, "add", "--force", "--", *forced)
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
