"""train_scorer: train the outlier scorer (a bottleneck autoencoder) on the real train images into
data/models/scorer, and score every real image of data/prepared (train, val and test).

An image's outlier score is the scorer's mean squared reconstruction error (pixels in [0, 1]) at the
generator's size, where the synthetic samples are scored too (by the denoise stage): high means unlike
the real training images (a possible mislabel, a corrupt file, or an unconvincing synthetic sample).
Train images score lower than held-out ones of the same kind: the scorer has seen them.

data/models/scorer holds scorer.pt, scores.parquet (id, split, label, outlier_score for every prepared
image), metrics.csv, checkpoints/, samples/ and reconstructions.png (val images above their
reconstructions). The folder persists between runs (dvc.yaml: persist: true): a killed run resumes.
With train_scorer.nproc N > 1 it trains in N processes (components/stages/processes.py); rank 0 scores.
"""

import numpy as np
import pandas as pd
import torch

from components import paths, ranks
from components.config import Params
from components.data.atomic import atomic_file, write_json
from components.data.manifest import read_manifest
from components.data.shards import gather_images, iter_images
from components.device import describe
from components.errors import DataError
from components.models import autoencoder
from components.pixels import resize_images
from components.stages import processes
from components.training.autoencoder import train_scorer

GRID_IMAGES = 10
BATCH = 512


def run(params: Params) -> dict:
    return processes.run("train_scorer", params, params.train_scorer.nproc, train)


def train(params: Params, device: torch.device) -> dict:
    tp, size = params.train_scorer, params.generator.size
    manifest = read_manifest(paths.PREPARED)
    train_rows = manifest[manifest["split"] == "train"]
    if train_rows.empty:
        raise DataError(f"{paths.PREPARED}: no train images to train the scorer on; re-run prepare")
    images = resize_images(gather_images(paths.PREPARED, train_rows), size)
    shown = one_per_class(manifest[manifest["split"] == "val"] if (manifest["split"] == "val").any() else train_rows)
    if ranks.is_main():
        print(f"train_scorer: autoencoder with a {tp.latent_dim}-unit bottleneck on {len(images)} real images "
              f"at {size}x{size}, {tp.steps} steps on {describe(device, tp.precision)}"
              + ranks.count_text())
    model, summary = train_scorer(images, resize_images(gather_images(paths.PREPARED, shown), size), tp, params.seed,
                                  device, paths.SCORER)
    if not ranks.is_main():
        return summary

    scores = score_all(model, manifest, size, device)
    with atomic_file(paths.SCORES) as tmp:
        scores.to_parquet(tmp, index=False)
    summary = {**summary, "train_images": len(images),
               "outlier_score": {split: describe_scores(rows["outlier_score"])
                                 for split, rows in scores.groupby("split", sort=True)}}
    write_json(paths.metrics_file("train_scorer"), summary)
    return summary


def score_all(model: autoencoder.Autoencoder, manifest: pd.DataFrame, size: int, device) -> pd.DataFrame:
    """(id, split, label, outlier_score) for every row of the manifest, in its order, a shard at a time."""
    values = pd.Series(np.nan, index=manifest.index, dtype="float64")
    for rows, images in iter_images(paths.PREPARED, manifest):
        values[rows.index] = autoencoder.score(model, resize_images(images, size), BATCH, device)
    return manifest[["id", "split", "label"]].assign(outlier_score=values.to_numpy())


def one_per_class(rows: pd.DataFrame) -> pd.DataFrame:
    """The first image of each class, up to GRID_IMAGES, for the reconstruction grids."""
    return rows.groupby("label", sort=True).head(1).head(GRID_IMAGES)


def describe_scores(scores: pd.Series) -> dict:
    return {"mean": round(float(scores.mean()), 6), "p50": round(float(scores.quantile(0.5)), 6),
            "p99": round(float(scores.quantile(0.99)), 6), "max": round(float(scores.max()), 6)}
