"""The GAN training loop, read top to bottom: data on the device, the step, EMA, logging, checkpoints,
resume and the divergence watch.

run_dir holds (and a killed run resumes from):
  checkpoints/step-NNNNNNN.pt  the last few full states (G, D, EMA, optimisers, step, RNG states)
  metrics.csv                  one row per log_every steps (means over the interval)
  samples/step-NNNNNNN.png     a sample grid per checkpoint, a row per class (EMA generator)
  generator.pt, samples.png    only when training finished without diverging

On the host side each step does nothing but launch work: metrics are summed on the device and read
(one sync) every log_every steps, where the divergence watch is checked too.
"""

import copy
import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from components.config.generator import GeneratorParams, TrainGeneratorParams
from components.device import autocast
from components.errors import DataError, DivergenceError
from components.generation.sample import class_grid, save_grid
from components.models import cgan
from components.models.augment import augment
from components.training import checkpoint
from components.training.fit import update_ema
from components.training.rundir import RunDir

log = logging.getLogger("genaug")

FINAL, FINAL_GRID = "generator.pt", "samples.png"
METRICS = ("loss_d", "loss_g", "d_real", "d_fake", "d_acc_real", "d_acc_fake")
# Train settings that leave the weights alone: a checkpoint written under other values still resumes
# (raising `steps` continues a finished run to the same weights as a longer straight run).
# `cvae` is the other kind's recipe: it does not touch the GAN.
NOT_SHAPING = {"steps", "checkpoint_every", "keep_checkpoints", "log_every", "grid_columns", "divergence_patience",
               "cvae"}


def train_gan(images: np.ndarray, labels: np.ndarray, num_classes: int, class_names: list[str],
              generator_params: GeneratorParams, train_params: TrainGeneratorParams, seed: int,
              device: torch.device, run_dir: Path) -> dict:
    """Train the cGAN on uint8 (N, H, W, C) images and int64 labels; returns a summary dict."""
    gp, tp, run_dir = generator_params, train_params, Path(run_dir)
    check_data(images, labels, num_classes, class_names)
    channels = images.shape[-1]
    data = DeviceData(images, labels, gp.size, device)

    G, D = cgan.build(gp, num_classes, channels, seed)
    ema = copy.deepcopy(G).requires_grad_(False).eval()
    fused = device.type == "cuda"
    G, D, ema = G.to(device), D.to(device), ema.to(device)
    if device.type == "cuda" and not tp.compile:  # compile breaks on channels_last here (DESIGN.md)
        G, D, ema = (m.to(memory_format=torch.channels_last) for m in (G, D, ema))
    opt_g = torch.optim.Adam(G.parameters(), lr=tp.lr, betas=tp.betas, fused=fused)
    opt_d = torch.optim.Adam(D.parameters(), lr=tp.lr * tp.lr_ratio, betas=tp.betas, fused=fused)
    rng = torch.Generator(device).manual_seed(seed + 1)  # seed itself initialised the weights
    watch = DivergenceWatch(tp.divergence_patience, device)
    lecam = LeCam(device)
    g_train, d_train = (torch.compile(G), torch.compile(D)) if tp.compile else (G, D)

    fingerprint = run_fingerprint(gp, tp, seed, class_names, data.digest, device)
    run = RunDir(run_dir, METRICS, finals=(FINAL, FINAL_GRID))
    states = {"generator": G, "discriminator": D, "ema": ema, "opt_g": opt_g, "opt_d": opt_d, "watch": watch,
              "lecam": lecam}
    step = run.resume(fingerprint, tp.steps, states, rng)
    first_step = step
    run.remove_finals()  # a run that fails leaves no generator behind

    sums = torch.zeros(len(METRICS), device=device)
    count, last = 0, {}
    started = interval_start = time.perf_counter()
    with tqdm(total=tp.steps, initial=step, desc="train_generator", unit="step", disable=None) as bar:
        while step < tp.steps:
            values = train_step(g_train, d_train, G, ema, opt_g, opt_d, data, rng, tp, step, lecam)
            step += 1
            sums += values
            count += 1
            watch.update(values)
            bar.update(1)
            if step % tp.log_every == 0 or step == tp.steps:
                last = dict(zip(METRICS, (sums / count).tolist()))  # the one host sync per interval
                problem = watch.problem()
                if problem:
                    raise divergence_error(run, step, problem)
                now = time.perf_counter()
                speed = count * tp.batch_size / (now - interval_start)
                run.log(step, last)
                bar.set_postfix(loss_d=f"{last['loss_d']:.3f}", loss_g=f"{last['loss_g']:.3f}",
                                acc=f"{last['d_acc_real']:.2f}/{last['d_acc_fake']:.2f}", refresh=False)
                sums.zero_()
                count, interval_start = 0, now
            if step % tp.checkpoint_every == 0 or step == tp.steps:
                run.save_checkpoint(step, fingerprint, states, rng, tp.keep_checkpoints)
                save_grid(class_grid(ema, seed, tp.grid_columns), run.sample_path(step))
                log.info("step %d/%d: loss_d %.3f, loss_g %.3f, D right on %.0f%% real / %.0f%% fake, %.0f img/s",
                         step, tp.steps, last["loss_d"], last["loss_g"], 100 * last["d_acc_real"],
                         100 * last["d_acc_fake"], speed)
    seconds = time.perf_counter() - started
    trained = step - first_step
    if trained:
        log.info("trained %d steps in %.1f s (%.0f img/s)%s", trained, seconds, trained * tp.batch_size / seconds,
                 f", resumed from step {first_step}" if first_step else "")

    checkpoint.save(run_dir / FINAL, {**cgan.export(ema, gp, class_names, step), "seed": seed})
    save_grid(class_grid(ema, seed, tp.grid_columns), run_dir / FINAL_GRID)
    # Only what the weights depend on: timings and resume points go to the log, so that the same
    # params give the same metrics file (and dvc.lock) whichever way the run went.
    return {
        "steps": step,
        "final": {k: round(v, 4) for k, v in run.last_logged().items()},
        "train_images": len(labels),
        "device": str(device),
        "generator": checkpoint.file_hash(run_dir / FINAL),
    }


