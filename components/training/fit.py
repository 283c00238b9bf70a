"""The training loop of the single-loss models (cVAE, autoencoders, upscaler, classifiers), read top
to bottom: one optimiser and its learning-rate schedule, optional EMA, logging, checkpoints, resume and
the divergence watch.

The caller gives `batch_metrics(model, rng, step)`: it draws a batch with `rng` (data already on the
device) and returns a 1-D tensor of metrics whose first entry is the loss to minimise (`step`, from
0, is there for schedules such as a KL warm-up). Metrics are
summed on the device and read (one host sync) every log_every steps.
"""

import copy
import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from components.config.training import FitParams
from components.device import autocast
from components.errors import DivergenceError
from components.training.rundir import RunDir

log = logging.getLogger("genaug")

BatchMetrics = Callable[[torch.nn.Module, torch.Generator, int], torch.Tensor]


def fit(model: torch.nn.Module, batch_metrics: BatchMetrics, metrics: tuple[str, ...], params: FitParams,
        seed: int, device: torch.device, run_dir: Path, fingerprint: dict, finals: tuple[str, ...],
        name: str, picture: Callable[[torch.nn.Module, Path], None] | None = None) -> tuple[torch.nn.Module, dict]:
    """Train `model` for params.steps (resuming from run_dir's last checkpoint); returns the trained model (its EMA when params.ema_decay is set,
    in eval mode) and a summary. The caller writes its final files (`finals`) afterwards."""
    run = RunDir(run_dir, metrics, finals)
    model = model.to(device)
    ema = copy.deepcopy(model).requires_grad_(False) if params.ema_decay is not None else None
    optimizer = OPTIMIZERS[params.optimizer](model.parameters(), lr=params.lr, betas=params.betas,
                                             weight_decay=params.weight_decay, fused=device.type == "cuda")
    rng = torch.Generator(device).manual_seed(seed + 1)  # seed itself initialised the weights
    states = {"model": model, "optimizer": optimizer, **({"ema": ema} if ema is not None else {})}
    # Everything that shapes the weights; the device type too (CPU and CUDA differ in numerics).
    key = json.dumps({**fingerprint, "fit": params.model_dump(mode="json", exclude=params.not_shaping()), "seed": seed,
                      "device": device.type}, sort_keys=True, default=str)
    step = first_step = run.resume(key, params.steps, states, rng)
    run.remove_finals()

    sums = torch.zeros(len(metrics), device=device)
    finite = torch.ones((), dtype=torch.bool, device=device)
    count, last = 0, {}
    started = time.perf_counter()
    bar = tqdm(total=params.steps, initial=step, desc=name, unit="step", disable=None)
    while step < params.steps:
        model.train()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(params, step)
        with autocast(device):
            values = batch_metrics(model, rng, step).float()
        optimizer.zero_grad(set_to_none=True)
        values[0].backward()
        optimizer.step()
        if ema is not None:
            update_ema(ema, model, min(params.ema_decay, (1 + step) / (10 + step)))
        values = values.detach()
        sums += values
        finite &= torch.isfinite(values).all()
        step += 1
        count += 1
        bar.update(1)
        if step % params.log_every == 0 or step == params.steps:
            if not bool(finite):  # the one host sync per interval
                bar.close()
                raise divergence_error(run, name, step)
            last = dict(zip(metrics, (sums / count).tolist()))
            run.log(step, last)
            bar.set_postfix({k: f"{v:.4g}" for k, v in list(last.items())[:3]}, refresh=False)
            sums.zero_()
            count = 0
        if step % params.checkpoint_every == 0 or step == params.steps:
            run.save_checkpoint(step, key, states, rng, params.keep_checkpoints)
            if picture is not None:
                picture((ema or model).eval(), run.sample_path(step))
    bar.close()
    seconds = time.perf_counter() - started
    if step > first_step:
        log.info("%s: trained %d steps in %.1f s (%.0f img/s)%s", name, step - first_step, seconds,
                 (step - first_step) * params.batch_size / seconds,
                 f", resumed from step {first_step}" if first_step else "")
    # Only what the weights depend on (no timings, no resume point): same params, same metrics file.
    summary = {"steps": step, "final": {k: round(v, 5) for k, v in run.last_logged().items()},
               "device": str(device)}
    return (ema if ema is not None else model).eval(), summary


OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def learning_rate(params: FitParams, step: int) -> float:
    """The learning rate of step `step` (from 0) under params.schedule: a function of the step alone, so a
    resumed run follows the same curve."""
    if params.schedule == "constant":
        return params.lr
    warm = round(params.warmup * params.steps)
    start = params.lr / 25 if params.schedule == "onecycle" else 0.0
    end = params.lr / 1e4 if params.schedule == "onecycle" else 0.0
    if step < warm:
        return start + (params.lr - start) * (step + 1) / warm
    done = (step - warm) / max(1, params.steps - warm)
    return end + (params.lr - end) * 0.5 * (1 + math.cos(math.pi * done))


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def divergence_error(run: RunDir, name: str, step: int) -> DivergenceError:
    kept = run.latest_checkpoint()
    where = f"the last good checkpoint, {kept}, is kept" if kept else "no checkpoint had been written yet"
    return DivergenceError(
        f"{name} diverged by step {step}: a loss became NaN or infinite. {where}; no final model was "
        f"written. Lower {name}.lr, or change the seed to start a fresh run.")


class DeviceImages:
    """Training images as uint8 (N, C, H, W) on the device (moved once), with their labels; batches
    are drawn by index sampling from the trainer's generator and scaled to [-1, 1]."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, device: torch.device):
        pixels = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()
        self.images = pixels.to(device)
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device)
        self.device = device

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, size: int, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(images in [-1, 1], labels, the drawn indices)."""
        index = torch.randint(len(self.labels), (size,), generator=rng, device=self.device)
        return *self.take(index), index

    def take(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(images in [-1, 1], labels) of the rows at `index` (a tensor on the device)."""
        return self.images[index].float().div_(127.5).sub_(1.0), self.labels[index]
