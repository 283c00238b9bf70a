"""The conditional GAN's training: its step (one D update, then one G update on the same fake batch, with
DiffAugment, LeCam and EMA), its divergence watch, run on the one training loop (training/fit.py: loop).

run_dir holds (and a killed run resumes from):
  checkpoints/step-NNNNNNN.pt  the last few full states (G, D, EMA, optimisers, step, RNG states)
  metrics.csv                  one row per log_every steps (means over the interval)
  samples/step-NNNNNNN.png     a sample grid per checkpoint, a row per class (EMA generator)
  generator.pt, samples.png    only when training finished without diverging
"""

import copy
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from components import paths, ranks
from components.config.generator import GeneratorParams, TrainGeneratorParams
from components.config.training import FitParams
from components.device import autocast, resolve_precision
from components.generation.sample import class_grid
from components.plots import save_grid
from components.models import cgan
from components.models.augment import Rows, augment
from components.training import checkpoint
from components.training.fit import DeviceImages, check_data, loop, update_ema
from components.training.rundir import RunDir

METRICS = ("loss_d", "loss_g", "d_real", "d_fake", "d_acc_real", "d_acc_fake")
# Train settings that leave the weights alone: a checkpoint written under other values still resumes
# (raising `steps` continues a finished run to the same weights as a longer straight run). The other kinds'
# recipes (train_generator.cvae, ...) do not touch the GAN either: run_fingerprint leaves them out.
NOT_SHAPING = {"steps", "checkpoint_every", "keep_checkpoints", "log_every", "grid_columns", "divergence_patience"}

# The end of the divergence error: what to change.
FIX = ("change train_generator (a lower lr or lr_ratio, diffaugment [translation, cutout, color] for small data, "
       "loss: hinge) or the seed, which starts a fresh run.")


def train_gan(images: np.ndarray, labels: np.ndarray, class_names: list[str], generator_params: GeneratorParams,
              train_params: TrainGeneratorParams, seed: int, device: torch.device, run_dir: Path) -> dict:
    """Train the cGAN on uint8 (N, H, W, C) images and int64 labels; returns a summary dict."""
    gp, tp, run_dir, num_classes = generator_params, train_params, Path(run_dir), len(class_names)
    check_data(images, labels, num_classes, class_names)
    data = DeviceImages(images, labels, device, gp.size)

    G, D = cgan.build(gp, num_classes, images.shape[-1], seed)
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
    if ranks.world() > 1:  # DDP: D's own step through the wrapper; G's step through D itself (see train_step)
        g_train, d_train = ranks.wrap(G), ranks.wrap(D)
    else:
        g_train, d_train = (torch.compile(G), torch.compile(D)) if tp.compile else (G, D)

    def step_fn(rng: torch.Generator, step: int) -> torch.Tensor:
        return train_step(g_train, d_train, G, ema, opt_g, opt_d, data, rng, tp, step, lecam)

    run = RunDir(run_dir, METRICS, finals=(paths.GENERATOR_FILE, paths.GENERATOR_GRID))
    states = {"generator": G, "discriminator": D, "ema": ema, "opt_g": opt_g, "opt_d": opt_d, "watch": watch,
              "lecam": lecam}
    loop(step_fn, run, run_fingerprint(gp, tp, seed, class_names, data.digest, device), states, rng, tp.steps, tp,
         "train_generator", FIX, watch,
         picture=lambda step: save_grid(class_grid(ema, seed, tp.grid_columns), run.sample_path(step)))

    summary = {"steps": tp.steps, "final": {k: round(v, 4) for k, v in run.last_logged().items()},
               "train_images": len(labels), "device": str(device)}
    if not ranks.is_main():
        return summary
    checkpoint.save(run_dir / paths.GENERATOR_FILE, {**cgan.export(ema, gp, class_names, tp.steps), "seed": seed})
    save_grid(class_grid(ema, seed, tp.grid_columns), run_dir / paths.GENERATOR_GRID)
    # Only what the weights depend on: timings and resume points go to the log, so that the same
    # params give the same metrics file (and dvc.lock) whichever way the run went.
    return {**summary, "generator": checkpoint.file_hash(run_dir / paths.GENERATOR_FILE)}


