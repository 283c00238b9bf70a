"""Atomic outputs: write to a temporary sibling, then rename, so a killed stage leaves nothing half-written.

A temporary sibling's name holds its writer's pid (`.<name>.tmp-<pid>-...`, `.<name>.old-<pid>`): the next
write of the same output removes what a killed writer left (kill -9 runs no clean-up), and puts a previous
output back that a kill between atomic_dir's two renames had moved aside.
"""

import errno
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from components.errors import StorageError

# Errors of the output's file system, whatever the block was doing (a read would not raise them).
WRITE_ERRORS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
                errno.EROFS: "the file system is read-only"}
PERMISSION = "no permission to write there"
SHORT_WRITE = "the disk is full (a write was cut short)"  # numpy's tofile says only "N requested and M written"
log = logging.getLogger(__name__)


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield an empty temporary folder that replaces `final` only if the block succeeds."""
    final = Path(final)
    with output_errors(final):
        final.parent.mkdir(parents=True, exist_ok=True)
        clear_leftovers(final)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-{os.getpid()}-", dir=final.parent))
        tmp.chmod(0o777 & ~umask())  # mkdtemp's 0700 would hide the output from other users
    try:
        with output_errors(final, only_write_errors=True):
            yield tmp
    except StorageError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if tmp in getattr(exc, "output", tmp).parents:
            # a file written atomically inside the folder: name this output (its previous version is what is
            # kept), not a temporary file the user never sees
            raise storage_error(final, exc.why, exc.__cause__) from exc.__cause__
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    with output_errors(final):
        if final.exists():
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)


@contextmanager
def atomic_file(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside `final`; it is renamed onto `final` if the block succeeds."""
    final = Path(final)
    with output_errors(final):
        final.parent.mkdir(parents=True, exist_ok=True)
        clear_leftovers(final)
        fd, name = tempfile.mkstemp(prefix=f".{final.name}.tmp-{os.getpid()}-", dir=final.parent)
        os.close(fd)
    tmp = Path(name)
    try:
        with output_errors(final, only_write_errors=True):
            yield tmp
        with output_errors(final):
            tmp.chmod(0o666 & ~umask())  # mkstemp's 0600, as if the file had been opened for writing
            os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def clear_leftovers(final: Path) -> None:
    """Remove the temporary siblings of `final` whose writer is dead; if `final` is missing and a dead writer
    had moved the previous output aside, put it back."""
    for sibling in sorted(final.parent.glob(f".{glob_escape(final.name)}.*")):
        kind, _, rest = sibling.name[len(final.name) + 2:].partition("-")
        pid = rest.split("-")[0]
        if kind not in ("tmp", "old") or not pid.isdigit() or pid_alive(int(pid)):
            continue
        if kind == "old" and not final.exists():
            sibling.rename(final)
            log.warning("%s: put back the previous output, which a killed run (pid %s) had moved aside", final, pid)
            continue
        if sibling.is_dir() and not sibling.is_symlink():
            shutil.rmtree(sibling, ignore_errors=True)
        else:
            sibling.unlink(missing_ok=True)
        log.warning("%s: removed %s, left half-written by a killed run (pid %s)", final, sibling.name, pid)


def pid_alive(pid: int) -> bool:
    """Whether a process of this host has that pid (a pid reused since counts as alive: nothing is removed).
    A zombie is dead: a killed process whose parent died too stays one until PID 1 reaps it, which can take
    a second or more (or forever, in a container whose PID 1 does not reap)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return not zombie(pid)


def zombie(pid: int) -> bool:
    """Whether the process has exited and waits to be reaped (Linux's /proc; elsewhere: not known, False)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].startswith(("Z", "X"))  # the state follows the (command name)


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


@contextmanager
def output_errors(final: Path, only_write_errors: bool = False) -> Iterator[None]:
    """OSErrors of writing `final` as a StorageError that says what to do. Inside the caller's block, where
    inputs are read too, only the errors no read raises (disk full, read-only)."""
    try:
        yield
    except OSError as exc:
        if exc.errno in WRITE_ERRORS:
            why = WRITE_ERRORS[exc.errno]
        elif exc.errno in (errno.EACCES, errno.EPERM) and not only_write_errors:
            why = PERMISSION
        elif exc.errno is None and re.fullmatch(r"\d+ requested and \d+ written", str(exc)):
            why = SHORT_WRITE
        else:
            raise
        raise storage_error(final, why, exc) from exc


def storage_error(final: Path, why: str, exc: OSError) -> StorageError:
    error = StorageError(f"{final}: cannot write the output, {why} ({exc.strerror or exc}: "
                         f"{exc.filename or final}); the previous {final.name}, if any, is kept. Free space or fix "
                         f"the permissions of {final.parent}, then run the stage again")
    error.output, error.why = final, why
    return error


def write_json(path: Path, data: Any) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_text(path: Path, text: str) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text)
