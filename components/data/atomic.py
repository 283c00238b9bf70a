"""Atomic outputs: write to a temporary sibling, then rename, so a killed stage leaves nothing half-written."""

import errno
import json
import os
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
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
        tmp.chmod(0o777 & ~umask())  # mkdtemp's 0700 would hide the output from other users
    try:
        with output_errors(final, only_write_errors=True):
            yield tmp
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
        fd, name = tempfile.mkstemp(prefix=f".{final.name}.tmp-", dir=final.parent)
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
        else:
            raise
        raise StorageError(f"{final}: cannot write the output, {why} ({exc.strerror}: {exc.filename or final}); "
                           f"the previous {final.name}, if any, is kept. Free space or fix the permissions of "
                           f"{final.parent}, then run the stage again") from exc


def write_json(path: Path, data: Any) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_text(path: Path, text: str) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text)
