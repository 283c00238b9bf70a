"""Training the plain autoencoders on the shared single-loss loop (fit.py): the outlier scorer (learns to
reconstruct the real train images) and the denoiser (learns to map noisy copies of them back).

Both work at the generator's size, where the generated samples are denoised and scored: the real
images are brought to it as the generator's training images are (components/pixels.py: resize).
Each run folder holds checkpoints/, metrics.csv, samples/step-NNNNNNN.png (val images: the input row(s)
above the output row) and, once finished, the model file and its final grid. Under torchrun each process
trains on its slice of every batch (components/ranks.py) and rank 0 alone writes the files.
"""

import hashlib
from pathlib import Path

import numpy as np
import torch

from components import paths, ranks
from components.config.autoencoder import TrainDenoiserParams, TrainScorerParams
from components.data.transforms import noise
from components.plots import save_grid
from components.models import autoencoder
from components.pixels import psnr_pooled, stream_seed, to_device, to_signed
from components.training import checkpoint
from components.training.fit import fit


def train_scorer(images: np.ndarray, val: np.ndarray, tp: TrainScorerParams, seed: int, device: torch.device,
                 run_dir: Path) -> tuple[autoencoder.Autoencoder, dict]:
    """Train the scorer on uint8 (N, H, W, C) images; `val` (a few images) go into the picture."""
    run_dir = Path(run_dir)
    data = to_device(images, device)
    model = autoencoder.build(images.shape[-1], images.shape[1], seed, tp.width, tp.levels, tp.latent_dim)

    def batch_metrics(m: autoencoder.Autoencoder, rng: torch.Generator, step: int) -> torch.Tensor:
        index = torch.randint(len(data), (tp.batch_size,), generator=rng, device=device)
        x = to_signed(data[ranks.my_slice(index)])   # under torchrun: this rank's slice of the batch
        y = m(x)
        return torch.stack([(y - x).square().mean(), psnr_pooled(y.detach().clamp(-1, 1), x, peak=2.0)])

    def picture(m: autoencoder.Autoencoder, path: Path) -> None:
        save_grid(np.stack([val, autoencoder.outputs(m, val, len(val), device)]), path)

    model, summary = fit(model, batch_metrics, ("loss", "psnr"), tp, seed, device, run_dir,
                         fingerprint(images, "scorer"), finals=(paths.SCORER_FILE, paths.SCORER_GRID), name="train_scorer",
                         picture=picture)
    if not ranks.is_main():
        return model, summary
    checkpoint.save(run_dir / paths.SCORER_FILE, autoencoder.export(model, "scorer", summary["steps"]))
    picture(model, run_dir / paths.SCORER_GRID)
    return model, summary


def train_denoiser(images: np.ndarray, val: np.ndarray, tp: TrainDenoiserParams, seed: int, device: torch.device,
                   run_dir: Path) -> tuple[autoencoder.Autoencoder, dict]:
    """Train the denoiser on uint8 (N, H, W, C) clean images and tp.variants noisy copies of each
    (components.data.transforms.noise, copy v seeded by (seed, 0, v)); `val` go into the picture."""
    run_dir = Path(run_dir)
    clean = to_device(images, device)
    noisy = torch.cat([to_device(noise(images, tp.noise, stream_seed(seed, 0, v)), device)
                       for v in range(tp.variants)])
    val_noisy = noise(val, tp.noise, stream_seed(seed, 1))
    model = autoencoder.build(images.shape[-1], images.shape[1], seed, tp.width, tp.levels)

    def batch_metrics(m: autoencoder.Autoencoder, rng: torch.Generator, step: int) -> torch.Tensor:
        index = ranks.my_slice(torch.randint(len(noisy), (tp.batch_size,), generator=rng, device=device))
        x, target = to_signed(noisy[index]), to_signed(clean[index % len(clean)])
        y = m(x)
        return torch.stack([(y - target).square().mean(), psnr_pooled(y.detach().clamp(-1, 1), target, peak=2.0),
                            psnr_pooled(x, target, peak=2.0)])

    def picture(m: autoencoder.Autoencoder, path: Path) -> None:
        save_grid(np.stack([val, val_noisy, autoencoder.outputs(m, val_noisy, len(val), device)]), path)

    model, summary = fit(model, batch_metrics, ("loss", "psnr", "psnr_noisy"), tp, seed, device, run_dir,
                         fingerprint(images, "denoiser"), finals=(paths.DENOISER_FILE, paths.DENOISER_GRID), name="train_denoiser",
                         picture=picture)
    if not ranks.is_main():
        return model, summary
    checkpoint.save(run_dir / paths.DENOISER_FILE, autoencoder.export(model, "denoiser", summary["steps"]))
    picture(model, run_dir / paths.DENOISER_GRID)
    return model, summary


def fingerprint(images: np.ndarray, kind: str) -> dict:
    return {"kind": kind, "data": hashlib.sha256(images.tobytes()).hexdigest(), "shape": list(images.shape)}
