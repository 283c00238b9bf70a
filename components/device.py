"""The device, chosen once from params (`device: auto | cpu | cuda`) and passed down, and its precision."""

import contextlib
from typing import Literal

import torch

from components.errors import ParamsError


def resolve_device(setting: Literal["auto", "cpu", "cuda"]) -> torch.device:
    """auto: the first CUDA device when there is one, else the CPU."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting == "cuda" and not torch.cuda.is_available():
        raise ParamsError("device: cuda, but torch sees no CUDA device (CPU build of torch, or no driver); "
                          "set device: auto or cpu")
    if setting not in ("cpu", "cuda"):
        raise ParamsError(f"device: {setting!r} is not one of 'auto', 'cpu', 'cuda'")
    return torch.device(setting)


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (no loss scaling needed); fp32 everywhere else."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)}, bf16 autocast)"
    return f"cpu ({torch.get_num_threads()} threads, fp32)"