def train_step(g_train, d_train, G, ema, opt_g, opt_d, data: DeviceImages, rng: torch.Generator,
               tp: TrainGeneratorParams, step: int, lecam: "LeCam") -> torch.Tensor:
    """One D update then one G update on the same fake batch; returns METRICS as a device tensor. Under DDP
    (components/ranks.py) the batch, the latents and the DiffAugment draws are this process's rows of the
    global batch's; the returned metrics are the means over the processes."""
    real, labels, _ = data.batch(tp.batch_size, rng)
    z = ranks.my_slice(torch.randn(tp.batch_size, G.latent_dim, generator=rng, device=real.device))
    mine = ranks.my_slice(torch.arange(tp.batch_size, device=real.device))
    rows_d = None if ranks.world() == 1 else Rows(torch.cat([mine, mine + tp.batch_size]), 2 * tp.batch_size)
    rows_g = None if ranks.world() == 1 else Rows(mine, tp.batch_size)
    precision = resolve_precision(real.device, tp.precision)
    with autocast(real.device, precision):
        fake = g_train(z, labels)
        both = augment(torch.cat([real, fake.detach()]), tp.diffaugment, rng, rows_d)
        d_real, d_fake = d_train(both, torch.cat([labels, labels])).float().chunk(2)
        loss_d = cgan.d_loss(tp.loss, d_real, d_fake, tp.label_smoothing)
    if tp.lecam:
        loss_d = loss_d + tp.lecam * lecam.penalty(d_real, d_fake)
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()

    # G's step needs gradients through D, not for D's weights; under DDP through D itself, not its wrapper
    # (whose gradient hooks would wait for a reduction of D's weights that never comes)
    critic = getattr(d_train, "module", d_train)
    critic.requires_grad_(False)
    with autocast(real.device, precision):
        loss_g = cgan.g_loss(tp.loss, critic(augment(fake, tp.diffaugment, rng, rows_g), labels))
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    critic.requires_grad_(True)

    update_ema(ema, G, tp.ema_decay, step)
    return ranks.mean(torch.stack([loss_d, loss_g, d_real.mean(), d_fake.mean(),
                                   (d_real > 0).float().mean(), (d_fake < 0).float().mean()]).detach())


class LeCam:
    """LeCam regularisation (Tseng et al. 2021): keeps D's outputs on real and fake images near the moving
    averages of the other side's, which bounds how far D can overfit a small training set. The averages live on
    the device and in the checkpoint (a resumed run continues them)."""

    DECAY = 0.99

    def __init__(self, device: torch.device):
        self.real = torch.zeros((), device=device)
        self.fake = torch.zeros((), device=device)

    def penalty(self, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
        self.real.lerp_(ranks.mean(d_real.detach().mean()), 1 - self.DECAY)  # the global batch's, under DDP
        self.fake.lerp_(ranks.mean(d_fake.detach().mean()), 1 - self.DECAY)
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


def run_fingerprint(gp: GeneratorParams, tp: TrainGeneratorParams, seed: int, class_names: list[str],
                    data_digest: str, device: torch.device) -> str:
    """What a checkpoint must match to be resumed: everything that shapes the weights (the device
    type too: CPU and CUDA differ in numerics and in the trainer's RNG state; the process count)."""
    other_kinds = {name for name, value in tp if isinstance(value, FitParams)}
    # the precision enters resolved, as in fit: auto and the precision it picked are the same run
    shaping = tp.model_dump(mode="json", exclude=NOT_SHAPING | other_kinds | {"nproc", "precision"})
    return json.dumps({"generator": gp.model_dump(mode="json"), "train": shaping, "seed": seed,
                       "class_names": class_names, "data": data_digest, "device": device.type,
                       "precision": resolve_precision(device, tp.precision), **ranks.fingerprint()}, sort_keys=True)
