"""The Prefect deployment for real: `prefect server start` on loopback, a process work pool and worker,
`prefect deploy` from prefect.yaml and `prefect deployment run` with a parameter overridden at run time."""

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

from tests.project import env, make_project, run

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


def test_deployment_run_on_a_process_worker(prefect_server, tmp_path):
    environment = prefect_server
    root = make_project(tmp_path / "project", remote=tmp_path / "remote")

    def prefect(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
        result = subprocess.run([*PREFECT, *args], cwd=root, env=environment, text=True,
                                capture_output=True, timeout=timeout)
        assert result.returncode == 0, f"prefect {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result

    prefect("work-pool", "create", "genaug", "--type", "process")
    prefect("--no-prompt", "deploy", "--all")
    worker_log = tmp_path / "worker.log"
    worker = start([*PREFECT, "worker", "start", "--pool", "genaug"], root, environment, worker_log)
    try:
        result = prefect("deployment", "run", "augment/default",
                         "--param", 'overrides={"prepare.per_class": 6}', "--watch", timeout=900)
    finally:
        stop(worker)
    assert "Completed" in result.stdout, result.stdout + worker_log.read_text()[-5000:]

    manifest = pd.read_parquet(root / "data/augmented/manifest.parquet")
    real = manifest[(manifest["split"] == "train") & (manifest["source"] == "real")]
    assert real.groupby("class_name").size().tolist() == [5, 5, 5]  # the run-time override took
    assert run(root, "git", "tag", "--list").stdout.split() == ["dataset-v1"]
    assert "Running stage 'prepare'" in worker_log.read_text()  # each stage's own log lines
    card = json.loads(prefect("artifact", "inspect", "dataset-card", "-o", "json").stdout)
    assert "Training images per class and source" in card[0]["data"]
    grid = json.loads(prefect("artifact", "inspect", "data-models-generator-samples-png", "-o", "json").stdout)
    assert "data:image/png;base64," in grid[0]["data"]
