"""The workspace lock: one pipeline run at a time in a repository folder.

A stage run from the command line (as `dvc repro` runs them), the Prefect flow (for its whole run: params
overrides, every stage, versioning) and `version` hold `.genaug.lock` in the repository root while they run.
A second run fails at once, naming who holds the lock. The holder passes its token to the processes it
starts (GENAUG_LOCK in their environment), so the stages of one flow run, several at once, do not refuse
each other. A lock whose process is gone (same host, dead pid) is taken over with a warning.
"""

import fcntl
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from components.data.atomic import pid_alive
from components.errors import GenaugError

log = logging.getLogger("genaug")

LOCK_FILE = ".genaug.lock"
TOKEN = "GENAUG_LOCK"  # the environment variable that carries the holder's token to its child processes


class WorkspaceBusy(GenaugError):
    """Another pipeline run holds this workspace."""


@contextmanager
def hold(root: Path, what: str) -> Iterator[None]:
    """Hold the workspace lock of `root` while the block runs (`what` says who, for the message); within a
    process that holds it already (its token in the environment) this is a no-op."""
    path = Path(root) / LOCK_FILE
    if os.environ.get(TOKEN) and holder(path).get("token") == os.environ[TOKEN]:
        yield
        return
    token = uuid.uuid4().hex
    take(path, {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                "what": what, "token": token})
    previous = os.environ.get(TOKEN)
    os.environ[TOKEN] = token
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(TOKEN, None)
        else:
            os.environ[TOKEN] = previous
        if holder(path).get("token") == token:
            path.unlink(missing_ok=True)


def take(path: Path, record: dict) -> None:
    """Create the lock file, or take over a stale one; WorkspaceBusy when a live process holds it."""
    draft = path.with_name(f"{path.name}.{record['token']}")
    draft.write_text(json.dumps(record))
    try:
        for _ in range(3):  # a stale lock removed by another process at the same moment: try again
            if claim(draft, path):
                return
            other = holder(path)
            if alive(other):
                raise WorkspaceBusy(
                    f"{path.parent.resolve()}: another run holds this workspace: {other.get('what', '?')} (pid "
                    f"{other.get('pid', '?')} on {other.get('host', '?')}, since {other.get('started', '?')}). "
                    f"Wait for it to finish; if that process is gone, delete {path}")
            if remove_stale(path, other):
                log.warning("%s: taking over the lock of %s (pid %s on %s, since %s): that process is gone", path,
                            other.get("what", "?"), other.get("pid", "?"), other.get("host", "?"),
                            other.get("started", "?"))
    finally:
        draft.unlink(missing_ok=True)
    raise WorkspaceBusy(f"{path}: could not take the workspace lock; delete it if no run is going on")


def remove_stale(path: Path, stale: dict) -> bool:
    """Remove the lock if it still holds the `stale` record. Two processes that found the same stale lock
    would otherwise both remove it, the slower one removing the lock the faster one had just taken; so the
    check and the removal happen under an flock (released by the kernel if its holder dies: never stale)."""
    with open(path.with_name(f"{path.name}.takeover"), "a") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        if holder(path).get("token") != stale.get("token"):
            return False
        path.unlink(missing_ok=True)
        return True


def claim(draft: Path, path: Path) -> bool:
    """Link the written record to the lock's name: the lock appears whole or not at all (never half-written)."""
    try:
        os.link(draft, path)
        return True
    except FileExistsError:
        return False


def holder(path: Path) -> dict:
    """The lock's record ({} when there is no lock, or it is unreadable)."""
    try:
        record = json.loads(path.read_text())
        return record if isinstance(record, dict) else {}
    except (OSError, ValueError):
        return {}


def alive(record: dict) -> bool:
    """Whether the holder may still run: a live pid on this host, or any holder on another host (whose
    processes this one cannot see)."""
    if not record:
        return False
    if record.get("host") != socket.gethostname():
        return True
    pid = record.get("pid")
    return isinstance(pid, int) and pid_alive(pid)
