"""Sharded, deterministic sampling: the same params give byte-identical images whatever the shard size
or the order in which shards run (one process, or many on a cluster).

Two things make it so:
- Noise is counter-based. Sample i of class k has its own seed, a hash of (seed, k, i), and its latent
  is a hash of (that seed, j) for each coordinate j mapped through the normal inverse CDF. It is
  computed on the CPU in float64, so it is the same on every device, and the per-sample seed alone
  reproduces the sample (it goes into the manifest as provenance).
- Forward passes run in micro-batches aligned to the class's index space ([0, b), [b, 2b), ...),
  always full, so a given sample is always computed in the same batch with the same neighbours; a
  shard boundary inside a micro-batch only means that batch is computed twice.

`model` is any generator with the cGAN generator's interface (latent_dim, size, channels, num_classes,
forward(z, labels) -> images in [-1, 1]): the cGAN's generator or the cVAE's decoder."""

from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from components.device import autocast
from components.fanout import ordered_map
from components.models import cgan
from components.pixels import to_uint8

MASK63 = np.uint64((1 << 63) - 1)
PICK_SALT = np.uint64(0x5EED_0F_A11)  # the posterior prior's picks: bits apart from the latent's


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The SplitMix64 finaliser: a fast, well-mixed bijection of uint64 (wrapping arithmetic)."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def sample_seeds(seed: int, label: int, start: int, count: int) -> np.ndarray:
    """Per-sample seeds (int64 >= 0) of samples start .. start+count-1 of class `label`."""
    base = splitmix64(splitmix64(np.uint64(seed)) ^ np.uint64(label))
    index = np.arange(start, start + count, dtype=np.uint64)
    return (splitmix64(base ^ splitmix64(index)) & MASK63).astype(np.int64)