def train_step(g_train, d_train, G, ema, opt_g, opt_d, data: "DeviceData", rng: torch.Generator,
               tp: TrainGeneratorParams, step: int, lecam: "LeCam") -> torch.Tensor:
    """One D update then one G update on the same fake batch; returns METRICS as a device tensor."""
    real, labels = data.batch(tp.batch_size, rng)
    z = torch.randn(len(labels), G.latent_dim, generator=rng, device=real.device)
    with autocast(real.device):
        fake = g_train(z, labels)
        both = augment(torch.cat([real, fake.detach()]), tp.diffaugment, rng)
        d_real, d_fake = d_train(both, torch.cat([labels, labels])).float().chunk(2)
        loss_d = cgan.d_loss(tp.loss, d_real, d_fake, tp.label_smoothing)
    if tp.lecam:
        loss_d = loss_d + tp.lecam * lecam.penalty(d_real, d_fake)
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()

    d_train.requires_grad_(False)  # G's step needs gradients through D, not for D's weights
    with autocast(real.device):
        loss_g = cgan.g_loss(tp.loss, d_train(augment(fake, tp.diffaugment, rng), labels))
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    d_train.requires_grad_(True)

    update_ema(ema, G, min(tp.ema_decay, (1 + step) / (10 + step)))  # short warm-up: early EMA follows G
    return torch.stack([loss_d, loss_g, d_real.mean(), d_fake.mean(),
                        (d_real > 0).float().mean(), (d_fake < 0).float().mean()]).detach()


class DeviceData:
    """The training set as uint8 (N, C, size, size) on the device (moved there once, when it fits),
    batches drawn by index sampling (with replacement) from the trainer's generator."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, size: int, device: torch.device):
        self.digest = hashlib.sha256(images.tobytes() + labels.astype(np.int64).tobytes()).hexdigest()
        pixels = resize(torch.from_numpy(np.require(images, requirements=["C", "W"])).permute(0, 3, 1, 2), size)
        self.device = device
        self.on_device = fits(device, pixels.numel())
        memory = torch.channels_last if device.type == "cuda" else torch.contiguous_format
        if self.on_device:
            self.images = pixels.to(device).contiguous(memory_format=memory)
        else:
            log.warning("training images (%.1f GB) do not fit on %s: copying each batch", pixels.numel() / 1e9, device)
            self.images = pixels.pin_memory() if device.type == "cuda" else pixels
        self.labels = torch.from_numpy(labels.astype(np.int64)).to(device)

    def batch(self, size: int, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.randint(len(self.labels), (size,), generator=rng, device=self.device)
        pixels = self.images[index] if self.on_device else self.images[index.cpu()].to(self.device, non_blocking=True)
        return pixels.float().div_(127.5).sub_(1.0), self.labels[index]


def resize(pixels: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, C, H, W) to (N, C, size, size); unchanged when already that size. A whole-number
    downscale (28 -> 14 for a generator at half the target size) averages each block of pixels (area),
    the low-resolution images the upscaler learns to invert; other sizes: antialiased bilinear."""
    height, width = pixels.shape[-2:]
    if (height, width) == (size, size):
        return pixels.contiguous()
    whole = height % size == 0 and width % size == 0
    mode = {"mode": "area"} if whole else {"mode": "bilinear", "antialias": True, "align_corners": False}
    out = [F.interpolate(chunk.float(), size=(size, size), **mode).round_().clamp_(0, 255).to(torch.uint8)
           for chunk in pixels.split(4096)]
    return torch.cat(out)


