"""An S3-compatible DVC remote (dvc-s3), against a local S3 server the test starts (moto_server): push, wipe the
cache, pull back the same bytes; load_version and export read a version from it; a second clone pulls the
outputs and has nothing to run, and restores from the run-cache a stage the first clone ran and pushed."""

import hashlib
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from tests.project import dvc, run, set_params

pytestmark = pytest.mark.e2e
BUCKET = "genaug"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto's S3 server on 127.0.0.1 with an empty bucket; its endpoint URL. Stopped after the module."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=url, **{k.lower(): v for k, v in CREDENTIALS.items()
                                                     if k != "AWS_DEFAULT_REGION"}, region_name="us-east-1")
    for _ in range(100):
        try:
            client.create_bucket(Bucket=BUCKET)
            break
        except Exception:  # not listening yet
            time.sleep(0.2)
    else:
        server.kill()
        pytest.fail(f"moto_server did not start: {log.read_text()[-2000:]}")
    yield url
    server.terminate()
    server.wait(timeout=30)


def tree_hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def s3dvc(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(root, sys.executable, "-m", "dvc", *args, check=check, extra_env=CREDENTIALS)


def test_push_pull_load_and_a_second_clone_through_s3(s3, project, tmp_path, monkeypatch):
    root, _ = project   # reproduced once for the session; its outputs go to S3 from here
    dvc(root, "remote", "add", "--force", "-d", "s3", f"s3://{BUCKET}/store")
    dvc(root, "remote", "modify", "s3", "endpointurl", s3)
    run(root, "git", "commit", "-q", "-am", "an S3 remote")
    made = run(root, sys.executable, "-m", "components", "version", extra_env=CREDENTIALS)  # pushes, commits, tags
    assert "created dataset version dataset-v1" in made.stdout
    # A param change run here (evaluate reuses its finished downstream runs) and pushed with its run-cache; the
    # second clone below restores it instead of running it. Then back to the version.
    set_params(root, {"evaluate.pr_k": 2})
    assert "Running stage 'evaluate'" in s3dvc(root, "repro").stdout
    s3dvc(root, "push", "--run-cache")
    changed = {name: tree_hashes(root / name) for name in ("metrics", "plots")}
    run(root, "git", "checkout", "--", "params.yaml", "dvc.lock")

    before = tree_hashes(root / "data/augmented")
    shutil.rmtree(root / ".dvc/cache")
    shutil.rmtree(root / "data")
    s3dvc(root, "pull")
    assert tree_hashes(root / "data/augmented") == before and before

    # A consumer reads the version from S3 (the cache wiped again, so nothing local can serve it).
    shutil.rmtree(root / ".dvc/cache")
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    from components.data.versions import export_imagefolder, load_version
    version = load_version(rev="dataset-v1", repo=str(root), dest=tmp_path / "loaded")
    assert tree_hashes(version.root) == before
    assert export_imagefolder(version, tmp_path / "folder", split="train") == len(
        version.manifest[version.manifest["split"] == "train"])

    # Another machine: a clone of the version pulls every output from S3, and dvc repro finds nothing to run.
    second = tmp_path / "second"
    run(tmp_path, "git", "clone", "-q", "--branch", "dataset-v1", str(root), str(second))
    s3dvc(second, "pull")
    out = s3dvc(second, "repro")
    assert "Running stage" not in out.stdout
    assert tree_hashes(second / "data/augmented") == before

    # The run-cache travels too: the param change the first machine ran and pushed is restored here, not run
    # (DVC restores a stage only when every output of it, metrics included, is in the remote; the trainers,
    # `persist: true`, never enter the run-cache).
    set_params(second, {"evaluate.pr_k": 2})
    restored = s3dvc(second, "repro", "--pull")
    assert "Stage 'evaluate' is cached - skipping run" in restored.stdout and "Running stage" not in restored.stdout
    assert {name: tree_hashes(second / name) for name in ("metrics", "plots")} == changed