def latents(seeds: np.ndarray, dim: int, truncation: float | None = None) -> torch.Tensor:
    """(N, dim) float32 standard normal latents, one row per seed; `truncation` t keeps them in [-t, t]
    (by drawing from the truncated normal, not by clipping)."""
    coords = splitmix64(np.arange(1, dim + 1, dtype=np.uint64))
    bits = splitmix64(np.asarray(seeds, dtype=np.int64).astype(np.uint64)[:, None] ^ coords[None, :])
    uniform = torch.from_numpy(((bits >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0 ** 53)
    if truncation is not None:
        low = torch.special.ndtr(torch.tensor(-float(truncation), dtype=torch.float64))
        uniform = low + uniform * (1 - 2 * low)
    return torch.special.ndtri(uniform).float()


def prior_latents(model: torch.nn.Module, label: int, seeds: np.ndarray, truncation: float | None = None,
                  temperature: float = 1.0) -> torch.Tensor:
    """The latents of class `label`'s samples with these seeds: standard normal (truncated, times
    `temperature`); for a model with a posterior prior (the cVAE's `posterior`), the posterior of the
    class's train image each seed picks, moved a share up to `posterior_mix` of the way towards a second
    one's mean, its noise scaled the same way; for one with a Gaussian per class (the cVAE's `gaussian`),
    that noise through the class's Gaussian (in float64 on the CPU, as the noise)."""
    noise = latents(seeds, model.latent_dim, truncation) * temperature
    gaussian = getattr(model, "gaussian", None)
    if gaussian and label in gaussian:
        centre, factor = gaussian[label]
        return (centre + noise.double() @ factor.T).float()
    posterior = getattr(model, "posterior", None)
    if posterior is None or len(posterior[label][0]) == 0:
        return noise
    means, stds = posterior[label]
    bits = splitmix64(np.asarray(seeds, dtype=np.int64).astype(np.uint64) ^ PICK_SALT)
    first = pick(bits, len(means))
    z = means[first]
    if model.posterior_mix:
        second, share = pick(splitmix64(bits), len(means)), unit(splitmix64(splitmix64(bits)))
        z = z + (model.posterior_mix * share)[:, None] * (means[second] - z)
    return z + stds[first] * noise


def pick(bits: np.ndarray, count: int) -> torch.Tensor:
    """Indices in [0, count) from uint64 hash bits."""
    return torch.from_numpy((bits % np.uint64(count)).astype(np.int64))


def unit(bits: np.ndarray) -> torch.Tensor:
    """float32 in [0, 1) from uint64 hash bits."""
    return torch.from_numpy((bits >> np.uint64(11)).astype(np.float64) / 2.0 ** 53).float()


@torch.no_grad()
def generate_class_range(model: torch.nn.Module, label: int, start: int, count: int, seed: int,
                         batch_size: int = 256, truncation: float | None = None,
                         device: torch.device | None = None, temperature: float = 1.0) -> np.ndarray:
    """uint8 (count, H, W, C) images: samples start .. start+count-1 of class `label`, decoded from
    the latents (truncated at `truncation`, if set) times `temperature`."""
    device = device or next(model.parameters()).device
    end = start + count
    parts = []
    for first in range(start // batch_size * batch_size, end, batch_size):
        z = prior_latents(model, label, sample_seeds(seed, label, first, batch_size), truncation, temperature)
        z = z.to(device)
        labels = torch.full((batch_size,), label, dtype=torch.int64, device=device)
        with autocast(device):
            images = to_uint8(cgan.sample(model, labels, z))
        parts.append(images[max(start, first) - first:min(end, first + batch_size) - first])
    if not parts:
        return np.empty((0, model.size, model.size, model.channels), dtype=np.uint8)
    return np.concatenate(parts)


@dataclass(frozen=True)
class Shard:
    """A unit of generation work: samples start .. start+count-1 of one class."""

    label: int
    start: int
    count: int


@dataclass(frozen=True)
class GeneratedShard:
    label: int
    start: int
    images: np.ndarray  # uint8 (N, H, W, C)
    seeds: np.ndarray   # int64 (N,): the per-sample seeds, provenance


def plan_shards(plan: pd.DataFrame, shard_size: int) -> list[Shard]:
    """Cut each class's `synthetic` count of a quota plan into shards of at most `shard_size`."""
    shards = []
    for label, total in zip(plan["label"], plan["synthetic"]):
        for start in range(0, int(total), shard_size):
            shards.append(Shard(int(label), start, min(shard_size, int(total) - start)))
    return shards


def generate(model: torch.nn.Module, shards: list[Shard], seed: int, batch_size: int = 256,
             truncation: float | None = None, device: torch.device | None = None,
             temperature: float = 1.0) -> Iterator[GeneratedShard]:
    """Run the shards (here or on a Dask cluster: components/fanout.py), with a progress bar over images;
    yields each shard's images, in the order given."""
    device = device or next(model.parameters()).device
    run = partial(shard_images, seed=seed, batch_size=batch_size, truncation=truncation, device=device,
                  temperature=temperature)
    with tqdm(total=sum(s.count for s in shards), desc="generate", unit="img", disable=None) as bar:
        for shard, images in zip(shards, ordered_map(run, shards, gpu=device.type == "cuda", model=model)):
            yield GeneratedShard(shard.label, shard.start, images,
                                 sample_seeds(seed, shard.label, shard.start, shard.count))
            bar.update(shard.count)


def shard_images(shard: Shard, model: torch.nn.Module, **options) -> np.ndarray:
    return generate_class_range(model, shard.label, shard.start, shard.count, **options)


def class_grid(model: torch.nn.Module, seed: int, columns: int, truncation: float | None = None,
               device: torch.device | None = None, temperature: float = 1.0) -> np.ndarray:
    """The first `columns` samples of every class (the latents generate uses first): (K, columns, H, W, C)."""
    return np.stack([generate_class_range(model, k, 0, columns, seed, batch_size=columns,
                                          truncation=truncation, device=device, temperature=temperature)
                     for k in range(model.num_classes)])

