"""prepare: ingest a labeled image source, apply the label budget, split train/val/test, store shards + manifest."""

import hashlib
import logging
import math

import numpy as np
import pandas as pd

from components import paths
from components.config import Params
from components.config.data import PrepareParams
from components.data.atomic import atomic_dir, write_json
from components.data.manifest import DatasetInfo, write_manifest
from components.data.shards import ShardWriter
from components.data.sources import SourceData, load_source
from components.errors import DataError, ParamsError

log = logging.getLogger("genaug")


def run(params: Params) -> dict:
    p = params.prepare
    data = keep_classes(load_source(p), p.classes)
    check_no_empty_class(data)
    split = assign_splits(data, p, params.seed)
    with atomic_dir(paths.PREPARED) as out:
        manifest = write_splits(out, data, split, p)
        DatasetInfo(data.class_names, p.size, p.channels).write(
            out, source=p.source.kind, skipped=[list(s) for s in data.report.skipped],
            resized=data.report.resized, converted=data.report.converted)
        write_manifest(out, manifest)
    summary = summarize(manifest, data)
    write_json(paths.metrics_file("prepare"), summary)
    print(format_counts(manifest, data.class_names))
    return summary


def keep_classes(data: SourceData, classes: list[str] | None) -> SourceData:
    """Keep only `classes` (in the order given) and renumber their labels 0..K-1."""
    if classes is None:
        return data
    unknown = [c for c in classes if c not in data.class_names]
    if unknown:
        raise ParamsError(f"prepare.classes: unknown class(es) {unknown}; the source has {data.class_names}")
    old_index = [data.class_names.index(c) for c in classes]
    remap = np.full(len(data.class_names), -1, dtype=np.int64)
    remap[old_index] = np.arange(len(classes))
    keep = remap[data.labels] >= 0
    return SourceData(
        images=data.images[keep], labels=remap[data.labels[keep]],
        origins=[o for o, k in zip(data.origins, keep) if k],
        official_test=data.official_test[keep], class_names=list(classes), report=data.report)


def check_no_empty_class(data: SourceData) -> None:
    if len(data.class_names) < 2:
        raise DataError(f"the source has {len(data.class_names)} class(es) {data.class_names}: a classifier (the judge, "
                        "evaluate's arms) tells at least 2 classes apart; add a class to the source")
    counts = np.bincount(data.labels[~data.official_test], minlength=len(data.class_names))
    empty = [name for name, n in zip(data.class_names, counts) if n == 0]
    if empty:
        raise DataError(f"class(es) {empty} have no training images in the source; "
                        "add images or leave them out with prepare.classes")


def assign_splits(data: SourceData, p: PrepareParams, seed: int) -> np.ndarray:
    """Split name per sample: test (official or held out), then the label budget's train/val, else ''.

    Each class is shuffled once by (seed, class), and budgets take a prefix of that order, so a
    smaller budget is a subset of a larger one with the same seed.
    """
    rare = set(p.imbalance.classes)
    unknown = sorted(rare - set(data.class_names))
    if unknown:
        raise ParamsError(f"prepare.imbalance.classes: unknown class(es) {unknown}; allowed: {data.class_names}")
    split = np.full(len(data.labels), "", dtype=object)
    has_official_test = bool(data.official_test.any())
    split[data.official_test] = "test"
    for label, name in enumerate(data.class_names):
        order = np.random.default_rng([seed, label]).permutation(
            np.flatnonzero((data.labels == label) & ~data.official_test))
        if not has_official_test:
            n_test = held_out_count(len(order), p.test_fraction)
            split[order[:n_test]] = "test"
            order = order[n_test:]
        budget = class_budget(len(order), p, name in rare, name)
        n_val = int(round(budget * p.val_fraction)) if budget > 1 else 0
        split[order[:budget - n_val]] = "train"
        split[order[budget - n_val:budget]] = "val"
    return split


def held_out_count(n: int, fraction: float) -> int:
    """Images of a class held out for testing: never all of them, at least one when there are two."""
    if n < 2:
        return 0
    return min(n - 1, max(1, int(round(n * fraction))))


def class_budget(available: int, p: PrepareParams, rare: bool, name: str) -> int:
    if p.per_class is not None:
        budget = p.per_class
    elif p.fraction is not None:
        budget = math.ceil(available * p.fraction)
    else:
        budget = available
    if rare:
        budget = max(1, int(round(budget * p.imbalance.factor)))
    if budget > available:
        log.warning("class %r has %d images for training, fewer than its budget of %d: taking all",
                    name, available, budget)
        budget = available
    return budget


def write_splits(out, data: SourceData, split: np.ndarray, p: PrepareParams) -> pd.DataFrame:
    frames = []
    for name in ("train", "val", "test"):
        index = np.flatnonzero(split == name)
        if len(index) == 0:
            continue
        with ShardWriter(out, prefix=name, shard_size=p.shard_size) as writer:
            shards, offsets = writer.write(data.images[index])
        origins = [data.origins[i] for i in index]
        frames.append(pd.DataFrame({
            "id": [sample_id(p.source.kind, o) for o in origins],
            "split": name,
            "label": data.labels[index],
            "class_name": [data.class_names[k] for k in data.labels[index]],
            "source": "real",
            "origin": origins,
            "shard": shards,
            "offset": offsets,
        }))
    return pd.concat(frames, ignore_index=True)


def sample_id(kind: str, origin: str) -> str:
    """Stable id of a real sample: the same image of the same source keeps it across runs and budgets."""
    return "real-" + hashlib.sha1(f"{kind}:{origin}".encode()).hexdigest()[:16]


def summarize(manifest: pd.DataFrame, data: SourceData) -> dict:
    by_split = manifest.groupby("split").size()
    train = manifest[manifest["split"] == "train"]
    per_class = train.groupby("class_name").size()
    return {
        "images": {s: int(by_split.get(s, 0)) for s in ("train", "val", "test")},
        "train_per_class": {c: int(per_class.get(c, 0)) for c in data.class_names},
        "skipped_files": len(data.report.skipped),
        "resized": data.report.resized,
        "converted": data.report.converted,
    }


def format_counts(manifest: pd.DataFrame, class_names: list[str]) -> str:
    table = (manifest.pivot_table(index="class_name", columns="split", values="id", aggfunc="count", fill_value=0)
             .reindex(index=class_names, columns=["train", "val", "test"], fill_value=0))
    return "prepared images per class and split:\n" + table.to_string()
