"""train_upscaler: train the super-resolution net on the real train images into data/models/upscaler
(components/training/upscaler.py: inputs degraded afresh every epoch), and measure it against bicubic
upsampling on the real val images (metrics/train_upscaler.json). The output folder persists between runs
(dvc.yaml: persist: true): a killed run resumes from its last checkpoint. With upscale.factor 1 there is
nothing to learn: the folder holds only a note saying so. With train_upscaler.nproc N > 1 it trains in N
processes (components/stages/processes.py); rank 0 measures.

data/models/upscaler holds upscaler.pt, metrics.csv, checkpoints/, samples/step-*.png (the grid per
checkpoint) and lr_bicubic_sr_hr.png: a row each of real val images as the generator sees them
(area-downscaled), their bicubic upsampling, the SR net's output, and the originals.
"""

import logging

import numpy as np
import torch

from components import paths, ranks
from components.config import Params
from components.data.atomic import write_json
from components.data.manifest import read_manifest, read_split
from components.data.shards import gather_images
from components.device import describe
from components.errors import DataError
from components.stages import processes
from components.training import checkpoint
from components.training.upscaler import measure, train_upscaler

log = logging.getLogger("genaug")

GRID_ROWS = 10  # val images in the pictures


def run(params: Params) -> dict:
    factor = params.upscale.factor
    if factor == 1:
        why = ("upscale.factor is 1: no super-resolution net is trained, and the upscale stage passes the "
               "generated samples through unchanged")
        return processes.nothing_to_train("train_upscaler", paths.UPSCALER, paths.UPSCALER_NOTE, why,
                                          {"factor": 1, "upscaler": None})
    return processes.run("train_upscaler", params, params.train_upscaler.nproc, train)


def train(params: Params, device: torch.device) -> dict:
    factor, tp = params.upscale.factor, params.train_upscaler
    images, _ = read_split(paths.PREPARED, "train")
    val = val_images(params)
    if ranks.is_main():
        print(f"train_upscaler: x{factor} SR net on {len(images)} real images "
              f"({images.shape[1] // factor} -> {images.shape[1]} px), {tp.steps} steps on "
              f"{describe(device, tp.precision)}" + ranks.count_text())
        (paths.UPSCALER / paths.UPSCALER_NOTE).unlink(missing_ok=True)
    model, summary = train_upscaler(images, val[:GRID_ROWS], tp, factor, params.seed, device, paths.UPSCALER)
    if not ranks.is_main():
        return summary
    quality = measure(model, val, tp, factor, params.seed, device)
    for name, result in quality.items():
        if name != "images" and result["sr"]["psnr"] <= result["bicubic"]["psnr"]:
            log.warning("train_upscaler: the SR net does not beat bicubic on %s val images (%.2f dB vs %.2f dB): "
                        "train longer (train_upscaler.steps) or check train_upscaler.degrade",
                        name, result["sr"]["psnr"], result["bicubic"]["psnr"])
    area = quality["area"]
    print(f"train_upscaler: val PSNR {area['sr']['psnr']:.2f} dB (bicubic {area['bicubic']['psnr']:.2f}), "
          f"SSIM {area['sr']['ssim']:.4f} (bicubic {area['bicubic']['ssim']:.4f})")
    summary = {"factor": factor, **summary, "upscaler": checkpoint.file_hash(paths.UPSCALER / paths.UPSCALER_FILE), "val": quality}
    write_json(paths.metrics_file("train_upscaler"), summary)
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
