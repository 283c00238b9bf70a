"""upscale: bring the (denoised) generated samples from generator.size to prepare.size with the trained
super-resolution net, into data/upscaled (same layout: shards, manifest, info.json), and draw LR / SR
pairs per class (data/upscaled/lr_sr.png).

Each shard is read memory-mapped and written batch by batch into a memory-mapped .npy of the same name,
so memory stays near one batch (upscale.batch_size) whatever the number of samples. Shard names and
offsets stay as they were; the manifest keeps every column and adds `upscale_factor` and `upscaler` (the
hash of the weights used). With upscale.factor 1 the samples pass through unchanged (upscale_factor 1,
no upscaler).
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from components import paths
from components.config import Params
from components.data.atomic import atomic_dir, atomic_file, write_json
from components.data.manifest import INFO, DatasetInfo, read_manifest, write_manifest
from components.data.shards import gather_images, load_shard, shard_path
from components.device import describe, resolve_device
from components.errors import DataError
from components.generation.sample import save_grid
from components.models import upscaler
from components.stages.train_upscaler import FINAL
from components.training.checkpoint import file_hash

GRID = "lr_sr.png"
# The synthetic samples reach upscale through denoise (components/paths.py).
SOURCE = paths.DENOISED


def run(params: Params, source: Path = SOURCE) -> dict:
    u, target = params.upscale, params.prepare.size
    info = DatasetInfo.read(source)
    if info.size * u.factor != target:
        raise DataError(f"{source}: samples are {info.size}x{info.size}, and x{u.factor} (upscale.factor) gives "
                        f"{info.size * u.factor}, not prepare.size {target}; re-run the stages before upscale "
                        "(train_generator, generate, ...) with the current params")
    device = resolve_device(params.device)
    model, weights = load_model(u.factor, info.channels, device)
    manifest = read_manifest(source)
    print(f"upscale: {len(manifest)} images, {info.size} -> {target} px "
          + (f"with upscaler {weights[:12]} on {describe(device)}" if model else "(factor 1: passed through)"))

    with atomic_dir(paths.UPSCALED) as out:
        for shard in sorted(manifest["shard"].unique()):
            src, dst = shard_path(source, shard), shard_path(out, shard)
            if model is None:
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
            else:
                upscale_shard(source, shard, dst, model, u.batch_size, device)
        manifest = provenance(manifest, u.factor, weights)
        write_manifest(out, manifest)
        extra = json.loads((source / INFO).read_text())
        write_json(out / INFO, {**extra, "size": target, "upscale_factor": u.factor, "upscaler": weights})
        if len(manifest):
            save_grid(pairs_grid(manifest, source, out, info, u.factor, u.grid_columns), out / GRID)

    summary = {"images": len(manifest), "factor": u.factor, "size": {"in": info.size, "out": target},
               "upscaler": weights}
    write_json(paths.metrics_file("upscale"), summary)
    return summary


def provenance(manifest: pd.DataFrame, factor: int, weights: str | None) -> pd.DataFrame:
    """The manifest with the columns this stage adds: upscale_factor, upscaler."""
    return manifest.assign(upscale_factor=factor, upscaler=weights).astype(
        {"upscale_factor": "int64", "upscaler": "string"})


def load_model(factor: int, channels: int, device: torch.device) -> tuple[upscaler.Upscaler | None, str | None]:
    """The trained net and the hash of its weights; (None, None) for factor 1."""
    if factor == 1:
        return None, None
    path = paths.UPSCALER / FINAL
    model, saved = upscaler.load(path, device)
    arch = saved["arch"]
    if (arch["factor"], arch["channels"]) != (factor, channels):
        raise DataError(f"{path}: trained for x{arch['factor']} on {arch['channels']}-channel images, but "
                        f"upscale.factor is {factor} and the samples have {channels} channel(s); re-run train_upscaler")
    return model, file_hash(path)


def upscale_shard(source: Path, shard: str, dst: Path, model: upscaler.Upscaler, batch_size: int,
                  device: torch.device) -> None:
    """Upscale every image of one shard into `dst`, one batch in memory at a time."""
    images = load_shard(source, shard, mmap=True)
    n, h, w, c = images.shape
    with atomic_file(dst) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8,
                                        shape=(n, h * model.factor, w * model.factor, c))
        for start in range(0, n, batch_size):
            out[start:start + batch_size] = upscaler.apply(model, np.array(images[start:start + batch_size]),
                                                           batch_size, device)
        out.flush()
        del out


def pairs_grid(manifest: pd.DataFrame, source: Path, out: Path, info: DatasetInfo, factor: int,
               columns: int) -> np.ndarray:
    """(classes, 2 x columns, H, W, C): the first `columns` samples of each class, LR (pixels repeated)
    beside SR; white where a class has fewer."""
    side, channels = info.size * factor, info.channels
    grid = np.full((len(info.class_names), 2 * columns, side, side, channels), 255, np.uint8)
    for label, rows in manifest.groupby("label", sort=True):
        rows = rows.head(columns)
        low, high = gather_images(source, rows), gather_images(out, rows)
        grid[label, 0:2 * len(rows):2] = low.repeat(factor, axis=1).repeat(factor, axis=2)
        grid[label, 1:2 * len(rows):2] = high
    return grid
