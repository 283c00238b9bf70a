"""Parameter sweeps with DVC's experiment queue: two queued experiments run by two workers (`dvc queue start
-j 2`), each in its own temporary workspace, and `dvc exp show` reports their params and metrics. (That both
ran at the same moment is not asserted: on tiny data they finish between two polls of `dvc queue status`.)"""

import json
import time

import pytest

from tests.project import dvc, run

pytestmark = pytest.mark.e2e


def queue_states(root) -> dict[str, str]:
    """Experiment name -> state (Queued, Running, Success, Failed) from `dvc queue status`."""
    rows = (line.split() for line in dvc(root, "queue", "status").stdout.splitlines()[1:])
    return {parts[1]: parts[-1] for parts in rows  # task, name, created (2 words), status; then worker lines
            if len(parts) >= 4 and parts[-1] in ("Queued", "Running", "Success", "Failed")}


def test_two_queued_experiments_run_with_two_workers(project):
    root, _ = project
    run(root, "git", "add", "-A")
    run(root, "git", "commit", "-q", "-m", "reproduced")
    # A param of the last data stage: each experiment re-runs assemble and evaluate, the rest comes from the cache
    for n in (8, 32):
        dvc(root, "exp", "run", "--queue", "-n", f"n{n}", "-S", f"assemble.shard_size={n}")
    dvc(root, "queue", "start", "-j", "2")
    deadline = time.monotonic() + 900
    try:
        while time.monotonic() < deadline:
            states = queue_states(root)
            if states and all(s in ("Success", "Failed") for s in states.values()):
                break
            time.sleep(1)
    finally:
        dvc(root, "queue", "stop", "--kill", check=False)
    assert states == {"n8": "Success", "n32": "Success"}, dvc(root, "queue", "logs", "n8", check=False).stdout
    shown = json.loads(dvc(root, "exp", "show", "--json").stdout)
    experiments = {exp["name"]: exp for commit in shown for exp in commit.get("experiments") or []}
    for n, other in ((8, 32), (32, 8)):
        data = experiments[f"n{n}"]["revs"][0]["data"]
        assert data["params"]["params.yaml"]["data"]["assemble"]["shard_size"] == n
        # Its metrics reach `dvc exp show` (DVC outputs, read from the cache), and it ran assemble with its
        # shard size: its data/augmented differs from the other's.
        assert data["metrics"]["metrics/assemble.json"]["data"] and data["metrics"]["metrics/evaluate.json"]["data"]
        assert data["deps"]["data/augmented"]["hash"] != experiments[f"n{other}"]["revs"][0]["data"]["deps"][
            "data/augmented"]["hash"]
