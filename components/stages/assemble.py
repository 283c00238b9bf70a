"""assemble: combine the real samples with the synthetic ones into data/augmented (shards, manifest, card)."""

import hashlib
from pathlib import Path

import pandas as pd
import yaml

from components import paths
from components.config import Params
from components.data.atomic import atomic_dir, write_json, write_text
from components.data.manifest import DatasetInfo, read_manifest, write_manifest
from components.data.shards import ShardWriter, gather_images
from components.errors import DataError

CARD = "card.md"
# The params sections the augmented data depends on (dvc.yaml lists the same for this stage).
DATA_PARAMS = ("seed", "prepare", "generator", "train_generator", "generate")


def run(params: Params, synthetic: Path | None = paths.GENERATED) -> dict:
    """Write data/augmented from data/prepared and, when given, a folder of synthetic samples."""
    info = DatasetInfo.read(paths.PREPARED)
    parts = [(paths.PREPARED, read_manifest(paths.PREPARED))]
    if synthetic is not None:
        parts.append((synthetic, read_synthetic(synthetic, info)))
    with atomic_dir(paths.AUGMENTED) as out:
        manifest = reshard(out, parts, params.assemble.shard_size)
        info.write(out)
        write_manifest(out, manifest)
        write_text(out / CARD, dataset_card(manifest, info, params, upstream(parts)))
    summary = summarize(manifest, info)
    write_json(paths.metrics_file("assemble"), summary)
    return summary


def read_synthetic(root: Path, real: DatasetInfo) -> pd.DataFrame:
    info = DatasetInfo.read(root)
    if (info.class_names, info.size, info.channels) != (real.class_names, real.size, real.channels):
        raise DataError(
            f"{root}: synthetic samples are {info.size}x{info.size}x{info.channels} with classes "
            f"{info.class_names}, but the real set is {real.size}x{real.size}x{real.channels} with "
            f"{real.class_names}; re-run the generation stages after prepare")
    manifest = read_manifest(root)
    if (manifest["source"] != "synthetic").any():
        raise DataError(f"{root}: manifest has rows whose source is not 'synthetic'")
    return manifest


def reshard(out: Path, parts: list[tuple[Path, pd.DataFrame]], shard_size: int) -> pd.DataFrame:
    """Copy every part's images into new shards, one run per (source, split); return the joint manifest."""
    frames = []
    for root, manifest in parts:
        for (source, split), rows in manifest.groupby(["source", "split"], sort=True):
            with ShardWriter(out, prefix=f"{split}-{source}", shard_size=shard_size) as writer:
                shards, offsets = writer.write(gather_images(root, rows))
            frames.append(rows.assign(shard=shards, offset=offsets))
    return pd.concat(frames, ignore_index=True)


def upstream(parts: list[tuple[Path, pd.DataFrame]]) -> dict[str, str]:
    """Content hash of each input folder (manifest and shards), so the card says what it was built from."""
    hashes = {}
    for root, _ in parts:
        digest = hashlib.sha256()
        for file in sorted(Path(root).rglob("*")):
            if file.is_file():
                digest.update(file.relative_to(root).as_posix().encode())
                digest.update(file.read_bytes())
        hashes[Path(root).as_posix()] = digest.hexdigest()[:16]
    return hashes


def counts_table(manifest: pd.DataFrame) -> pd.DataFrame:
    """Train images per class and source, in class order."""
    train = manifest[manifest["split"] == "train"]
    table = train.pivot_table(index="class_name", columns="source", values="id", aggfunc="count",
                              fill_value=0, sort=False)
    for source in ("real", "synthetic"):
        if source not in table.columns:
            table[source] = 0
    return table[["real", "synthetic"]]


def dataset_card(manifest: pd.DataFrame, info: DatasetInfo, params: Params, inputs: dict[str, str]) -> str:
    table = counts_table(manifest).reindex(info.class_names, fill_value=0)
    splits = manifest.groupby(["split", "source"]).size()
    n_synth = int(table["synthetic"].sum())
    lines = [
        "# Dataset card",
        "",
        f"{len(manifest)} images of {info.size}x{info.size}, {info.channels} channel(s), "
        f"{len(info.class_names)} classes.",
        "",
    ]
    if n_synth == 0:
        lines += ["**No synthetic samples: this augmented set is the real set, unchanged.**", ""]
    else:
        lines += [f"{n_synth} synthetic training images beside {int(table['real'].sum())} real ones.", ""]
    lines += ["## Training images per class and source", "", "| class | real | synthetic |", "|---|---:|---:|"]
    lines += [f"| {name} | {row.real} | {row.synthetic} |" for name, row in table.iterrows()]
    lines += ["", "## Images per split and source", "", "| split | source | images |", "|---|---|---:|"]
    lines += [f"| {split} | {source} | {n} |" for (split, source), n in splits.items()]
    lines += ["", "## Built from", ""]
    lines += [f"- `{root}` (content hash {digest})" for root, digest in inputs.items()]
    lines += ["", "## Params", "", "```yaml",
              yaml.safe_dump(params.model_dump(mode="json", include=set(DATA_PARAMS)), sort_keys=False).rstrip(),
              "```", ""]
    return "\n".join(lines)


def summarize(manifest: pd.DataFrame, info: DatasetInfo) -> dict:
    table = counts_table(manifest).reindex(info.class_names, fill_value=0)
    real, synth = int(table["real"].sum()), int(table["synthetic"].sum())
    return {
        "train_images": {"real": real, "synthetic": synth},
        "synthetic_ratio": round(synth / real, 4) if real else 0.0,
        "train_per_class": {name: {"real": int(r.real), "synthetic": int(r.synthetic)}
                            for name, r in table.iterrows()},
        "images": int(len(manifest)),
    }
