"""Fixtures shared by the end-to-end and deployment tests: a project reproduced once per test session, and a
fresh copy of it per test, so the tests pass in any order and share the one `dvc repro`."""

import shutil

import pytest

from tests.project import dvc, make_project


@pytest.fixture(scope="session")
def reproduced(tmp_path_factory):
    """The project after its first `dvc repro` and that run's output; only ever copied, never changed."""
    base = tmp_path_factory.mktemp("e2e")
    root = make_project(base / "project", remote=base / "remote")
    return root, dvc(root, "repro")


@pytest.fixture
def project(reproduced, tmp_path):
    """A fresh copy of the reproduced project for one test. Git and DVC keep relative paths inside it (the
    DVC cache is its .dvc/cache), so the copy works where it lies; its remote is the base's, outside it."""
    root, first = reproduced
    copy = tmp_path / "project"
    shutil.copytree(root, copy, symlinks=True)
    return copy, first