def fits(device: torch.device, nbytes: int) -> bool:
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes < free // 4


class LeCam:
    """LeCam regularisation (Tseng et al. 2021): keeps D's outputs on real and fake images near the moving
    averages of the other side's, which bounds how far D can overfit a small training set. The averages live on
    the device and in the checkpoint (a resumed run continues them)."""

    DECAY = 0.99

    def __init__(self, device: torch.device):
        self.real = torch.zeros((), device=device)
        self.fake = torch.zeros((), device=device)

    def penalty(self, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
        self.real.lerp_(d_real.detach().mean(), 1 - self.DECAY)
        self.fake.lerp_(d_fake.detach().mean(), 1 - self.DECAY)
        return F.relu(d_real - self.fake).pow(2).mean() + F.relu(self.real - d_fake).pow(2).mean()

    def state_dict(self) -> dict:
        return {"real": self.real.clone(), "fake": self.fake.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.real.copy_(state["real"])
        self.fake.copy_(state["fake"])


class DivergenceWatch:
    """Counts, on the device, steps in a row where D classified every real and fake image right, and
    whether any metric went non-finite; `problem` reads both (a host sync) at log steps."""

    def __init__(self, patience: int, device: torch.device):
        self.patience = patience
        self.pinned = torch.zeros((), dtype=torch.int64, device=device)   # current run of perfect steps
        self.longest = torch.zeros((), dtype=torch.int64, device=device)  # longest run since last check
        self.finite = torch.ones((), dtype=torch.bool, device=device)

    def update(self, values: torch.Tensor) -> None:
        acc_real, acc_fake = values[METRICS.index("d_acc_real")], values[METRICS.index("d_acc_fake")]
        perfect = (acc_real == 1) & (acc_fake == 1)
        self.pinned = (self.pinned + 1) * perfect
        self.longest = torch.maximum(self.longest, self.pinned)
        self.finite = self.finite & torch.isfinite(values).all()

    def problem(self) -> str | None:
        finite, longest = bool(self.finite), int(self.longest)
        self.longest = self.pinned.clone()
        if not finite:
            return "a loss became NaN or infinite"
        if longest >= self.patience:
            return (f"the discriminator classified every real and fake image right for {longest} steps in a row "
                    f"(train_generator.divergence_patience: {self.patience}): it has overpowered the generator")
        return None

    def state_dict(self) -> dict:
        return {"pinned": int(self.pinned)}

    def load_state_dict(self, state: dict) -> None:
        self.pinned.fill_(state["pinned"])
        self.longest.fill_(state["pinned"])


def divergence_error(run: RunDir, step: int, problem: str) -> DivergenceError:
    kept = run.latest_checkpoint()
    where = (f"the last good checkpoint, {kept} (step {checkpoint.step_of(kept)}), is kept"
             if kept else "no checkpoint had been written yet")
    return DivergenceError(
        f"GAN training diverged by step {step}: {problem}. {where}; no {run.root / FINAL} was written. "
        "Re-running with the same params resumes from that checkpoint and diverges again: change "
        "train_generator (a lower lr or lr_ratio, diffaugment [translation, cutout, color] for small data, "
        "loss: hinge) or the seed, which starts a fresh run.")


def check_data(images: np.ndarray, labels: np.ndarray, num_classes: int, class_names: list[str]) -> None:
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise DataError(f"training images must be uint8 (N, H, W, 1 or 3), got {images.dtype} {images.shape}")
    if len(labels) != len(images) or len(labels) == 0:
        raise DataError(f"{len(images)} training images but {len(labels)} labels")
    if len(class_names) != num_classes:
        raise DataError(f"{num_classes} classes but {len(class_names)} class names")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise DataError(f"labels must lie in [0, {num_classes}), got [{labels.min()}, {labels.max()}]")


def run_fingerprint(gp: GeneratorParams, tp: TrainGeneratorParams, seed: int, class_names: list[str],
                    data_digest: str, device: torch.device) -> str:
    """What a checkpoint must match to be resumed: everything that shapes the weights (the device
    type too: CPU and CUDA differ in numerics and in the trainer's RNG state)."""
    shaping = tp.model_dump(mode="json", exclude=NOT_SHAPING)
    return json.dumps({"generator": gp.model_dump(mode="json"), "train": shaping, "seed": seed,
                       "class_names": class_names, "data": data_digest, "device": device.type}, sort_keys=True)
