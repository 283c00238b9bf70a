"""The workspace lock: a second run in the same folder fails at once naming the holder; a dead holder's lock is
taken over; the processes a holder starts share its lock; the lock goes when the run ends, however it ends."""

import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from components import workspace
from components.data.atomic import zombie
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


@pytest.mark.parametrize("reaped", [True, False])
def test_a_dead_holders_lock_is_taken_over_with_a_warning(tmp_path, caplog, reaped):
    """Dead, or killed and not yet reaped (a zombie: `dvc repro` killed with its stage, whose zombie waits
    for PID 1, which may take a second or more)."""
    gone = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    gone.kill()
    if reaped:
        gone.wait()
    else:
        while not zombie(gone.pid):
            time.sleep(0.01)
    write_lock(tmp_path, gone.pid)
    with caplog.at_level(logging.WARNING, logger="genaug"):
        with hold(tmp_path, "genaug prepare"):
            assert lock_of(tmp_path)["pid"] == os.getpid()
    assert f"taking over the lock of genaug train_judge (pid {gone.pid}" in caplog.text
    gone.wait()


def test_a_stale_lock_another_process_took_over_first_is_not_removed(tmp_path, live_pid):
    """Two runs find the same dead holder's lock; the faster one takes it over. The slower one, acting on what
    it read before, must not remove the faster one's fresh lock: it finds the workspace busy."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    write_lock(tmp_path, gone.pid)
    stale = lock_of(tmp_path)
    (tmp_path / LOCK_FILE).write_text(json.dumps({**stale, "pid": live_pid, "token": "faster"}))  # the faster run
    assert not workspace.remove_stale(tmp_path / LOCK_FILE, stale)
    assert lock_of(tmp_path)["token"] == "faster"
    with pytest.raises(WorkspaceBusy, match=f"pid {live_pid}"):
        with hold(tmp_path, "genaug prepare"):
            pass


def test_many_runs_racing_for_a_stale_lock_leave_one_holder(tmp_path):
    """Eight processes started at once on a dead holder's lock: exactly one gets the workspace."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    write_lock(tmp_path, gone.pid)
    racer = ("import sys, time\nfrom pathlib import Path\nfrom components.workspace import WorkspaceBusy, hold\n"
             "try:\n    with hold(Path(sys.argv[1]), 'racer'):\n        time.sleep(2)\n        print('held')\n"
             "except WorkspaceBusy:\n    print('busy')\n")
    racers = [subprocess.Popen([sys.executable, "-c", racer, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE,
                               text=True) for _ in range(8)]
    said = sorted(r.communicate(timeout=120)[0].strip() for r in racers)
    assert said == ["busy"] * 7 + ["held"]
    assert not (tmp_path / LOCK_FILE).exists()


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
