"""Independent pieces of a stage's work (a generation shard, a file shard to denoise or upscale or score) run
here one after another, or on a Dask cluster when GENAUG_DASK_SCHEDULER names its scheduler
(tcp://host:8786). Either way `ordered_map` gives the results back in the order of the pieces and the stage
writes them itself, so the output files are byte-identical whatever the number of workers.

The address is an environment variable, not a param: where the work runs changes no output, and DVC would
take a param change for a reason to re-run every stage. Workers must be able to import this repository at the
same commit (start them from a clone: `dask worker tcp://host:8786`) and run torch at the driver's thread
count, which each piece sets: torch's CPU kernels give other low bits with another thread count.

A piece that needs a GPU (`gpu=True`: the stage runs on CUDA) asks the scheduler for the resource GPU=1, so
start one worker per GPU: `CUDA_VISIBLE_DEVICES=i dask worker ... --nthreads 1 --resources GPU=1`.

GENAUG_DASK_SCHEDULER=local:N (`local`: N = 2) starts a Dask cluster of N worker processes on this machine for the
stage, each running one piece at a time at the driver's thread count, so the bits stay those of the in-process
run. Their idle OpenMP threads sleep (OMP_WAIT_POLICY=PASSIVE, unless the variable is set): with two pieces
sharing the cores, spinning threads would eat the other's time. It is meant for machines with more cores than one
piece uses (on 2 cores it did not pay: README, Scaling out); a stage on CUDA runs its pieces in this process.
"""

import ctypes
import logging
import os
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from components.errors import ClusterError

ENV = "GENAUG_DASK_SCHEDULER"
LOCAL = re.compile(r"local(?::(\d+))?")
CONNECT_TIMEOUT = "20s"
AHEAD = 2   # pieces in flight per worker: enough to keep workers busy, few enough to bound the driver's memory


def scheduler_address() -> str | None:
    return os.environ.get(ENV) or None


def local_workers(address: str | None) -> int | None:
    """N for an address `local:N` (`local`: 2), None for a scheduler's address or none."""
    match = LOCAL.fullmatch(address or "")
    if match is None:
        return None
    workers = int(match.group(1) or 2)
    if workers < 1:
        raise ClusterError(f"{ENV}={address}: a local cluster needs at least 1 worker process (local:2, say)")
    return workers


def runs_here(gpu: bool = False) -> bool:
    """Whether ordered_map runs the pieces in this process (no cluster; or a local one and the pieces need the GPU)."""
    address = scheduler_address()
    return address is None or (gpu and local_workers(address) is not None)


def where(gpu: bool = False) -> str:
    """Where ordered_map runs pieces, for a stage's opening line."""
    address = scheduler_address()
    if runs_here(gpu):
        return "pieces in this process"
    workers = local_workers(address)
    return (f"pieces in {workers} local Dask worker process{'es' if workers > 1 else ''}" if workers
            else f"pieces on the Dask cluster at {address}")


def ordered_map(task: Callable[..., Any], pieces: Iterable, gpu: bool = False, **shared: Any) -> Iterator[Any]:
    """task(piece, **shared) for each piece, yielded in the order of `pieces`. `shared` (models, reference
    features) is sent to every worker once, not with each piece."""
    address = scheduler_address()
    if runs_here(gpu):
        for piece in pieces:
            yield task(piece, **shared)
        return
    with connect(address) as client:
        sent = {name: client.scatter(value, broadcast=True, hash=False) for name, value in shared.items()}
        ahead = AHEAD * max(1, len(client.scheduler_info().get("workers", {})))
        threads = torch.get_num_threads()
        resources = {"GPU": 1} if gpu else None
        pending: deque = deque()
        try:
            for piece in pieces:
                pending.append(client.submit(run_piece, task, piece, threads, pure=False, resources=resources,
                                             **sent))
                if len(pending) >= ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def run_piece(task: Callable[..., Any], piece: Any, threads: int, **shared: Any) -> Any:
    """On a worker: the task at the driver's torch thread count (restored after)."""
    large_blocks_stay_mapped()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return task(piece, **shared)
    finally:
        torch.set_num_threads(before)


def large_blocks_stay_mapped() -> bool:
    """Keep glibc from mapping and unmapping every block of over 128 KiB: a Dask nanny starts its workers with
    MALLOC_TRIM_THRESHOLD_=65536, and any such setting freezes glibc's mmap threshold at 128 KiB, so each
    activation of a training step became a fresh mmap with its page faults: evaluate's classifier trained 2.8
    times slower on a worker than in a plain process (README: Scaling out). Raising the threshold to
    glibc's own ceiling (32 MiB) brings the speed back (freed blocks then stay with the worker for reuse; no result
    changes). False where the C library is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 32 * 2**20))
    except (OSError, AttributeError):
        return False


M_MMAP_THRESHOLD = -3  # glibc's malloc.h


@contextmanager
def connect(address: str):
    try:
        from distributed import Client
    except ImportError:
        raise ClusterError(f"{ENV}={address}: the dask 'distributed' package is not installed here; install it "
                           "(pip install distributed) or unset the variable to run every piece in this process") from None
    workers = local_workers(address)
    if workers is not None:
        with local_cluster(workers) as cluster, Client(cluster, set_as_default=False) as client:
            yield client
        return
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusterError(f"{ENV}={address}: no Dask scheduler answers there ({exc}); start one (dask scheduler) "
                           "and its workers, or unset the variable to run every piece in this process") from None
    try:
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
        except TimeoutError:
            raise ClusterError(f"{ENV}={address}: the scheduler has no workers; start some (dask worker "
                               f"{address}) or unset the variable to run every piece in this process") from None
        yield client
    finally:
        client.close()


@contextmanager
def local_cluster(workers: int):
    """`workers` Dask worker processes on 127.0.0.1, one piece at a time each, idle OpenMP threads asleep.
    Starting them writes the nanny's pre-spawn variables (OMP_NUM_THREADS=1, ...) into this process's
    environment: put back, so that what this process starts later runs as it would have."""
    import dask.config
    from distributed import LocalCluster

    saved = dict(os.environ)
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ.OMP_WAIT_POLICY": "PASSIVE"}):
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address=None, silence_logs=logging.ERROR)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    with cluster:
        yield cluster
