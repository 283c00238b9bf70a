"""train_upscaler: train the super-resolution net on the real train images into data/models/upscaler, and
measure it against bicubic upsampling on the real val images (metrics/train_upscaler.json).

Targets are the prepared train images; inputs are the same images degraded (components/data/transforms.py:
blur, a downscale by upscale.factor with a random interpolation, noise, JPEG) afresh every epoch, from the
seed and the epoch alone, so a resumed run sees the inputs a straight run saw. The output folder persists
between runs (dvc.yaml: persist: true): a killed run resumes from its last checkpoint. With
upscale.factor 1 there is nothing to learn: the folder holds only a note saying so.

data/models/upscaler holds upscaler.pt, metrics.csv, checkpoints/, samples/step-*.png (the grid per
checkpoint) and lr_bicubic_sr_hr.png: a row each of real val images as the generator sees them
(area-downscaled), their bicubic upsampling, the SR net's output, and the originals.
"""

import hashlib
import logging
import shutil

import numpy as np
import torch

from components import paths
from components.config import Params
from components.config.transforms import Blur, DegradeParams, GaussianNoise, Jpeg
from components.config.upscale import TrainUpscalerParams
from components.data.atomic import write_json, write_text
from components.data.manifest import read_manifest, read_split
from components.data.shards import gather_images
from components.data.transforms import degrade
from components.device import describe, resolve_device
from components.errors import DataError
from components.plots import save_grid
from components.metrics.fidelity import fidelity
from components.models import upscaler
from components.pixels import psnr_per_image, stream_seed, to_device, to_signed
from components.training import checkpoint
from components.training.fit import fit

log = logging.getLogger("genaug")

FINAL, GRID, NOTE = "upscaler.pt", "lr_bicubic_sr_hr.png", "no_upscaler.txt"
METRICS = ("loss", "psnr", "psnr_bicubic")
GRID_ROWS = 10
# What the generator trains on at generator.size: the real images, area-downscaled, nothing else.
AREA_ONLY = DegradeParams(blur=Blur(p=0), interpolations=["area"], gaussian=GaussianNoise(p=0), jpeg=Jpeg(p=0))


def run(params: Params) -> dict:
    factor = params.upscale.factor
    if factor == 1:
        return skip()
    tp, device = params.train_upscaler, resolve_device(params.device)
    images, _ = read_split(paths.PREPARED, "train")
    val = val_images(params)
    channels = images.shape[-1]
    print(f"train_upscaler: x{factor} SR net on {len(images)} real images "
          f"({images.shape[1] // factor} -> {images.shape[1]} px), {tp.steps} steps on {describe(device)}")

    pairs = TrainingPairs(images, tp.degrade, factor, params.seed, device)
    grid_lr = degrade(val[:GRID_ROWS], AREA_ONLY, factor, seed=0)
    (paths.UPSCALER / NOTE).unlink(missing_ok=True)
    model, summary = fit(
        upscaler.build(factor, channels, tp.width, tp.blocks, params.seed),
        lambda model, rng, step: batch_metrics(model, pairs, rng, step, tp.batch_size), METRICS, tp, params.seed,
        device, paths.UPSCALER, fingerprint={"model": upscaler.KIND, "factor": factor, "data": pairs.digest},
        finals=(FINAL, GRID), name="train_upscaler",
        picture=lambda model, path: save_grid(comparison(model, grid_lr, val[:GRID_ROWS], device), path))

    checkpoint.save(paths.UPSCALER / FINAL, upscaler.export(model, summary["steps"]))
    save_grid(comparison(model, grid_lr, val[:GRID_ROWS], device), paths.UPSCALER / GRID)
    quality = measure(model, val, tp, factor, params.seed, device)
    for name, result in quality.items():
        if name != "images" and result["sr"]["psnr"] <= result["bicubic"]["psnr"]:
            log.warning("train_upscaler: the SR net does not beat bicubic on %s val images (%.2f dB vs %.2f dB): "
                        "train longer (train_upscaler.steps) or check train_upscaler.degrade",
                        name, result["sr"]["psnr"], result["bicubic"]["psnr"])
    area = quality["area"]
    print(f"train_upscaler: val PSNR {area['sr']['psnr']:.2f} dB (bicubic {area['bicubic']['psnr']:.2f}), "
          f"SSIM {area['sr']['ssim']:.4f} (bicubic {area['bicubic']['ssim']:.4f})")
    summary = {"factor": factor, **summary, "upscaler": checkpoint.file_hash(paths.UPSCALER / FINAL), "val": quality}
    write_json(paths.metrics_file("train_upscaler"), summary)
    return summary


def skip() -> dict:
    """upscale.factor 1: an empty model folder with a note (what an earlier run left is removed, so the
    output is the same whatever ran before), and metrics that say no SR net is used."""
    shutil.rmtree(paths.UPSCALER, ignore_errors=True)
    paths.UPSCALER.mkdir(parents=True)
    write_text(paths.UPSCALER / NOTE, "upscale.factor is 1: no super-resolution net is trained, and the upscale "
                                      "stage passes the generated samples through unchanged.\n")
    summary = {"factor": 1, "upscaler": None}
    write_json(paths.metrics_file("train_upscaler"), summary)
    print("train_upscaler: upscale.factor is 1, no super-resolution: nothing to train")
    return summary


def val_images(params: Params) -> np.ndarray:
    """The real val images, the first of each class first (so a grid shows every class), then the rest."""
    manifest = read_manifest(paths.PREPARED)
    rows = manifest[manifest["split"] == "val"]
    if rows.empty:
        raise DataError(f"{paths.PREPARED}: no val images to measure the upscaler on; set prepare.val_fraction "
                        f"above 0 (it is {params.prepare.val_fraction})")
    rank = rows.groupby("label").cumcount()
    rows = rows.assign(rank=rank.to_numpy()).sort_values(["rank", "label"], kind="stable")
    return gather_images(paths.PREPARED, rows)


class TrainingPairs:
    """The train images (targets) on the device, and their degraded versions (inputs), redrawn at each
    epoch with a seed of (seed, epoch) alone; batches are drawn by index sampling from the trainer's generator."""

    def __init__(self, images: np.ndarray, params: DegradeParams, factor: int, seed: int, device: torch.device):
        self.images, self.params, self.factor, self.seed, self.device = images, params, factor, seed, device
        self.digest = hashlib.sha256(images.tobytes()).hexdigest()
        self.targets = to_device(images, device)
        self.epoch, self.inputs = -1, None

    def batch(self, size: int, rng: torch.Generator, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets) in [-1, 1] for training step `step` (from 0)."""
        epoch = step * size // len(self.images)
        if epoch != self.epoch:
            low = degrade(self.images, self.params, self.factor, seed=stream_seed(self.seed, 0, epoch))
            self.epoch, self.inputs = epoch, to_device(low, self.device)
        index = torch.randint(len(self.images), (size,), generator=rng, device=self.device)
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
