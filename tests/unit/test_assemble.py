"""assemble: real + synthetic into data/augmented, an honest card, and refusals of mismatched inputs."""

import numpy as np
import pandas as pd
import pytest

from components import paths
from components.config import validate
from components.data.manifest import DatasetInfo, read_manifest, write_manifest
from components.data.shards import ShardWriter, gather_images
from components.data.sources import sklearn_digits_path
from components.errors import DataError
from components.stages import assemble, prepare


@pytest.fixture
def params(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = validate({"classic": {"hflip": False}, "prepare": {"source": {"kind": "sklearn-digits", "path": str(sklearn_digits_path())},
                              "size": 8, "per_class": 6, "classes": ["0", "1"]},
                  "generator": {"size": 8}, "upscale": {"factor": 1}})
    prepare.run(p)
    return p


def synthetic_folder(root, size=8, classes=("0", "1"), per_class=3):
    n = per_class * len(classes)
    images = np.full((n, size, size, 1), 200, np.uint8)
    with ShardWriter(root, prefix="synthetic", shard_size=4) as writer:
        shards, offsets = writer.write(images)
    labels = np.repeat(np.arange(len(classes)), per_class)
    write_manifest(root, pd.DataFrame({
        "id": [f"synthetic-{i}" for i in range(n)], "split": "train", "label": labels,
        "class_name": [classes[k] for k in labels], "source": "synthetic", "origin": [f"g:{i}" for i in range(n)],
        "shard": shards, "offset": offsets, "model": "cgan", "checkpoint": "abc", "seed": np.arange(n)}))
    DatasetInfo(list(classes), size, 1).write(root)
    return root


def test_without_synthetic_samples_the_card_says_so(params):
    summary = assemble.run(params, synthetic=None)
    assert summary["train_images"] == {"real": 10, "synthetic": 0}
    card = (paths.AUGMENTED / paths.CARD).read_text()
    assert "No synthetic samples: this augmented set is the real set" in card
    assert "| 0 | 5 | 0 |" in card


def test_real_and_synthetic_are_joined_with_provenance(params, tmp_path):
    summary = assemble.run(params, synthetic=synthetic_folder(tmp_path / "synth"))
    assert summary["train_images"] == {"real": 10, "synthetic": 6}
    manifest = read_manifest(paths.AUGMENTED)
    synth = manifest[manifest["source"] == "synthetic"]
    assert synth["model"].eq("cgan").all() and manifest[manifest["source"] == "real"]["model"].isna().all()
    assert (gather_images(paths.AUGMENTED, synth) == 200).all()
    card = (paths.AUGMENTED / paths.CARD).read_text()
    assert "6 synthetic training images beside 10 real ones" in card and "content hash" in card


def test_synthetic_samples_of_another_size_or_classes_are_refused(params, tmp_path):
    with pytest.raises(DataError, match="synthetic samples are 16x16x1"):
        assemble.run(params, synthetic=synthetic_folder(tmp_path / "big", size=16))
    with pytest.raises(DataError, match="with classes"):
        assemble.run(params, synthetic=synthetic_folder(tmp_path / "other", classes=("0", "7")))
    assert not paths.AUGMENTED.exists()
