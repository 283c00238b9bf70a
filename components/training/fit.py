"""The one training loop, read top to bottom: `loop` runs any trainer's step function with resume, logging,
throughput, checkpoints, pictures and the divergence watch; `fit` is its single-loss case (one optimiser and
its learning-rate schedule, optional EMA) that the cVAE, autoencoders, upscaler and classifiers use; the GAN
(training/gan.py) brings its own two-optimiser step. `DeviceImages` holds a training set on the device.

A step function `step(rng, step) -> metrics` does one update (drawing its batch with `rng`, step from 0) and
returns a 1-D tensor of metrics. Metrics are summed on the device and read (one host sync) every log_every
steps, where the watch is checked too: on the host side a step does nothing but launch work.
"""

import copy
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from tqdm import tqdm

from components import ranks
from components.config.training import FitParams
from components.device import autocast, resolve_precision
from components.errors import DataError, DivergenceError
from components.pixels import resize, to_signed
from components.training import checkpoint
from components.training.rundir import RunDir, Stateful

log = logging.getLogger("genaug")

Step = Callable[[torch.Generator, int], torch.Tensor]
BatchMetrics = Callable[[torch.nn.Module, torch.Generator, int], torch.Tensor]


class LoopParams(Protocol):
    """The train settings the loop reads (FitParams and TrainGeneratorParams have them)."""
    batch_size: int
    log_every: int
    checkpoint_every: int
    keep_checkpoints: int


class Watch(Protocol):
    """Looks at every step's metrics on the device; `problem` (a host sync, at log steps) says why to stop."""
    def update(self, values: torch.Tensor) -> None: ...
    def problem(self) -> str | None: ...


class FiniteWatch:
    """Stops a run whose metrics became NaN or infinite."""

    def __init__(self, device: torch.device):
        self.finite = torch.ones((), dtype=torch.bool, device=device)

    def update(self, values: torch.Tensor) -> None:
        self.finite &= torch.isfinite(values).all()

    def problem(self) -> str | None:
        return None if bool(self.finite) else "a loss became NaN or infinite"


def loop(step_fn: Step, run: RunDir, key: str, states: dict[str, Stateful], rng: torch.Generator, steps: int,
         params: LoopParams, name: str, fix: str, watch: Watch, picture: Callable[[int], None] | None = None) -> int:
    """Run `step_fn` from the run folder's last matching checkpoint (fingerprint `key`) to `steps`; returns the
    step it resumed from. `states` (with `rng`) is what a checkpoint holds; `picture(step)` draws the step's
    picture after each checkpoint; `fix` ends the divergence error (what to change)."""
    step = first_step = run.resume(key, steps, states, rng)
    ranks.barrier()  # every rank has read the checkpoint before the first one changes the folder
    run.remove_finals()  # a run that fails leaves no final model behind
    device = rng.device
    sums = torch.zeros(len(run.columns) - 1, device=device)
    count, last = 0, {}
    started = interval_start = time.perf_counter()
    with tqdm(total=steps, initial=step, desc=name, unit="step", disable=None) as bar:
        while step < steps:
            values = step_fn(rng, step).detach().float()
            sums += values
            watch.update(values)
            step += 1
            count += 1
            bar.update(1)
            if step % params.log_every == 0 or step == steps:
                problem = watch.problem()  # the one host sync per interval
                if problem:
                    raise divergence_error(run, name, step, problem, fix)
                last = dict(zip(run.columns[1:], (sums / count).tolist()))
                now = time.perf_counter()
                speed = count * params.batch_size / (now - interval_start)
                run.log(step, last)
                bar.set_postfix({k: f"{v:.4g}" for k, v in list(last.items())[:3]}, refresh=False)
                sums.zero_()
                count, interval_start = 0, now
            if step % params.checkpoint_every == 0 or step == steps:
                run.save_checkpoint(step, key, states, rng, params.keep_checkpoints)
                if picture is not None and ranks.is_main():
                    picture(step)
                log.info("%s: step %d/%d: %s, %.0f img/s", name, step, steps,
                         ", ".join(f"{k} {v:.4g}" for k, v in last.items()), speed)
    ranks.barrier()  # the last metrics row and checkpoint are written before any rank reads them
    seconds = time.perf_counter() - started
    if step > first_step:
        log.info("%s: trained %d steps in %.1f s (%.0f img/s)%s", name, step - first_step, seconds,
                 (step - first_step) * params.batch_size / seconds,
                 f", resumed from step {first_step}" if first_step else "")
    return first_step


