"""Training in several processes at once (torchrun, DistributedDataParallel): which rank this process is, its
slice of a global batch, a value averaged over the ranks. Without a process group (one process, the usual case)
each is the identity, so single-process training does not change.

Every rank draws the *global* batch (indices, latents) from the same seeded generator and keeps its contiguous
slice; DDP averages the gradients. So N ranks take the step one process takes on the whole batch, up to
float rounding, and a batch statistic (the cVAE's sigma) must be averaged over the ranks too.
"""

import os
from datetime import timedelta

import torch
import torch.distributed as dist

from components.errors import ParamsError

TIMEOUT = timedelta(minutes=10)   # a rank that waits longer on the others fails instead of hanging


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def count_text() -> str:
    """", N processes" under torchrun, "" in one process: for a stage's opening line."""
    return f", {world()} processes" if world() > 1 else ""


def launched() -> bool:
    """Started by torchrun (it sets WORLD_SIZE and LOCAL_RANK for each process)."""
    return "LOCAL_RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def join(device: torch.device) -> torch.device:
    """Under torchrun: join the process group (nccl on CUDA, gloo on the CPU) and return this rank's device
    (cuda:LOCAL_RANK on CUDA). Elsewhere: `device`."""
    if not launched() or active():
        return device
    local = int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    return device


def leave() -> None:
    if active():
        dist.destroy_process_group()


def my_slice(batch: torch.Tensor) -> torch.Tensor:
    """This rank's contiguous part of a global batch."""
    n = world()
    if n == 1:
        return batch
    if len(batch) % n:
        raise ParamsError(f"a batch of {len(batch)} does not split evenly over {n} processes: make the batch "
                          f"size a multiple of train_generator.nproc ({n})")
    size = len(batch) // n
    return batch[rank() * size:(rank() + 1) * size]


def mean(value: torch.Tensor) -> torch.Tensor:
    """The mean of `value` over the ranks (every rank gets it)."""
    if world() == 1:
        return value
    total = value.detach().clone()
    dist.all_reduce(total)
    return total / world()


def wrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model DDP trains across the processes (its gradients averaged); the model itself in one process."""
    return torch.nn.parallel.DistributedDataParallel(model) if world() > 1 else model


def fingerprint() -> dict:
    """What a resume fingerprint adds for the process count: nothing in one process (older checkpoints match)."""
    return {"world": world()} if world() > 1 else {}


def barrier() -> None:
    if active():
        dist.barrier()
