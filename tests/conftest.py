"""Fixtures shared by the end-to-end and deployment tests: a project reproduced once per `pytest` run (under
pytest-xdist, by the first test process that needs it, while the others wait for it), and a fresh copy of it
per test, so the tests pass in any order and share the one `dvc repro`."""

import fcntl
import json
import os
import shutil
import subprocess

import pytest

from tests.project import dvc, make_project


@pytest.fixture(scope="session")
def reproduced(tmp_path_factory):
    """The project after its first `dvc repro` and that run's output; only ever copied, never changed."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # under pytest-xdist (gw0, gw1, ...)
        shared = shared.parent  # the folder every test process's temporary folder lies in
    base, record = shared / "e2e", shared / "e2e" / "repro.json"
    with open(shared / "e2e.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        if not record.exists():
            shutil.rmtree(base, ignore_errors=True)  # what a failed attempt left
            root = make_project(base / "project", remote=base / "remote")
            first = dvc(root, "repro")
            record.write_text(json.dumps({"args": first.args, "returncode": first.returncode,
                                          "stdout": first.stdout, "stderr": first.stderr}))
    return base / "project", subprocess.CompletedProcess(**json.loads(record.read_text()))


@pytest.fixture
def project(reproduced, tmp_path):
    """A fresh copy of the reproduced project for one test. Git and DVC keep relative paths inside it (the
    DVC cache is its .dvc/cache), so the copy works where it lies; its remote is the base's, outside it."""
    root, first = reproduced
    copy = tmp_path / "project"
    shutil.copytree(root, copy, symlinks=True)
    return copy, first
