"""Training the conditional VAE (generator.kind: cvae) on the shared single-loss loop (fit.py).

The run folder is the cGAN's (data/models/generator): checkpoints/, metrics.csv (loss, recon, kl),
samples/step-NNNNNNN.png (a row of prior samples per class) and, once finished, generator.pt (the
EMA decoder, read by generate like the cGAN's generator) and samples.png.
"""

from pathlib import Path

import numpy as np
import torch

from components import paths, ranks
from components.config.generator import GeneratorParams, TrainGeneratorParams
from components.generation.sample import class_grid
from components.plots import save_grid
from components.models import cvae
from components.models.augment import shift_flip
from components.training import checkpoint
from components.training.fit import DeviceImages, check_data, fit

METRICS = ("loss", "recon", "kl")


def train_cvae(images: np.ndarray, labels: np.ndarray, class_names: list[str], generator_params: GeneratorParams,
               train_params: TrainGeneratorParams, seed: int, device: torch.device, run_dir: Path) -> dict:
    """Train the cVAE on uint8 (N, H, W, C) images and int64 labels; returns a summary dict."""
    gp, tp, run_dir = generator_params, train_params.cvae, Path(run_dir)
    check_data(images, labels, len(class_names), class_names)
    data = DeviceImages(images, labels, device, gp.size)
    model = cvae.build(gp, len(class_names), images.shape[-1], seed)

    def batch_metrics(m: cvae.CVAE, rng: torch.Generator, step: int) -> torch.Tensor:
        x, y, _ = data.batch(tp.batch_size, rng)   # under torchrun: this rank's slice, of latents too
        eps = ranks.my_slice(torch.randn(tp.batch_size, gp.latent_dim, generator=rng, device=device))
        x = shift_flip(x, tp.augment, rng, tp.batch_size)
        logits, mean, logvar = m(x, y, eps)
        recon = cvae.reconstruction_nll(logits, x, tp.likelihood).mean()
        kl = cvae.kl_divergence(mean, logvar).mean()
        warmup = min(1.0, (step + 1) / tp.kl_warmup_steps) if tp.kl_warmup_steps else 1.0
        return torch.stack([recon + tp.beta * warmup * kl, recon, kl])

    def picture(m: cvae.CVAE, path: Path) -> None:
        save_grid(class_grid(m.decoder, seed, train_params.grid_columns, device=device), path)

    fingerprint = {"kind": cvae.KIND, "generator": gp.model_dump(mode="json"), "class_names": class_names,
                   "data": data.digest}
    model, summary = fit(model, batch_metrics, METRICS, tp, seed, device, run_dir, fingerprint,
                         finals=(paths.GENERATOR_FILE, paths.GENERATOR_GRID), name="train_generator", picture=picture)
    posterior = None if tp.prior == "standard" else \
        cvae.encode(model, *data.take(torch.arange(len(data), device=device)), tp.prior, spread=tp.prior_spread)
    cvae.set_posterior(model.decoder, posterior)
    if not ranks.is_main():
        return summary
    checkpoint.save(run_dir / paths.GENERATOR_FILE, {**cvae.export(model, gp, class_names, summary["steps"], posterior),
                                      "seed": seed})
    picture(model, run_dir / paths.GENERATOR_GRID)
    return {**summary, "train_images": len(labels), "generator": checkpoint.file_hash(run_dir / paths.GENERATOR_FILE)}
