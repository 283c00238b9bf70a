"""Not a stage: the filter's top-up chain. It makes more samples of a class in one pass, generate ->
denoise -> score -> upscale, with the models, settings and manifest columns of the generate, denoise and
upscale stages, so a top-up sample is what those stages would have made at its index.
"""

from dataclasses import dataclass

import pandas as pd
import torch

from components import paths
from components.config import Params
from components.data.shards import ShardWriter, in_full_batches
from components.generation.sample import GeneratedShard, generate_class_range, sample_seeds
from components.models import autoencoder, upscaler
from components.training import generators
from components.stages import denoise, generate, upscale
from components.training.checkpoint import file_hash


@dataclass
class Chain:
    params: Params
    device: torch.device
    class_names: list[str]
    generator: torch.nn.Module
    kind: str
    checkpoint: str
    denoiser: autoencoder.Autoencoder | None
    denoiser_hash: str | None
    scorer: autoencoder.Autoencoder
    upscaler: upscaler.Upscaler | None
    upscaler_hash: str | None

    @classmethod
    def load(cls, params: Params, device: torch.device, class_names: list[str], channels: int) -> "Chain":
        model, saved = generators.load(paths.GENERATOR / paths.GENERATOR_FILE, device)
        denoiser, denoiser_hash = denoise.load_denoiser(params.denoise.strength, channels, device)
        scorer, _ = autoencoder.load(paths.SCORER / paths.SCORER_FILE, "scorer", device)
        sr, sr_hash = upscale.load_model(params.upscale.factor, channels, device)
        return cls(params, device, class_names, model, saved["kind"], file_hash(paths.GENERATOR / paths.GENERATOR_FILE),
                   denoiser, denoiser_hash, scorer, sr, sr_hash)

    def make(self, label: int, start: int, count: int, writer: ShardWriter) -> pd.DataFrame:
        """Samples start .. start+count-1 of class `label`, written by `writer`; their manifest rows."""
        p, g = self.params, self.params.generate
        batch = g.batch_size
        images = generate_class_range(self.generator, label, start, count, p.seed, batch, g.truncation,
                                      self.device, g.temperature)
        if self.denoiser is not None:  # as the denoise and upscale stages do (shards.map_shards)
            d = p.denoise
            images = in_full_batches(lambda x: autoencoder.denoise(self.denoiser, x, d.strength, d.batch_size,
                                                                   self.device), images, d.batch_size)
        scores = autoencoder.score(self.scorer, images, batch, self.device)
        if self.upscaler is not None:
            u = p.upscale
            images = in_full_batches(lambda x: upscaler.apply(self.upscaler, x, u.batch_size, self.device), images,
                                     u.batch_size)
        shards, offsets = writer.write(images)
        part = GeneratedShard(label, start, images, sample_seeds(p.seed, label, start, count))
        rows = generate.manifest_rows(part, shards, offsets, self.class_names, self.kind, self.checkpoint, p.seed,
                                      g.truncation, g.temperature)
        rows = denoise.provenance(rows, p.denoise.strength, self.denoiser_hash, scores)
        return upscale.provenance(rows, p.upscale.factor, self.upscaler_hash)
