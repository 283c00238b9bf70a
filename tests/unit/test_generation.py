"""Sharded generation: byte-identical images whatever the shard size or order; per-sample seeds;
and the train_generator + generate stages end to end on a tiny prepared set."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from components import paths
from components.config import validate
from components.config.generator import GenerateParams, GeneratorParams
from components.data.manifest import DatasetInfo, read_manifest, write_manifest
from components.data.shards import ShardWriter, gather_images
from components.generation.quota import plan_quota
from components.generation.sample import (generate, generate_class_range, latents, plan_shards,
                                          sample_seeds)
from components.models import cgan
from components.stages import generate as generate_stage
from components.stages import train_generator as train_stage

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def model() -> cgan.Generator:
    G, _ = cgan.build(GeneratorParams(size=12, latent_dim=8, width=8, embed_dim=4), 3, 3, seed=0)
    return G.eval()


def test_seeds_and_latents_are_counter_based():
    seeds = sample_seeds(7, 2, 0, 1000)
    assert seeds.dtype == np.int64 and (seeds >= 0).all() and len(set(seeds.tolist())) == 1000
    assert np.array_equal(sample_seeds(7, 2, 500, 10), seeds[500:510])
    assert not np.array_equal(sample_seeds(7, 3, 0, 10), seeds[:10])
    assert not np.array_equal(sample_seeds(8, 2, 0, 10), seeds[:10])
    z = latents(seeds, 64)
    assert z.shape == (1000, 64) and z.dtype == torch.float32
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1) < 0.02
    assert torch.equal(latents(seeds[3:4], 64), z[3:4])
    cut = latents(seeds, 64, truncation=0.5)
    assert cut.abs().max() <= 0.5 and cut.std() > 0.25  # drawn within the bounds, not clipped


def collect(model, shards, **kwargs) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Run shards, then put each class's images and seeds back in index order."""
    parts: dict[int, list] = {}
    for part in generate(model, shards, seed=3, **kwargs):
        parts.setdefault(part.label, []).append(part)
    return {label: (np.concatenate([p.images for p in sorted(ps, key=lambda p: p.start)]),
                    np.concatenate([p.seeds for p in sorted(ps, key=lambda p: p.start)]))
            for label, ps in parts.items()}


def test_same_bytes_whatever_the_shard_size_or_order(model):
    plan = pd.DataFrame({"class": ["a", "b", "c"], "label": [0, 1, 2], "synthetic": [50, 0, 23]})
    reference = collect(model, plan_shards(plan, 64), batch_size=16)
    assert sorted(reference) == [0, 2] and reference[0][0].shape == (50, 12, 12, 3)
    small = plan_shards(plan, 7)
    assert len(small) == 8 + 4
    for shards in (small, small[::-1], plan_shards(plan, 16)):
        got = collect(model, shards, batch_size=16)
        for label in reference:
            assert got[label][0].tobytes() == reference[label][0].tobytes()
            assert np.array_equal(got[label][1], reference[label][1])
    # any sample alone, from its index, gives the same bytes
    alone = generate_class_range(model, 2, 21, 1, seed=3, batch_size=16)
    assert alone.tobytes() == reference[2][0][21:22].tobytes()
    assert not np.array_equal(reference[0][0][:23], reference[2][0])


def test_empty_range(model):
    assert generate_class_range(model, 0, 5, 0, seed=0).shape == (0, 12, 12, 3)


def write_prepared(root, per_class=(20, 0, 12)) -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), per_class)
    images = np.clip(rng.normal(60 * labels[:, None, None, None] + 40, 20, (len(labels), 8, 8, 1)), 0, 255)
    with ShardWriter(root, "train", 16) as writer:
        shards, offsets = writer.write(images.astype(np.uint8))
    names = ["dark", "grey", "light"]
    write_manifest(root, pd.DataFrame({
        "id": [f"real-{i}" for i in range(len(labels))], "split": "train", "label": labels,
        "class_name": [names[k] for k in labels], "source": "real", "origin": [f"o{i}" for i in range(len(labels))],
        "shard": shards, "offset": offsets}))
    DatasetInfo(names, 8, 1).write(root)


def test_stages_train_then_generate(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_prepared(paths.PREPARED)
    params = validate({
        "device": "cpu",
        "classic": {"hflip": False}, "prepare": {"source": {"kind": "sklearn-digits", "path": "x"}, "size": 8},
        "generator": {"kind": "cgan", "size": 8, "latent_dim": 8, "width": 8, "embed_dim": 4},
        "upscale": {"factor": 1},
        "train_generator": {"steps": 4, "batch_size": 8, "log_every": 2, "checkpoint_every": 2, "grid_columns": 2},
        "generate": {"mode": "fill_to", "target": 30, "max_ratio": 1.0, "shard_size": 5, "batch_size": 4},
    })
    summary = train_stage.run(params)
    assert summary["steps"] == 4 and (paths.GENERATOR / "generator.pt").exists()
    assert json.loads(paths.metrics_file("train_generator").read_text())["steps"] == 4

    result = generate_stage.run(params)
    assert result["per_class"] == {"dark": 10, "grey": 0, "light": 12}  # fill to 30, capped at 1x real
    manifest = read_manifest(paths.GENERATED)
    assert len(manifest) == 22 and (manifest["source"] == "synthetic").all()
    assert {"model", "checkpoint", "seed", "truncation"} <= set(manifest.columns)
    assert manifest["origin"].iloc[0].startswith(f"cgan:{result['checkpoint'][:12]}:0:")
    assert DatasetInfo.read(paths.GENERATED).class_names == ["dark", "grey", "light"]
    assert pd.read_csv(paths.GENERATED / "plan.csv")["synthetic"].tolist() == [10, 0, 12]

    # the manifest's per-sample seed and the checkpoint give a sample back
    model, _ = cgan.load(paths.GENERATOR / "generator.pt", CPU)
    row = manifest[manifest["label"] == 2].iloc[5]
    images = gather_images(paths.GENERATED, manifest.iloc[[row.name]])
    index = int(row["origin"].rsplit(":", 1)[1])
    assert row["seed"] == sample_seeds(params.seed, 2, index, 1)[0]
    again = generate_class_range(model, 2, index, 1, params.seed, batch_size=4)
    assert again.tobytes() == images.tobytes()

    # a second run with another shard size writes the same pixels
    first = gather_images(paths.GENERATED, manifest)
    generate_stage.run(params.model_copy(update={"generate": params.generate.model_copy(update={"shard_size": 64})}))
    second = read_manifest(paths.GENERATED)
    assert second["id"].tolist() == manifest["id"].tolist()
    assert gather_images(paths.GENERATED, second).tobytes() == first.tobytes()


def test_plan_feeds_shards():
    plan = plan_quota({"a": 3, "b": 10}, GenerateParams(mode="balance", max_ratio=None))
    assert [(s.label, s.start, s.count) for s in plan_shards(plan, 4)] == [(0, 0, 4), (0, 4, 3)]
