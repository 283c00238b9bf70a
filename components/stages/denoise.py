"""denoise: apply the trained denoiser to the generated samples (data/generated -> data/denoised) at
denoise.strength, score every result with the outlier scorer, and draw before/after pairs per class.

output = (1 - strength) * sample + strength * denoised sample; strength 0 copies the shards byte for
byte (the denoiser is not even loaded). Shards are mapped a batch (denoise.batch_size) at a time by
components/data/shards.py: map_shards, so memory stays near one batch whatever the number of samples. The manifest keeps every column and adds `denoise_strength`,
`denoiser` (the hash of the weights used; null at strength 0) and `outlier_score` (the scorer's
reconstruction error of the output: see train_scorer; the filter and the dataset card read it).
before_after.png shows the first denoise.grid_columns samples of each class, generated beside denoised.
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
from components.data.shards import gather_images, load_shard, map_shards
from components.device import describe, resolve_device
from components.errors import DataError
from components.plots import paired_grid, save_grid
from components.models import autoencoder
from components.training.checkpoint import file_hash

SOURCE = paths.GENERATED


def run(params: Params, source: Path = SOURCE) -> dict:
    d, device = params.denoise, resolve_device(params.device)
    info = DatasetInfo.read(source)
    manifest = read_manifest(source)
    denoiser, weights = load_denoiser(d.strength, info.channels, device)
    scorer, _ = autoencoder.load(paths.SCORER / paths.SCORER_FILE, "scorer", device)
    if (scorer.size, scorer.channels) != (info.size, info.channels):
        raise DataError(f"{paths.SCORER / paths.SCORER_FILE}: scores {scorer.size}x{scorer.size}x{scorer.channels} images, but "
                        f"{source} holds {info.size}x{info.size}x{info.channels} ones; re-run train_scorer")
    how = (f"with denoiser {weights[:12]} on {describe(device)}, {fanout.where(device.type == 'cuda')}"
           if denoiser is not None else "(0: passed through)")
    print(f"denoise: {len(manifest)} images at strength {d.strength} {how}")

    with atomic_dir(paths.DENOISED) as out:
        fn = None if denoiser is None else (
            lambda batch: autoencoder.denoise(denoiser, batch, d.strength, d.batch_size, device))
        map_shards(source, out, sorted(manifest["shard"].unique()), fn, d.batch_size, desc="denoise",
                   gpu=device.type == "cuda")
        before, after, change = compare(scorer, source, out, manifest, d.batch_size, device)
        manifest = provenance(manifest, d.strength, weights, after)
        write_manifest(out, manifest)
        extra = json.loads((source / INFO).read_text())
        write_json(out / INFO, {**extra, "denoise_strength": d.strength, "denoiser": weights})
        if len(manifest):
            save_grid(before_after(manifest, source, out, info, d.grid_columns), out / paths.DENOISE_GRID)

    summary = {"images": len(manifest), "strength": d.strength, "denoiser": weights,
               "mean_abs_change": round(change, 4),
               "outlier_score": {"before": mean(before), "after": mean(after)}}
    write_json(paths.metrics_file("denoise"), summary)
    return summary


def provenance(manifest: pd.DataFrame, strength: float, weights: str | None, scores: np.ndarray) -> pd.DataFrame:
    """The manifest with the columns this stage adds: denoise_strength, denoiser, outlier_score."""
    return manifest.assign(denoise_strength=float(strength), denoiser=weights, outlier_score=scores).astype(
        {"denoise_strength": "float64", "denoiser": "string", "outlier_score": "float64"})


def load_denoiser(strength: float, channels: int, device: torch.device) -> tuple[autoencoder.Autoencoder | None,
                                                                                str | None]:
    """The trained denoiser and the hash of its weights; (None, None) at strength 0."""
    if strength == 0:
        return None, None
    path = paths.DENOISER / paths.DENOISER_FILE
    model, _ = autoencoder.load(path, "denoiser", device)
    if model.channels != channels:
        raise DataError(f"{path}: trained on {model.channels}-channel images, but the samples have {channels}; "
                        "re-run train_denoiser")
    return model, file_hash(path)


def compare(scorer: autoencoder.Autoencoder, source: Path, out: Path, manifest: pd.DataFrame, batch_size: int,
            device: torch.device) -> tuple[np.ndarray, np.ndarray, float]:
    """The outlier scores of every manifest row's image before (under `source`) and after (under `out`),
    in row order, and the mean absolute pixel change (grey levels); shards memory-mapped, a batch at a time."""
    position = pd.Series(np.arange(len(manifest)), index=manifest.index)
    before, after, change = np.zeros(len(manifest)), np.zeros(len(manifest)), 0
    for shard, rows in manifest.groupby("shard", sort=True):
        old, new = load_shard(source, shard, mmap=True), load_shard(out, shard, mmap=True)
        for start in range(0, len(rows), batch_size):
            part = rows.iloc[start:start + batch_size]
            offsets, where = part["offset"].to_numpy(), position[part.index].to_numpy()
            x, y = np.asarray(old[offsets]), np.asarray(new[offsets])
            before[where] = autoencoder.score(scorer, x, batch_size, device)
            after[where] = autoencoder.score(scorer, y, batch_size, device)
            change += int(np.abs(x.astype(np.int16) - y).sum())
    pixels = len(manifest) * int(np.prod(old.shape[1:])) if len(manifest) else 1
    return before, after, change / pixels


def before_after(manifest: pd.DataFrame, source: Path, out: Path, info: DatasetInfo, columns: int) -> np.ndarray:
    """The first `columns` samples of each class, as generated beside denoised."""
    return paired_grid(manifest, len(info.class_names), columns, info.size, info.channels,
                       lambda rows: gather_images(source, rows), lambda rows: gather_images(out, rows))


def mean(values: np.ndarray) -> float | None:
    return round(float(values.mean()), 6) if len(values) else None
