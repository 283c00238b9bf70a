"""Training the class-conditional diffusion model (generator.kind: diffusion) on the shared single-loss loop (fit.py).

Each step noises a batch of train images (optionally shifted and mirrored, train_generator.diffusion.augment) at a
random timestep each and teaches the U-Net to predict that noise (mean squared error); with label_dropout, a share
of the batch is taught without its class, so that generate can guide the samples (classifier-free guidance). The
run folder is the other kinds' (data/models/generator): checkpoints/, metrics.csv (loss), samples/step-NNNNNNN.png
(a row of samples per class) and, once finished, generator.pt (the EMA U-Net and its schedule, read by generate as
the others) and samples.png.
"""

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from components import paths, ranks
from components.config.generator import GeneratorParams, TrainGeneratorParams
from components.generation.sample import class_grid
from components.models import diffusion
from components.models.augment import shift_flip
from components.plots import save_grid
from components.training import checkpoint
from components.training.fit import DeviceImages, check_data, fit

METRICS = ("loss",)


def train_diffusion(images: np.ndarray, labels: np.ndarray, class_names: list[str], generator_params: GeneratorParams,
                    train_params: TrainGeneratorParams, seed: int, device: torch.device, run_dir: Path) -> dict:
    """Train the diffusion model on uint8 (N, H, W, C) images and int64 labels; returns a summary dict."""
    gp, tp, run_dir = generator_params, train_params.diffusion, Path(run_dir)
    check_data(images, labels, len(class_names), class_names)
    data = DeviceImages(images, labels, device, gp.size)
    net = diffusion.build(tp, len(class_names), images.shape[-1], seed)
    abar = diffusion.alpha_bar(tp.timesteps).to(device)

    def batch_metrics(m: diffusion.UNet, rng: torch.Generator, step: int) -> torch.Tensor:
        x, y, _ = data.batch(tp.batch_size, rng)   # under torchrun: this rank's slice, of the draws below too
        t = ranks.my_slice(torch.randint(tp.timesteps, (tp.batch_size,), generator=rng, device=device))
        noise = ranks.my_slice(torch.randn(tp.batch_size, *x.shape[1:], generator=rng, device=device))
        x = shift_flip(x, tp.augment, rng, tp.batch_size)
        if tp.label_dropout:  # a share of the batch learns the images without their class, for guidance
            dropped = ranks.my_slice(torch.rand(tp.batch_size, generator=rng, device=device)) < tp.label_dropout
            y = torch.where(dropped, len(class_names), y)
        return F.mse_loss(m(diffusion.noised(x, t, noise, abar), t, y).float(), noise)[None]

    def picture(m: diffusion.UNet, path: Path) -> None:
        save_grid(class_grid(diffusion.Sampler(m, gp, tp), seed, train_params.grid_columns, device=device), path)

    fingerprint = {"kind": diffusion.KIND, "size": gp.size, "class_names": class_names, "data": data.digest}
    net, summary = fit(net, batch_metrics, METRICS, tp, seed, device, run_dir, fingerprint,
                       finals=(paths.GENERATOR_FILE, paths.GENERATOR_GRID), name="train_generator", picture=picture)
    if not ranks.is_main():
        return summary
    checkpoint.save(run_dir / paths.GENERATOR_FILE,
                    {**diffusion.export(net, gp, tp, class_names, summary["steps"]), "seed": seed})
    picture(net, run_dir / paths.GENERATOR_GRID)
    return {**summary, "train_images": len(labels), "generator": checkpoint.file_hash(run_dir / paths.GENERATOR_FILE)}
