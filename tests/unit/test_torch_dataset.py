"""A dataset version for torch: the judge-score filter, soft labels from the manifest, and the batch sampler
with a synthetic share, over a DataLoader."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from components.data.manifest import DatasetInfo, read_manifest, write_manifest
from components.data.shards import ShardWriter
from components.data.torch_dataset import ImageDataset
from components.data.versions import load_version
from components.errors import DataError

CLASSES = ["a", "b", "c"]


def version_folder(root, judged: bool = True):
    """6 real and 6 synthetic train images; the synthetic ones with the filter's judge columns."""
    images = np.arange(12, dtype=np.uint8).reshape(12, 1, 1, 1).repeat(8, 1).repeat(8, 2)
    labels = np.array([0, 1, 2] * 4)
    with ShardWriter(root, prefix="train", shard_size=100) as writer:
        shards, offsets = writer.write(images)
    frame = pd.DataFrame({"id": [f"x{i}" for i in range(12)], "split": "train", "label": labels,
                          "class_name": [CLASSES[k] for k in labels], "source": ["real"] * 6 + ["synthetic"] * 6,
                          "origin": "test", "shard": shards, "offset": offsets})
    if judged:
        probs = [None] * 6 + [np.eye(3, dtype=np.float32)[k] * 0.6 + 0.4 / 3 for k in labels[6:]]
        probs[10] = np.array([0.5, 0.3, 0.2], np.float32)  # image 10 (label 1): the judge says class a
        confidence = [np.nan] * 6 + [float(p[k]) for p, k in zip(probs[6:], labels[6:])]
        frame = frame.assign(judge_confidence=confidence, judge_probs=probs)
    write_manifest(root, frame)
    DatasetInfo(CLASSES, 8, 1).write(root)
    return load_version(repo=str(root.parent.parent)) if root.parent.name == "data" else None


@pytest.fixture
def version(tmp_path):
    return version_folder(tmp_path / "data" / "augmented")


def test_the_manifest_keeps_the_soft_labels_through_parquet(version):
    manifest = read_manifest(version.root)
    synthetic = manifest[manifest["source"] == "synthetic"]
    assert np.allclose(synthetic["judge_probs"].iloc[4], [0.5, 0.3, 0.2])
    assert manifest[manifest["source"] == "real"]["judge_probs"].isna().all()


def test_min_judge_prob_drops_the_synthetic_images_the_judge_doubts(version):
    kept = ImageDataset(version, min_judge_prob=0.5)
    assert len(kept) == 11 and "x10" not in set(kept.manifest["id"])
    assert (kept.manifest["source"] == "real").sum() == 6  # real images are never dropped
    assert len(ImageDataset(version)) == 12


def test_soft_labels_are_the_judges_probabilities_for_synthetic_and_one_hot_for_real(version):
    data = ImageDataset(version, soft_labels=True)
    image, target = data[10]
    assert image.shape == (1, 8, 8) and torch.allclose(target, torch.tensor([0.5, 0.3, 0.2]))
    assert torch.equal(data[1][1], torch.tensor([0.0, 1.0, 0.0]))
    assert torch.allclose(data.targets.sum(1), torch.ones(12))


def test_share_sampler_feeds_a_dataloader_with_the_asked_share(version):
    data = ImageDataset(version)
    loader = DataLoader(data, batch_sampler=data.share_sampler(batch_size=8, synthetic_share=0.25, steps=6))
    batches = list(loader)
    assert len(batches) == 6
    for images, labels in batches:
        assert images.shape == (8, 1, 8, 8)
        # The pixel value is the row number: rows 6-11 are the synthetic ones.
        assert (images[:, 0, 0, 0] * 255).round().ge(6).sum() == 2


def test_without_the_filter_columns_the_options_say_what_is_missing(tmp_path):
    version = version_folder(tmp_path / "data" / "augmented", judged=False)
    with pytest.raises(DataError, match="judge_confidence"):
        ImageDataset(version, min_judge_prob=0.5)
    with pytest.raises(DataError, match="judge_probs"):
        ImageDataset(version, soft_labels=True)
