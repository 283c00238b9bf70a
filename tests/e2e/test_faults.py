"""Faults injected for real into a DVC project: kill -9 of `python -m components version` while `dvc push`
copies the data to the remote and while git commits the version (the next run versions what an uninterrupted
run versions: one tag, on one commit whose dvc.lock is the workspace's, every object in the remote, the bytes
a consumer gets equal to the workspace's); a corrupt file in DVC's cache (noticed, never read as images)."""

import hashlib

import os
import shutil
import signal
import subprocess
import sys
import time


from tests.project import dvc, env, run

# Loaded by every Python process of the run (PYTHONPATH): once KILL_AFTER files have landed in the DVC remote at
# KILL_REMOTE (DVC copies each to a temporary name, then renames it), the whole process group gets SIGKILL.
KILL_DURING_PUSH = """
import os, signal
remote, after, landed = os.environ.get("KILL_REMOTE"), int(os.environ.get("KILL_AFTER", "1")), []
def counting(move):
    def wrapped(src, dst, *args, **kwargs):
        move(src, dst, *args, **kwargs)
        if os.path.abspath(os.fspath(dst)).startswith(remote):
            landed.append(dst)
            if len(landed) >= after:
                os.killpg(0, signal.SIGKILL)
    return wrapped
if remote:
    os.replace, os.rename = counting(os.replace), counting(os.rename)
"""


def version(root, **kwargs):
    return run(root, sys.executable, "-m", "components", "version", **kwargs)


def tags(root):
    return run(root, "git", "tag", "--list").stdout.split()


def assert_versioned_once(root, tmp_path):
    assert tags(root) == ["dataset-v1"]
    assert run(root, "git", "show", "dataset-v1:dvc.lock").stdout == (root / "dvc.lock").read_text()
    subjects = run(root, "git", "log", "--format=%s").stdout.splitlines()
    assert sum(s.startswith("dataset-v1:") for s in subjects) == 1, subjects
    assert dvc(root, "status", "--cloud", "--json").stdout.strip() in ("", "{}")  # nothing left to push
    # What a consumer gets, from the remote alone (the project's DVC cache gone): the workspace's bytes.
    shutil.rmtree(root / ".dvc/cache")
    dvc(tmp_path, "get", (root / "").as_uri(), "data/augmented", "--rev", "dataset-v1", "-o", "got")
    files = [p for p in sorted((root / "data/augmented").rglob("*")) if p.is_file()]
    assert files and all((tmp_path / "got" / p.relative_to(root / "data/augmented")).read_bytes() == p.read_bytes()
                         for p in files)


def test_version_killed_in_dvc_push_then_in_git_commit_then_after_it_versions_once(project, tmp_path):
    """Three runs killed in turn, each starting from what the last one left: during `dvc push` (the remote holds
    part of the data), in git's commit-msg hook (before the commit is written) and in its post-commit hook (the
    commit written, no tag yet). A fourth run then versions what one uninterrupted run versions."""
    root, _ = project
    remote = tmp_path / "remote"
    dvc(root, "remote", "add", "--force", "-d", "mine", str(remote))  # an empty remote of its own
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(KILL_DURING_PUSH)
    killed = subprocess.run([sys.executable, "-m", "components", "version"], cwd=root, text=True,
                            capture_output=True, timeout=300, start_new_session=True,
                            env={**env(), "PYTHONPATH": str(site), "KILL_REMOTE": str(remote), "KILL_AFTER": "2"})
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    assert len([p for p in remote.rglob("*") if p.is_file()]) >= 2
    assert dvc(root, "status", "--cloud", "--json").stdout.strip() not in ("", "{}")  # pushed in part
    assert tags(root) == []

    head = run(root, "git", "rev-parse", "HEAD").stdout
    kill_in_hook(root, "commit-msg", tmp_path / "in-commit-msg")
    assert run(root, "git", "rev-parse", "HEAD").stdout == head and tags(root) == []
    kill_in_hook(root, "post-commit", tmp_path / "in-post-commit")
    assert run(root, "git", "rev-parse", "HEAD").stdout != head and tags(root) == []

    again = version(root)
    assert "created dataset version dataset-v1" in again.stdout
    assert "that process is gone" in again.stderr  # the killed run's workspace lock, taken over
    assert_versioned_once(root, tmp_path)


def kill_in_hook(root, hook, entered):
    """Run version until git runs `hook`, then kill -9 its process group (version, git and the hook)."""
    script = root / ".git/hooks" / hook
    script.write_text(f"#!/bin/sh\ntouch '{entered}'\nsleep 120\n")
    script.chmod(0o755)
    process = subprocess.Popen([sys.executable, "-m", "components", "version"], cwd=root, env=env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not entered.exists():
        assert process.poll() is None and time.monotonic() < deadline, f"version ended before git ran {hook}"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    script.unlink()


def test_a_corrupt_dvc_cache_file_is_noticed_and_never_read_as_images(project, tmp_path):
    """A cache file rewritten (new mtime): `dvc status` says it is not in the cache, `dvc checkout` refuses it
    and `dvc pull` brings the remote's copy. A flipped bit (size and mtime kept): DVC trusts its recorded hash
    and checks the file out as it is, and the stage that reads it stops with the cache file to delete; done as
    it says, the stage runs."""
    root, _ = project
    dvc(root, "remote", "add", "--force", "-d", "mine", str(tmp_path / "remote"))
    dvc(root, "push", "data/prepared")
    shard = root / "data/prepared/images/train-00000.npy"
    good = shard.read_bytes()
    md5 = hashlib.md5(good).hexdigest()
    cache = root / ".dvc/cache/files/md5" / md5[:2] / md5[2:]

    damage(cache, keep_mtime=False)
    assert "not in cache" in dvc(root, "status").stdout
    shard.unlink()
    assert dvc(root, "checkout", "data/prepared", check=False).returncode != 0 and not shard.exists()
    dvc(root, "pull", "data/prepared")
    assert shard.read_bytes() == good and cache.read_bytes() == good

    dvc(root, "status")  # DVC records the cache file's mtime with its hash
    damage(cache, keep_mtime=True)
    shard.unlink()
    dvc(root, "checkout", "data/prepared")
    assert shard.exists() and shard.read_bytes() != good  # DVC did not notice
    stage = [sys.executable, "-m", "components", "train_scorer"]
    refused = run(root, *stage, check=False)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "train-00000.npy: corrupt" in refused.stderr and f"{md5[:2]}/{md5[2:]} is corrupt too" in refused.stderr
    shard.unlink()
    cache.unlink()
    dvc(root, "pull", "data/prepared")
    assert shard.read_bytes() == good
    run(root, *stage)


def damage(path, keep_mtime):
    """Flip one bit of the file's last byte (a pixel: the shard still loads)."""
    before = path.stat()
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    if keep_mtime:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
