"""upscale: bring the (denoised) generated samples from generator.size to prepare.size with the trained
super-resolution net, into data/upscaled (same layout: shards, manifest, info.json), and draw LR / SR
pairs per class (data/upscaled/lr_sr.png).

Shards are mapped a batch (upscale.batch_size) at a time by components/data/shards.py: map_shards, so
memory stays near one batch whatever the number of samples. Shard names and
offsets stay as they were; the manifest keeps every column and adds `upscale_factor` and `upscaler` (the
hash of the weights used). With upscale.factor 1 the samples pass through unchanged (upscale_factor 1,
no upscaler).
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from components import fanout, paths
from components.config import Params
from components.data.atomic import atomic_dir, write_json
from components.data.manifest import INFO, DatasetInfo, read_manifest, write_manifest
from components.data.shards import gather_images, map_shards
from components.device import describe, resolve_device
from components.errors import DataError
from components.plots import paired_grid, save_grid
from components.models import upscaler
from components.training.checkpoint import file_hash

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
          + (f"with upscaler {weights[:12]} on {describe(device)}, {fanout.where(device.type == 'cuda')}"
             if model else "(factor 1: passed through)"))

    with atomic_dir(paths.UPSCALED) as out:
        fn = None if model is None else lambda batch: upscaler.apply(model, batch, u.batch_size, device)
        map_shards(source, out, sorted(manifest["shard"].unique()), fn, u.batch_size, u.factor, desc="upscale",
                   gpu=device.type == "cuda")
        manifest = provenance(manifest, u.factor, weights)
        write_manifest(out, manifest)
        extra = json.loads((source / INFO).read_text())
        write_json(out / INFO, {**extra, "size": target, "upscale_factor": u.factor, "upscaler": weights})
        if len(manifest):
            save_grid(pairs_grid(manifest, source, out, info, u.factor, u.grid_columns), out / paths.UPSCALE_GRID)

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
    path = paths.UPSCALER / paths.UPSCALER_FILE
    model, saved = upscaler.load(path, device)
    arch = saved["arch"]
    if (arch["factor"], arch["channels"]) != (factor, channels):
        raise DataError(f"{path}: trained for x{arch['factor']} on {arch['channels']}-channel images, but "
                        f"upscale.factor is {factor} and the samples have {channels} channel(s); re-run train_upscaler")
    return model, file_hash(path)


def pairs_grid(manifest: pd.DataFrame, source: Path, out: Path, info: DatasetInfo, factor: int,
               columns: int) -> np.ndarray:
    """The first `columns` samples of each class, LR (pixels repeated) beside SR."""
    return paired_grid(manifest, len(info.class_names), columns, info.size * factor, info.channels,
                       lambda rows: gather_images(source, rows).repeat(factor, axis=1).repeat(factor, axis=2),
                       lambda rows: gather_images(out, rows))
