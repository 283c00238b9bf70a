"""Fan-out over Dask (components/fanout.py): generate, denoise, upscale, the filter's scoring and evaluate's
runs go to a local Dask cluster of 1 and of 4 worker processes, or to the stage's own (`local:2`), and give the
same bytes as the in-process run of `dvc repro`. The stages run in this process (as the CLI would run them), their pieces on the workers."""

import hashlib
import os
import shutil
from contextlib import contextmanager

import pytest
import torch

from components import fanout, paths
from components.config import load_params
from components.stages import denoise, evaluate, filter as filter_stage, generate, upscale

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.e2e
STAGES = [generate, denoise, upscale, filter_stage, evaluate]
OUTPUTS = ["data/generated", "data/denoised", "data/upscaled", "data/filtered"]
REPORTS = ["metrics/evaluate.json", "plots/evaluate/runs.csv"]


def digests(root) -> dict[str, str]:
    """sha256 of every shard and manifest the four data stages wrote, and of evaluate's scores."""
    files = [p for out in OUTPUTS for p in sorted((root / out).rglob("*"))
             if p.is_file() and (p.suffix == ".npy" or p.name == "manifest.parquet")]
    files += [root / name for name in REPORTS]
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@contextmanager
def local_cluster(workers: int):
    """Worker processes on 127.0.0.1. Starting them sets OMP_NUM_THREADS=1 in this process's environment
    (distributed's nanny.pre-spawn-environ), which a stage command started from here would inherit: a driver
    at another thread count than the `dvc repro` it is compared with scores with other low bits. Put it back."""
    saved = dict(os.environ)
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        os.environ.clear()
        os.environ.update(saved)
        yield cluster


@pytest.fixture
def one_torch_thread():
    """The stages run here at the thread count the project's `dvc repro` ran at (tests/project.py: env)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_shards_are_byte_identical_whatever_the_worker_count(project, monkeypatch, capsys, one_torch_thread):
    root, _ = project
    monkeypatch.chdir(root)
    sequential = digests(root)
    for out in OUTPUTS:  # several pieces per stage
        assert sum(name.startswith(out) and name.endswith(".npy") for name in sequential) >= 2, out
    for workers in (1, 4):
        shutil.rmtree(paths.EVALUATION_RUNS, ignore_errors=True)  # or evaluate would read its finished runs back
        with local_cluster(workers) as cluster:
            monkeypatch.setenv(fanout.ENV, cluster.scheduler_address)
            for stage in STAGES:
                stage.run(load_params())
                assert f"on the Dask cluster at {cluster.scheduler_address}" in capsys.readouterr().out
        assert digests(root) == sequential, f"{workers} worker(s)"


def test_a_local_cluster_gives_the_same_bytes(project, monkeypatch, capsys, one_torch_thread):
    """GENAUG_DASK_SCHEDULER=local:2: a stage starts its own two worker processes (evaluate's runs, CAS among
    them, two at a time) and writes what the in-process run wrote. Two stages: the pieces travel as above; what
    is new is the cluster each stage starts."""
    root, _ = project
    monkeypatch.chdir(root)
    sequential = digests(root)
    shutil.rmtree(paths.EVALUATION_RUNS, ignore_errors=True)
    monkeypatch.setenv(fanout.ENV, "local:2")
    for stage in (generate, evaluate):
        stage.run(load_params())
        assert "pieces in 2 local Dask worker processes" in capsys.readouterr().out
    assert digests(root) == sequential
    assert (paths.EVALUATION_RUNS / "cas-seed0").is_dir()
