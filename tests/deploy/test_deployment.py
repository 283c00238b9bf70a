"""The Prefect deployments for real: `prefect server start` on loopback, a process work pool and two workers,
`prefect deploy` of both deployments in prefect.yaml (in the project folder; in a clone made by the pull step)
and two `prefect deployment run`s at once with parameters overridden at run time."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from tests.project import env, run

pytestmark = pytest.mark.deploy
PREFECT = [sys.executable, "-m", "prefect"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(cmd: list[str], cwd: Path, environment: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=cwd, env=environment, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_healthy(url: str, server: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"prefect server exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    pytest.fail(f"prefect server not healthy after {timeout}s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def prefect_server(tmp_path):
    port = free_port()
    environment = env()
    environment.update(PREFECT_HOME=str(tmp_path / "prefect-home"),
                       PREFECT_API_URL=f"http://127.0.0.1:{port}/api")
    log = tmp_path / "server.log"
    server = start([*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                   tmp_path, environment, log)
    try:
        wait_healthy(environment["PREFECT_API_URL"], server, log)
        yield environment
    finally:
        stop(server)


def test_two_workers_run_the_workspace_and_the_clone_deployments_at_once(prefect_server, project, tmp_path):
    """Two process workers in one pool, at most one flow run each: `default` runs in the project folder (the
    session's reproduced project: DVC re-runs what the run's override changes), `clone` the whole pipeline in a
    fresh clone of the deployed commit in a temporary folder of its worker (prefect.yaml's pull step), pushing
    its data to the DVC remote and its tag to the git origin."""
    environment = prefect_server
    root, _ = project

    def prefect(*args: str, timeout: int = 300, **extra: str) -> subprocess.CompletedProcess:
        result = subprocess.run([*PREFECT, *args], cwd=root, env={**environment, **extra}, text=True,
                                capture_output=True, timeout=timeout)
        assert result.returncode == 0, f"prefect {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result

    prefect("work-pool", "create", "genaug", "--type", "process")
    prefect("--no-prompt", "deploy", "-n", "default")
    commit = run(root, "git", "rev-parse", "HEAD").stdout.strip()
    prefect("--no-prompt", "deploy", "-n", "clone", GENAUG_REPOSITORY=str(root), GENAUG_COMMIT=commit)
    logs = [tmp_path / f"worker-{i}.log" for i in range(2)]
    workers = [start([*PREFECT, "worker", "start", "--pool", "genaug", "--limit", "1"], tmp_path, environment, log)
               for log in logs]
    runs = {
        "default": {"assemble.shard_size": 8},
        "clone": {"prepare.per_class": 7, "version.git_remote": "origin", "version.tag_prefix": "clone-v"},
    }
    try:
        watching = {name: subprocess.Popen(
            [*PREFECT, "deployment", "run", f"augment/{name}", "--param", f"overrides={json.dumps(overrides)}",
             "--watch"], cwd=root, env=environment, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            for name, overrides in runs.items()}
        outputs = {name: process.communicate(timeout=1200)[0] for name, process in watching.items()}
        codes = {name: process.returncode for name, process in watching.items()}
    finally:
        for worker in workers:
            stop(worker)
    worker_logs = "\n".join(log.read_text()[-4000:] for log in logs)
    for name, output in outputs.items():
        assert codes[name] == 0 and "finished successfully in 'Completed'" in output, \
            f"{name}:\n{output}\n{worker_logs}"
    # one run on each worker, with each stage's own log lines
    assert all("Running stage 'assemble'" in log.read_text() for log in logs)

    logs_text = "".join(log.read_text() for log in logs)
    for stage in ("prepare", "train_generator", "filter"):  # the workspace's run re-ran only what changed
        assert f"stage {stage} is up to date: skipped" in logs_text
    shards = {p.name for p in (root / "data/augmented/images").iterdir()}
    assert "train-real-00004.npy" in shards  # the run-time override took: 33 train images, 8 per shard
    assert run(root, "git", "tag", "--list").stdout.split() == ["clone-v1", "dataset-v1"]
    # The clone's version: its own commit on top of the deployed one, its data (6 train images a class) in the
    # DVC remote, where a consumer gets it by tag.
    assert run(root, "git", "rev-parse", "clone-v1^{commit}~1").stdout.strip() == commit
    assert "prepare:" in run(root, "git", "show", "clone-v1:dvc.lock").stdout
    consumer = tmp_path / "consumer"
    run(tmp_path, sys.executable, "-m", "dvc", "get", str(root), "data/augmented/manifest.parquet", "--rev",
        "clone-v1", "-o", str(consumer / "manifest.parquet"))
    theirs = pd.read_parquet(consumer / "manifest.parquet")
    theirs = theirs[(theirs["split"] == "train") & (theirs["source"] == "real")]
    assert theirs.groupby("class_name").size().tolist() == [6, 6, 6]
    card = json.loads(prefect("artifact", "inspect", "dataset-card", "-o", "json").stdout)
    assert "Training images per class and source" in card[0]["data"]
    grid = json.loads(prefect("artifact", "inspect", "data-models-generator-samples-png", "-o", "json").stdout)
    assert "data:image/png;base64," in grid[0]["data"]
