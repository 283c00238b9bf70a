"""The device, chosen once from params (`device: auto | cpu | cuda | cuda:N`) and passed down, and the
precision a trainer runs at on it (each trainer's `precision: auto | fp32 | bf16`)."""

import contextlib
import os
import platform
from functools import cache
from pathlib import Path

import torch

from components.errors import ParamsError

PRECISIONS = ("auto", "fp32", "bf16")


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


@cache
def cpu_computes_bf16() -> bool:
    """Whether this CPU has bf16 arithmetic in hardware (x86 AVX512-BF16 or AMX, Arm's BF16 extension). Only
    then is bf16 autocast faster on the CPU (about 1.5 times for evaluate's classifier on a 2-core AMD EPYC:
    README); elsewhere it is emulated. Read from /proc/cpuinfo (Linux); False where that is not there."""
    cpuinfo = Path("/proc/cpuinfo")
    if platform.system() != "Linux" or not cpuinfo.exists():
        return False
    return bf16_in_cpuinfo(cpuinfo.read_text(errors="replace"))


def bf16_in_cpuinfo(text: str) -> bool:
    """Whether a /proc/cpuinfo text's first flags line (x86 "flags", Arm "Features") names a bf16 unit."""
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() in ("flags", "features"):
            return bool(set(value.split()) & {"avx512_bf16", "amx_bf16", "bf16"})
    return False


def resolve_precision(device: torch.device, setting: str = "auto") -> str:
    """A trainer's precision, 'bf16' or 'fp32'. auto: bf16 on CUDA and on a CPU that computes bf16 in hardware,
    fp32 on any other CPU. bf16 is autocast: the weights, the optimiser and the losses stay fp32."""
    if setting not in PRECISIONS:
        raise ParamsError(f"precision: {setting!r} is not one of {', '.join(PRECISIONS)}")
    if setting != "auto":
        return setting
    return "bf16" if device.type == "cuda" or cpu_computes_bf16() else "fp32"


def inference_precision(device: torch.device) -> str:
    """Inference's precision: bf16 on CUDA, fp32 on the CPU (the CPU's inference is cheap next to training, and
    its pixels stay those of fp32)."""
    return "bf16" if device.type == "cuda" else "fp32"


def autocast(device: torch.device, precision: str | None = None) -> contextlib.AbstractContextManager:
    """bf16 autocast when `precision` (resolved) is bf16, none for fp32; None: inference_precision."""
    if (precision or inference_precision(device)) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def describe(device: torch.device, precision: str | None = None) -> str:
    """The device for a log line, with the precision: a trainer's `precision` setting (resolved here), or None
    for inference (inference_precision)."""
    precision = inference_precision(device) if precision is None else resolve_precision(device, precision)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)}, {precision})"
    return f"cpu ({torch.get_num_threads()} threads, {precision})"
