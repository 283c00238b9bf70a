"""Small real datasets for the judge, evaluate and gate tests: data/prepared from Fashion-MNIST (three
classes that are easy to confuse), and data/augmented with planted "synthetic" samples (noise, or real
train images prepare did not take)."""

from pathlib import Path

import numpy as np
import pandas as pd

from components import paths
from components.config import Params, validate
from components.data.manifest import DatasetInfo, read_manifest, write_manifest
from components.data.shards import ShardWriter
from components.data.sources import load_source
from components.stages import assemble, prepare

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["T-shirt/top", "Pullover", "Coat"]
PER_CLASS = 12  # 11 train + 1 val per class

# A small judge and a small downstream recipe: seconds on a busy 2-core CPU.
SMALL = {
    "prepare": {"source": {"kind": "fashion-mnist", "path": str(FASHION_MNIST)}, "per_class": PER_CLASS,
                "classes": CLASSES, "shard_size": 512},
    "train_judge": {"steps": 40, "batch_size": 32, "checkpoint_every": 20, "log_every": 10,
                    "model": {"width": 8, "stages": 2}},
    "evaluate": {"arms": ["real", "real_synthetic"], "seeds": [0, 1], "classifier": {"width": 8, "stages": 2},
                 "fit": {"steps": 80, "batch_size": 32, "checkpoint_every": 40, "log_every": 20},
                 "kid": {"subset_size": 100, "subsets": 5},
                 "synthetic_labels": "hard"},  # planted samples skip the filter: no judge_probs for soft labels
    "device": "cpu",
}



def small_params(**sections) -> Params:
    raw = {key: dict(value) if isinstance(value, dict) else value for key, value in SMALL.items()}
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value}
    return validate(raw)


def planted(kind: str, per_class: int, params: Params, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of `per_class` planted samples a class: `noise` (uniform pixels) or `heldout`
    (real Fashion-MNIST train images that prepare left out of data/prepared)."""
    info = DatasetInfo.read(paths.PREPARED)
    labels = np.repeat(np.arange(len(info.class_names)), per_class)
    if kind == "noise":
        rng = np.random.default_rng(seed)
        return rng.integers(0, 256, (len(labels), info.size, info.size, info.channels), dtype=np.uint8), labels
    source = prepare.keep_classes(load_source(params.prepare), params.prepare.classes)
    used = set(read_manifest(paths.PREPARED)["origin"])
    images = []
    for label in range(len(info.class_names)):
        free = [i for i, o in enumerate(source.origins)
                if source.labels[i] == label and not source.official_test[i] and o not in used]
        images.append(source.images[free[:per_class]])
    return np.concatenate(images), labels


def write_synthetic(root: Path, images: np.ndarray, labels: np.ndarray, class_names: list[str]) -> Path:
    """A folder as the generation stages write it: shards, a manifest of synthetic train rows, info.json."""
    info = DatasetInfo.read(paths.PREPARED)
    with ShardWriter(root, prefix="synthetic", shard_size=4096) as writer:
        shards, offsets = writer.write(images)
    ids = [f"synthetic-{i:06d}" for i in range(len(labels))]
    write_manifest(root, pd.DataFrame({
        "id": ids, "split": "train", "label": labels, "class_name": [class_names[k] for k in labels],
        "source": "synthetic", "origin": ids, "shard": shards, "offset": offsets}))
    info.write(root)
    return root


def augmented_with(kind: str, per_class: int, params: Params) -> None:
    """data/augmented: data/prepared plus `per_class` planted synthetic samples a class (run in a tmp cwd)."""
    info = DatasetInfo.read(paths.PREPARED)
    images, labels = planted(kind, per_class, params)
    assemble.run(params, synthetic=write_synthetic(Path("data/planted"), images, labels, info.class_names))