def fit(model: torch.nn.Module, batch_metrics: BatchMetrics, metrics: tuple[str, ...], params: FitParams,
        seed: int, device: torch.device, run_dir: Path, fingerprint: dict, finals: tuple[str, ...],
        name: str, picture: Callable[[torch.nn.Module, Path], None] | None = None,
        donors: tuple[Path, ...] = ()) -> tuple[torch.nn.Module, dict]:
    """Train `model` on the loss `batch_metrics(model, rng, step)[0]` for params.steps (resuming from run_dir's
    last checkpoint); returns the trained model (its EMA when params.ema_decay is set, in eval mode) and a
    summary. The caller writes its final files (`finals`) afterwards. `donors`: run folders of other trainers
    that may hold this very run (same fingerprint): it is taken from them, not trained again. Under torchrun
    (components/ranks.py) each rank takes its slice of every batch and DDP averages the gradients."""
    run = RunDir(run_dir, metrics, finals)
    model = model.to(device)
    trained = ranks.wrap(model)
    ema = copy.deepcopy(model).requires_grad_(False) if params.ema_decay is not None else None
    optimizer = OPTIMIZERS[params.optimizer](model.parameters(), lr=params.lr, betas=params.betas,
                                             weight_decay=params.weight_decay, fused=device.type == "cuda")
    rng = torch.Generator(device).manual_seed(seed + 1)  # seed itself initialised the weights
    states = {"model": model, "optimizer": optimizer, **({"ema": ema} if ema is not None else {})}
    precision = resolve_precision(device, params.precision)
    # Everything that shapes the weights; the device type and precision too (they differ in numerics). The
    # precision enters resolved: auto and the precision it picked are the same run.
    # The process count (nproc) enters as ranks.fingerprint()'s world size, and only when above 1.
    shaping = params.model_dump(mode="json", exclude=params.not_shaping() | {"precision", "nproc"})
    key = json.dumps({**fingerprint, "fit": shaping, "seed": seed, "device": device.type, "precision": precision,
                      **ranks.fingerprint()},
                     sort_keys=True, default=str)

    def step_fn(rng: torch.Generator, step: int) -> torch.Tensor:
        model.train()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(params, step)
        with autocast(device, precision):
            values = batch_metrics(trained, rng, step).float()
        optimizer.zero_grad(set_to_none=True)
        values[0].backward()
        optimizer.step()
        if ema is not None:
            update_ema(ema, model, params.ema_decay, step)
        return ranks.mean(values)  # what the ranks saw together: the same log and divergence verdict on each

    if donors:
        run.adopt(key, params.steps, donors)
        ranks.barrier()

    def draw(step: int) -> None:
        picture((ema or model).eval(), run.sample_path(step))

    loop(step_fn, run, key, states, rng, params.steps, params, name, f"Lower {name}.lr, or change the seed "
         "to start a fresh run.", FiniteWatch(device), draw if picture is not None else None)
    # Only what the weights depend on (no timings, no resume point): same params, same metrics file.
    summary = {"steps": params.steps, "final": {k: round(v, 5) for k, v in run.last_logged().items()},
               "device": str(device), "precision": precision}
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
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float, step: int) -> None:
    """One EMA update after step `step` (from 0); a short warm-up, so the early EMA follows the model."""
    decay = min(decay, (1 + step) / (10 + step))
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def divergence_error(run: RunDir, name: str, step: int, problem: str, fix: str) -> DivergenceError:
    kept = run.latest_checkpoint()
    where = (f"the last good checkpoint, {kept} (step {checkpoint.step_of(kept)}), is kept" if kept
             else "no checkpoint had been written yet")
    finals = ", ".join(str(run.root / f) for f in run.finals) or "final model"
    return DivergenceError(f"{name} diverged by step {step}: {problem}. {where}; no {finals} was written. "
                           f"Re-running with the same params resumes from that checkpoint: {fix}")


def check_data(images: np.ndarray, labels: np.ndarray, num_classes: int, class_names: list[str]) -> None:
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise DataError(f"training images must be uint8 (N, H, W, 1 or 3), got {images.dtype} {images.shape}")
    if len(labels) != len(images) or len(labels) == 0:
        raise DataError(f"{len(images)} training images but {len(labels)} labels")
    if len(class_names) != num_classes:
        raise DataError(f"{num_classes} classes but {len(class_names)} class names")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise DataError(f"labels must lie in [0, {num_classes}), got [{labels.min()}, {labels.max()}]")


class DeviceImages:
    """A training set: uint8 images (N, H, W, C), brought to `size` x `size` (pixels.resize) when given, held as
    uint8 (N, C, H, W) on the device (moved once, when it fits; else each batch is copied), with their labels.
    Batches are drawn by index sampling from the trainer's generator and scaled to [-1, 1]."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, device: torch.device, size: int | None = None):
        labels = np.asarray(labels, dtype=np.int64)
        self.digest = hashlib.sha256(np.ascontiguousarray(images).tobytes() + labels.tobytes()).hexdigest()
        pixels = torch.from_numpy(np.require(images, requirements=["C", "W"])).permute(0, 3, 1, 2)
        pixels = resize(pixels, size) if size else pixels.contiguous()
        self.device = device
        self.on_device = fits(device, pixels.numel())
        if self.on_device:
            memory = torch.channels_last if device.type == "cuda" else torch.contiguous_format
            self.images = pixels.to(device).contiguous(memory_format=memory)
        else:
            log.warning("training images (%.1f GB) do not fit on %s: copying each batch", pixels.numel() / 1e9, device)
            self.images = pixels.pin_memory() if device.type == "cuda" else pixels
        self.labels = torch.from_numpy(labels.copy()).to(device)

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, size: int, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(images in [-1, 1], labels, the drawn indices): under torchrun, this rank's slice of the batch."""
        index = ranks.my_slice(torch.randint(len(self.labels), (size,), generator=rng, device=self.device))
        return *self.take(index), index

    def take(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(images in [-1, 1], labels) of the rows at `index` (a tensor on the device)."""
        pixels = self.images[index] if self.on_device else self.images[index.cpu()].to(self.device, non_blocking=True)
        return to_signed(pixels), self.labels[index]


def fits(device: torch.device, nbytes: int) -> bool:
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes < free // 4
