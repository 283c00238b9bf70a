"""Training the plain autoencoders on the shared single-loss loop (fit.py): the outlier scorer (learns to
reconstruct the real train images) and the denoiser (learns to map noisy copies of them back).

Both work at the generator's size, where the generated samples are denoised and scored: the real
images are brought to it as the generator's training images are (components/training/trainer.py: resize).
Each run folder holds checkpoints/, metrics.csv, samples/step-NNNNNNN.png (val images: the input row(s)
above the output row) and, once finished, the model file and its final grid.
"""

import hashlib
from pathlib import Path

import numpy as np
import torch

from components.config.autoencoder import TrainDenoiserParams, TrainScorerParams
from components.data.transforms import noise
from components.generation.sample import save_grid
from components.models import autoencoder
from components.training import checkpoint
from components.training.fit import fit
from components.training.trainer import resize

SCORER, SCORER_GRID = "scorer.pt", "reconstructions.png"
DENOISER, DENOISER_GRID = "denoiser.pt", "denoised.png"


def at_size(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, H, W, C) images at (N, size, size, C), resized as the generator's training images are."""
    pixels = resize(torch.from_numpy(np.array(images)).permute(0, 3, 1, 2), size)  # a writable copy
    return pixels.permute(0, 2, 3, 1).contiguous().numpy()


def stream_seed(seed: int, *key: int) -> int:
    """A seed of its own for each use of randomness (see the callers' keys), from the run's seed alone."""
    return int(np.random.SeedSequence([seed, *key]).generate_state(1)[0])


def to_device(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (N, H, W, C) -> uint8 (N, C, H, W) on the device, moved once."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous().to(device)


def scale(pixels: torch.Tensor) -> torch.Tensor:
    return pixels.float().div_(127.5).sub_(1.0)


def batch_psnr(images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """PSNR (dB) of a batch in [-1, 1] (peak-to-peak 2) from its mean squared error, for the plots."""
    return 10 * torch.log10(4.0 / (images.float().clamp(-1, 1) - targets).square().mean().clamp_min(1e-10))


def train_scorer(images: np.ndarray, val: np.ndarray, tp: TrainScorerParams, seed: int, device: torch.device,
                 run_dir: Path) -> tuple[autoencoder.Autoencoder, dict]:
    """Train the scorer on uint8 (N, H, W, C) images; `val` (a few images) go into the picture."""
    run_dir = Path(run_dir)
    data = to_device(images, device)
    model = autoencoder.build(images.shape[-1], images.shape[1], seed, tp.width, tp.levels, tp.latent_dim)

    def batch_metrics(m: autoencoder.Autoencoder, rng: torch.Generator, step: int) -> torch.Tensor:
        x = scale(data[torch.randint(len(data), (tp.batch_size,), generator=rng, device=device)])
        y = m(x)
        return torch.stack([(y - x).square().mean(), batch_psnr(y.detach(), x)])

    def picture(m: autoencoder.Autoencoder, path: Path) -> None:
        save_grid(np.stack([val, autoencoder.outputs(m, val, len(val), device)]), path)

    model, summary = fit(model, batch_metrics, ("loss", "psnr"), tp, seed, device, run_dir,
                         fingerprint(images, "scorer"), finals=(SCORER, SCORER_GRID), name="train_scorer",
                         picture=picture)
    checkpoint.save(run_dir / SCORER, autoencoder.export(model, "scorer", summary["steps"]))
    picture(model, run_dir / SCORER_GRID)
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
        index = torch.randint(len(noisy), (tp.batch_size,), generator=rng, device=device)
        x, target = scale(noisy[index]), scale(clean[index % len(clean)])
        y = m(x)
        return torch.stack([(y - target).square().mean(), batch_psnr(y.detach(), target),
                            batch_psnr(x, target)])

    def picture(m: autoencoder.Autoencoder, path: Path) -> None:
        save_grid(np.stack([val, val_noisy, autoencoder.outputs(m, val_noisy, len(val), device)]), path)

    model, summary = fit(model, batch_metrics, ("loss", "psnr", "psnr_noisy"), tp, seed, device, run_dir,
                         fingerprint(images, "denoiser"), finals=(DENOISER, DENOISER_GRID), name="train_denoiser",
                         picture=picture)
    checkpoint.save(run_dir / DENOISER, autoencoder.export(model, "denoiser", summary["steps"]))
    picture(model, run_dir / DENOISER_GRID)
    return model, summary


def fingerprint(images: np.ndarray, kind: str) -> dict:
    return {"kind": kind, "data": hashlib.sha256(images.tobytes()).hexdigest(), "shape": list(images.shape)}
