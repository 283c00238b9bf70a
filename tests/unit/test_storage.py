"""Shards, the manifest schema and atomic outputs."""

import os
import stat

import numpy as np
import pandas as pd
import pytest

from components.data.atomic import atomic_dir, write_json
from components.data.manifest import read_manifest, read_split, write_manifest
from components.data.shards import ShardWriter, gather_images
from components.errors import DataError


def images(n: int, start: int = 0) -> np.ndarray:
    return (np.arange(start, start + n, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 1), np.uint8))


def manifest_for(shards, offsets, labels, split="train") -> pd.DataFrame:
    n = len(shards)
    return pd.DataFrame({"id": [f"s{i}" for i in range(n)], "split": split, "label": labels,
                         "class_name": [f"c{k}" for k in labels], "source": "real",
                         "origin": [f"o{i}" for i in range(n)], "shard": shards, "offset": offsets})


def test_writer_cuts_shards_and_gather_restores_order(tmp_path):
    with ShardWriter(tmp_path, prefix="train", shard_size=4) as writer:
        s1, o1 = writer.write(images(3))
        s2, o2 = writer.write(images(7, start=3))
    files = sorted(p.name for p in (tmp_path / "images").iterdir())
    assert files == ["train-00000.npy", "train-00001.npy", "train-00002.npy"]
    assert o1 + o2 == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    manifest = manifest_for(s1 + s2, o1 + o2, [0] * 10)
    shuffled = manifest.sample(frac=1, random_state=0)
    got = gather_images(tmp_path, shuffled)
    assert got[:, 0, 0, 0].tolist() == [int(i[1:]) for i in shuffled["id"]]


def test_manifest_roundtrip_and_read_split(tmp_path):
    with ShardWriter(tmp_path, prefix="train", shard_size=8) as writer:
        shards, offsets = writer.write(images(5))
    write_manifest(tmp_path, manifest_for(shards, offsets, [0, 1, 0, 1, 1]))
    back = read_manifest(tmp_path)
    assert back["label"].dtype == np.int64 and len(back) == 5
    pixels, labels = read_split(tmp_path, "train")
    assert labels.tolist() == [0, 1, 0, 1, 1] and pixels.shape == (5, 4, 4, 1)
    with pytest.raises(DataError, match="split 'val' has no images"):
        read_split(tmp_path, "val")


@pytest.mark.parametrize("change, message", [
    (lambda df: df.assign(id="same"), "duplicate sample id"),
    (lambda df: df.assign(split="dev"), "unknown split"),
    (lambda df: df.assign(source="fake"), "unknown source"),
    (lambda df: df.drop(columns=["label"]), "lacks column"),
])
def test_manifest_schema_is_enforced(tmp_path, change, message):
    df = change(manifest_for(["images/a.npy"] * 2, [0, 1], [0, 1]))
    with pytest.raises(DataError, match=message):
        write_manifest(tmp_path, df)
    assert not (tmp_path / "manifest.parquet").exists()


def test_missing_shard_is_a_clear_error(tmp_path):
    df = manifest_for(["images/gone.npy"], [0], [0])
    with pytest.raises(DataError, match="gone.npy: shard named in the manifest is missing"):
        gather_images(tmp_path, df)


def test_atomic_dir_keeps_the_old_output_when_the_block_fails(tmp_path):
    final = tmp_path / "out"
    with atomic_dir(final) as tmp:
        (tmp / "a.txt").write_text("first")
    with pytest.raises(RuntimeError):
        with atomic_dir(final) as tmp:
            (tmp / "a.txt").write_text("half")
            raise RuntimeError("killed")
    assert (final / "a.txt").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_write_json_replaces_atomically(tmp_path):
    write_json(tmp_path / "m.json", {"b": 1, "a": 2})
    assert (tmp_path / "m.json").read_text().startswith('{\n  "a": 2')
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_outputs_get_the_usual_permissions_not_the_temp_files_private_ones(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "metrics.json", {"a": 1})
        with atomic_dir(tmp_path / "out") as out:
            (out / "x").write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "metrics.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o755
