"""ordered_map (components/fanout.py): pieces in order, here or on a Dask cluster; pieces that need a GPU
never share one; a scheduler that is not there is a clear error. The byte-identical stage outputs are
tests/e2e/test_dask_fanout.py."""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from components import fanout
from components.errors import ClusterError

distributed = pytest.importorskip("distributed")
import dask.config  # noqa: E402  (distributed brings dask)


def test_gpu_pieces_never_share_a_worker(monkeypatch):
    """Two workers that each hold one (fake) GPU and two threads: eight GPU pieces, at most one per worker at
    a time, and both workers used."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=False, dashboard_address=None,
                                  resources={"GPU": 1}) as cluster:
        monkeypatch.setenv(fanout.ENV, cluster.scheduler_address)
        spans = list(fanout.ordered_map(busy, range(8), gpu=True))
    assert [piece for piece, *_ in spans] == list(range(8))
    workers = {worker for _, worker, _, _ in spans}
    assert len(workers) == 2
    for worker in workers:
        mine = sorted((start, end) for _, w, start, end in spans if w == worker)
        assert all(end <= next_start for (_, end), (next_start, _) in zip(mine, mine[1:])), mine


def busy(piece: int) -> tuple[int, str, float, float]:
    start = time.monotonic()
    time.sleep(0.2)
    return piece, distributed.get_worker().address, start, time.monotonic()


def test_an_unreachable_scheduler_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(fanout.ENV, "tcp://127.0.0.1:9")  # the discard port: nothing listens there
    monkeypatch.setattr(fanout, "CONNECT_TIMEOUT", "2s")
    with pytest.raises(ClusterError, match="no Dask scheduler answers there.*unset the variable"):
        list(fanout.ordered_map(busy, range(2)))


def test_without_a_scheduler_pieces_run_here_in_order(monkeypatch):
    monkeypatch.delenv(fanout.ENV, raising=False)
    seen = []
    assert list(fanout.ordered_map(lambda x, k: (seen.append(threading.get_ident()), x * k)[1], range(5), k=3)) \
        == [0, 3, 6, 9, 12]
    assert set(seen) == {threading.get_ident()}


MAPPED_BLOCKS = """
import ctypes
from components import fanout

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p

def mapped_after_a_megabyte():
    before = libc.mallinfo2().hblks
    libc.malloc(2**20)  # kept: a freed block could be reused
    return libc.mallinfo2().hblks - before

print(mapped_after_a_megabyte(), fanout.large_blocks_stay_mapped(), mapped_after_a_megabyte())
"""


def test_a_piece_on_a_dask_worker_keeps_its_large_blocks_off_mmap():
    """Under the environment a Dask nanny gives its workers (MALLOC_TRIM_THRESHOLD_=65536), a 1 MiB block is a
    fresh mmap; once run_piece's large_blocks_stay_mapped has run, it comes from the heap (no new mmap)."""
    environ = {**os.environ, **{k: str(v) for k, v in dask.config.get("distributed.nanny.pre-spawn-environ").items()}}
    assert environ["MALLOC_TRIM_THRESHOLD_"] == "65536"
    out = subprocess.run([sys.executable, "-c", MAPPED_BLOCKS], capture_output=True, text=True, env=environ,
                         cwd=Path(__file__).resolve().parents[2], check=True).stdout.split()
    assert out == ["1", "True", "0"]


@pytest.mark.parametrize("address, workers", [("local", 2), ("local:3", 3), ("tcp://127.0.0.1:8786", None),
                                              (None, None)])
def test_which_addresses_mean_a_local_cluster(address, workers):
    assert fanout.local_workers(address) == workers


def test_a_local_cluster_of_no_workers_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(fanout.ENV, "local:0")
    with pytest.raises(ClusterError, match="local:0: a local cluster needs at least 1 worker"):
        list(fanout.ordered_map(busy, range(2)))


def test_gpu_pieces_of_a_local_cluster_run_here(monkeypatch):
    """A stage on CUDA keeps its pieces in its own process (one device), whatever local:N says."""
    monkeypatch.setenv(fanout.ENV, "local:2")
    assert fanout.where(gpu=True) == "pieces in this process"
    assert fanout.where() == "pieces in 2 local Dask worker processes"
    seen = []
    assert list(fanout.ordered_map(lambda x: (seen.append(threading.get_ident()), x)[1], range(3), gpu=True)) \
        == [0, 1, 2]
    assert set(seen) == {threading.get_ident()}


def worker_environment() -> tuple[int, str | None, str | None]:
    return os.getpid(), os.environ.get("OMP_WAIT_POLICY"), os.environ.get("OMP_NUM_THREADS")


@pytest.mark.parametrize("policy", [None, "ACTIVE"])
def test_a_local_cluster_lets_idle_threads_sleep_and_leaves_this_environment_alone(monkeypatch, policy):
    """local:N workers are processes of their own whose OpenMP threads wait passively, unless the user chose a
    policy; starting them leaves this process's environment as it was (the nanny writes its pre-spawn
    variables into it)."""
    if policy:
        monkeypatch.setenv("OMP_WAIT_POLICY", policy)
    else:
        monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setenv(fanout.ENV, "local:2")
    before = dict(os.environ)
    pids, policies, _ = zip(*fanout.ordered_map(lambda piece: worker_environment(), range(2)))
    assert dict(os.environ) == before
    assert os.getpid() not in pids
    assert set(policies) == {policy or "PASSIVE"}
