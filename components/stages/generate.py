"""generate: sample the trained generator (cGAN or cVAE) per class quota into data/generated (shards,
manifest, plan).

Every image is reproducible on its own: its per-sample seed (in the manifest), the checkpoint hash,
truncation and temperature give it back, byte for byte, whatever shard_size the run used.
"""

import hashlib
import time

import numpy as np
import pandas as pd

from components import fanout, paths
from components.config import Params
from components.data.atomic import atomic_dir, write_json
from components.data.manifest import COLUMNS, DatasetInfo, read_manifest, write_manifest
from components.data.shards import ShardWriter
from components.device import describe, resolve_device
from components.errors import DataError
from components.generation.quota import format_plan, plan_quota
from components.generation.sample import GeneratedShard, generate, plan_shards
from components.training import generators
from components.training.checkpoint import file_hash

PROVENANCE = {"model": "string", "checkpoint": "string", "seed": "int64", "truncation": "float64",
              "temperature": "float64"}


def run(params: Params) -> dict:
    g = params.generate
    device = resolve_device(params.device)
    model_file = paths.GENERATOR / paths.GENERATOR_FILE
    model, saved = generators.load(model_file, device)
    ckpt = file_hash(model_file)
    info = DatasetInfo.read(paths.PREPARED)
    if saved["class_names"] != info.class_names:
        raise DataError(f"{model_file}: trained on classes {saved['class_names']}, but {paths.PREPARED} has "
                        f"{info.class_names}; re-run train_generator")
    plan = plan_quota(real_counts(info), g)
    print(format_plan(plan, g))
    print(f"generate: {int(plan['synthetic'].sum())} images from {saved['kind']} {ckpt[:12]} on {describe(device)}, "
          f"{fanout.where(device.type == 'cuda')}")

    started = time.perf_counter()
    with atomic_dir(paths.GENERATED) as out:
        frames = []
        with ShardWriter(out, prefix="synthetic", shard_size=g.shard_size) as writer:
            for part in generate(model, plan_shards(plan, g.shard_size), params.seed, g.batch_size,
                                 g.truncation, device, g.temperature):
                shards, offsets = writer.write(part.images)
                frames.append(manifest_rows(part, shards, offsets, info.class_names, saved["kind"], ckpt,
                                            params.seed, g.truncation, g.temperature))
        manifest = pd.concat(frames, ignore_index=True) if frames else empty_manifest()
        write_manifest(out, manifest)
        DatasetInfo(info.class_names, model.size, model.channels).write(
            out, model=saved["kind"], checkpoint=ckpt, seed=params.seed, truncation=g.truncation,
            temperature=g.temperature)
        plan.to_csv(out / paths.PLAN, index=False)
    seconds = time.perf_counter() - started
    print(f"generate: {len(manifest)} images in {seconds:.1f} s")

    summary = {
        "images": len(manifest),
        "per_class": dict(zip(plan["class"], plan["synthetic"].astype(int).tolist())),
        "checkpoint": ckpt,
    }
    write_json(paths.metrics_file("generate"), summary)
    return summary


def real_counts(info: DatasetInfo) -> dict[str, int]:
    """Real training images per class, in class order (0 for a class with none)."""
    train = read_manifest(paths.PREPARED)
    counts = train[train["split"] == "train"].groupby("label").size()
    return {name: int(counts.get(label, 0)) for label, name in enumerate(info.class_names)}


def manifest_rows(part: GeneratedShard, shards: list[str], offsets: list[int], class_names: list[str],
                  kind: str, ckpt: str, seed: int, truncation: float | None, temperature: float) -> pd.DataFrame:
    index = np.arange(part.start, part.start + len(part.images))
    origins = [f"{kind}:{ckpt[:12]}:{part.label}:{i}" for i in index]
    return pd.DataFrame({
        "id": [sample_id(o, seed, truncation, temperature) for o in origins],
        "split": "train",
        "label": part.label,
        "class_name": class_names[part.label],
        "source": "synthetic",
        "origin": origins,
        "shard": shards,
        "offset": offsets,
        "model": kind,
        "checkpoint": ckpt,
        "seed": part.seeds,
        "truncation": np.nan if truncation is None else float(truncation),
        "temperature": float(temperature),
    }).astype(PROVENANCE)


def sample_id(origin: str, seed: int, truncation: float | None, temperature: float = 1.0) -> str:
    # The temperature enters only when it is not 1, so ids from before it existed stay the same.
    key = f"{origin}:seed={seed}:truncation={truncation}" + (f":temperature={temperature}" if temperature != 1 else "")
    return "synthetic-" + hashlib.sha1(key.encode()).hexdigest()[:16]


def empty_manifest() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in {**COLUMNS, **PROVENANCE}.items()})
