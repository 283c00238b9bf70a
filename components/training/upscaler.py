"""Training the super-resolution net (train_upscaler) on the shared single-loss loop (fit.py), and measuring it
against bicubic upsampling.

Targets are the real train images; inputs are the same images degraded (components/data/transforms.py: blur,
a downscale by the factor with a random interpolation, noise, JPEG) afresh every epoch, from the seed and the
epoch alone, so a resumed run sees the inputs a straight run saw. The picture per checkpoint (and the final
one) has a row each of val images as the generator sees them (area-downscaled), their bicubic upsampling,
the SR net's output, and the originals.
"""

import hashlib
from pathlib import Path

import numpy as np
import torch

from components import paths, ranks
from components.config.transforms import Blur, DegradeParams, GaussianNoise, Jpeg
from components.config.upscale import TrainUpscalerParams
from components.data.transforms import degrade
from components.metrics.fidelity import fidelity
from components.models import upscaler
from components.pixels import psnr_per_image, stream_seed, to_device, to_signed
from components.plots import save_grid
from components.training import checkpoint
from components.training.fit import fit

METRICS = ("loss", "psnr", "psnr_bicubic")
# What the generator trains on at generator.size: the real images, area-downscaled, nothing else.
AREA_ONLY = DegradeParams(blur=Blur(p=0), interpolations=["area"], gaussian=GaussianNoise(p=0), jpeg=Jpeg(p=0))


def train_upscaler(images: np.ndarray, shown: np.ndarray, tp: TrainUpscalerParams, factor: int, seed: int,
                   device: torch.device, run_dir: Path) -> tuple[upscaler.Upscaler, dict]:
    """Train the x`factor` net on uint8 (N, H, W, C) images (the targets); `shown` (a few val images) go into
    the pictures. Writes the model file and its picture into run_dir; returns the model and fit's summary."""
    run_dir = Path(run_dir)
    pairs = TrainingPairs(images, tp.degrade, factor, seed, device)
    low = degrade(shown, AREA_ONLY, factor, seed=0)

    def picture(model: upscaler.Upscaler, path: Path) -> None:
        save_grid(comparison(model, low, shown, device), path)

    model, summary = fit(
        upscaler.build(factor, images.shape[-1], tp.width, tp.blocks, seed),
        lambda model, rng, step: batch_metrics(model, pairs, rng, step, tp.batch_size), METRICS, tp, seed,
        device, run_dir, fingerprint={"model": upscaler.KIND, "factor": factor, "data": pairs.digest},
        finals=(paths.UPSCALER_FILE, paths.UPSCALER_GRID), name="train_upscaler", picture=picture)
    if not ranks.is_main():
        return model, summary
    checkpoint.save(run_dir / paths.UPSCALER_FILE, upscaler.export(model, summary["steps"]))
    picture(model, run_dir / paths.UPSCALER_GRID)
    return model, summary


class TrainingPairs:
    """The train images (targets) on the device, and their degraded versions (inputs), redrawn at each
    epoch with a seed of (seed, epoch) alone; batches are drawn by index sampling from the trainer's generator."""

    def __init__(self, images: np.ndarray, params: DegradeParams, factor: int, seed: int, device: torch.device):
        self.images, self.params, self.factor, self.seed, self.device = images, params, factor, seed, device
        self.digest = hashlib.sha256(images.tobytes()).hexdigest()
        self.targets = to_device(images, device)
        self.epoch, self.inputs = -1, None

    def batch(self, size: int, rng: torch.Generator, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets) in [-1, 1] for training step `step` (from 0); under torchrun, this rank's slice
        of the batch."""
        epoch = step * size // len(self.images)
        if epoch != self.epoch:
            low = degrade(self.images, self.params, self.factor, seed=stream_seed(self.seed, 0, epoch))
            self.epoch, self.inputs = epoch, to_device(low, self.device)
        index = ranks.my_slice(torch.randint(len(self.images), (size,), generator=rng, device=self.device))
        return to_signed(self.inputs[index]), to_signed(self.targets[index])


def batch_metrics(model: upscaler.Upscaler, pairs: TrainingPairs, rng: torch.Generator, step: int,
                  batch_size: int) -> torch.Tensor:
    """L1 loss (EDSR's), and the batch's PSNR of the net and of bicubic upsampling (for the plots)."""
    low, high = pairs.batch(batch_size, rng, step)
    out = model(low)
    loss = (out - high).abs().mean()
    with torch.no_grad():
        psnr = psnr_per_image(out.float().clamp(-1, 1), high, peak=2.0)
        psnr_bicubic = psnr_per_image(upscaler.upsample(low, pairs.factor).float().clamp(-1, 1), high, peak=2.0)
    return torch.stack([loss, psnr, psnr_bicubic])


def measure(model: upscaler.Upscaler, val: np.ndarray, tp: TrainUpscalerParams, factor: int, seed: int,
            device: torch.device) -> dict:
    """PSNR/SSIM of bicubic and of the SR net on the val images, from two kinds of input: `area`, the
    area-downscaled images (what the generator is trained on, so what its samples look like), and
    `degraded`, with the training degradations."""
    out: dict = {"images": len(val)}
    for name, low in (("area", degrade(val, AREA_ONLY, factor, seed=0)),
                      ("degraded", degrade(val, tp.degrade, factor, seed=stream_seed(seed, 1, 0)))):
        bicubic = fidelity(upscaler.bicubic(low, factor, tp.batch_size, device), val)
        sr = fidelity(upscaler.apply(model, low, tp.batch_size, device), val)
        out[name] = {"bicubic": bicubic, "sr": sr,
                     "gain": {"psnr_db": round(sr["psnr"] - bicubic["psnr"], 3),
                              "ssim": round(sr["ssim"] - bicubic["ssim"], 4)}}
    return out


def comparison(model: upscaler.Upscaler, low: np.ndarray, high: np.ndarray, device: torch.device) -> np.ndarray:
    """(4, N, H, W, C): rows LR (pixels repeated), bicubic, SR, HR; a column per image."""
    factor = model.factor
    blocky = low.repeat(factor, axis=1).repeat(factor, axis=2)
    return np.stack([blocky, upscaler.bicubic(low, factor, len(low), device),
                     upscaler.apply(model, low, len(low), device), high])
