"""The workspace lock: a second run in the same folder fails at once naming the holder; a dead holder's lock is
taken over; the processes a holder starts share its lock; the lock goes when the run ends, however it ends."""

import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from components.workspace import LOCK_FILE, TOKEN, WorkspaceBusy, hold

REPO = Path(__file__).resolve().parents[2]


def lock_of(root: Path) -> dict:
    return json.loads((root / LOCK_FILE).read_text())


def write_lock(root: Path, pid: int, host: str | None = None) -> None:
    (root / LOCK_FILE).write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(),
                                              "started": "2026-12-01 08:00:00 UTC", "what": "genaug train_judge",
                                              "token": "other"}))


@pytest.fixture
def live_pid():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process.pid
    process.kill()
    process.wait()


def test_the_lock_is_held_during_the_run_and_gone_after_even_on_error(tmp_path):
    with hold(tmp_path, "genaug prepare"):
        record = lock_of(tmp_path)
        assert record["pid"] == os.getpid() and record["what"] == "genaug prepare"
        assert os.environ[TOKEN] == record["token"]
    assert not (tmp_path / LOCK_FILE).exists() and TOKEN not in os.environ
    with pytest.raises(RuntimeError):
        with hold(tmp_path, "genaug prepare"):
            raise RuntimeError("the stage failed")
    assert not (tmp_path / LOCK_FILE).exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no draft left behind


def test_a_second_run_fails_at_once_naming_the_holder(tmp_path, live_pid):
    write_lock(tmp_path, live_pid)
    with pytest.raises(WorkspaceBusy, match=rf"genaug train_judge \(pid {live_pid} on .*since 2026-12-01 08:00:00 "
                                            rf"UTC\).*if that process is gone, delete .*{LOCK_FILE}"):
        with hold(tmp_path, "the Prefect flow augment"):
            pytest.fail("ran while another run held the workspace")
    assert lock_of(tmp_path)["pid"] == live_pid  # the holder's lock is left alone


def test_a_holder_on_another_host_counts_as_alive(tmp_path):
    write_lock(tmp_path, 1, host="some-other-box")
    with pytest.raises(WorkspaceBusy, match="some-other-box"):
        with hold(tmp_path, "genaug version"):
            pass


def test_a_dead_holders_lock_is_taken_over_with_a_warning(tmp_path, caplog):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    write_lock(tmp_path, gone.pid)
    with caplog.at_level(logging.WARNING, logger="genaug"):
        with hold(tmp_path, "genaug prepare"):
            assert lock_of(tmp_path)["pid"] == os.getpid()
    assert f"taking over the lock of genaug train_judge (pid {gone.pid}" in caplog.text


def test_processes_a_holder_starts_share_its_lock(tmp_path):
    with hold(tmp_path, "the Prefect flow augment"):
        outer = lock_of(tmp_path)
        with hold(tmp_path, "genaug train_scorer"):  # as a stage the flow started: same token
            assert lock_of(tmp_path) == outer
        assert lock_of(tmp_path) == outer  # the inner run does not release the outer's lock


def test_a_stage_from_the_command_line_refuses_a_held_workspace(tmp_path, live_pid):
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    write_lock(tmp_path, live_pid)
    env = {k: v for k, v in os.environ.items() if k != TOKEN}
    result = subprocess.run([sys.executable, "-m", "components", "prepare"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "another run holds this workspace" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "data").exists()
