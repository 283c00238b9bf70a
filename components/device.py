"""The device, chosen once from params (`device: auto | cpu | cuda | cuda:N`) and passed down, and its precision."""

import contextlib
import os

import torch

from components.errors import ParamsError


def resolve_device(setting: str) -> torch.device:
    """auto: the first CUDA device when there is one, else the CPU; cpu; cuda or cuda:N (checked to exist)."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting == "cpu":
        return torch.device("cpu")
    try:
        device = torch.device(setting)
    except RuntimeError:
        device = None
    if device is None or device.type != "cuda":
        raise ParamsError(f"device: {setting!r} is not one of 'auto', 'cpu', 'cuda', 'cuda:N'")
    if not torch.cuda.is_available():
        raise ParamsError(f"device: {setting}, but torch sees no CUDA device (CPU build of torch, or no driver); "
                          "set device: auto or cpu")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ParamsError(f"device: {setting}, but torch sees {torch.cuda.device_count()} CUDA device(s), "
                          f"numbered from 0 (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})")
    return device


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (no loss scaling needed); fp32 everywhere else."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)}, bf16 autocast)"
    return f"cpu ({torch.get_num_threads()} threads, fp32)"
