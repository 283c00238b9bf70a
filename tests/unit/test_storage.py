"""Shards (written, read, mapped), the manifest schema and atomic outputs."""

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from components.data.atomic import atomic_dir, atomic_file, write_json
from components.data.manifest import DatasetInfo, read_manifest, read_split, write_manifest
from components.data.shards import ShardWriter, gather_images, load_shard, map_shards
from components.errors import DataError, StorageError

REPO = Path(__file__).resolve().parents[2]


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
    assert files == [f"train-0000{i}.npy{end}" for i in range(3) for end in ("", ".md5")]
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


def written_set(root):
    with ShardWriter(root, prefix="train", shard_size=8) as writer:
        shards, offsets = writer.write(images(5))
    write_manifest(root, manifest_for(shards, offsets, [0, 1, 0, 1, 1]))
    DatasetInfo(["a", "b"], 4, 1).write(root)
    return root / shards[0]


def without_checksum(shard):
    """A shard as genaug wrote them before it kept checksums: checked by its format alone."""
    (shard.parent / (shard.name + ".md5")).unlink()
    return shard


@pytest.mark.parametrize("damage, message", [
    (lambda shard: without_checksum(shard).write_bytes(b""), r"train-00000.npy: not a readable image shard \(EOFError"),
    (lambda shard: without_checksum(shard).write_bytes(b"not numpy"), r"train-00000.npy: not a readable image shard"),
    (lambda shard: np.save(without_checksum(shard), images(3)),
     r"train-00000.npy: holds 3 images, but the manifest names offsets 0 to 4"),
    (lambda shard: shard.write_bytes(b""), r"train-00000.npy: corrupt: its bytes hash to md5 d41d8cd98f00b204"),
    (lambda shard: (shard.parent.parent / "manifest.parquet").write_bytes(b"PAR1 cut"), r"manifest.parquet: not a readable manifest"),
    (lambda shard: (shard.parent.parent / "info.json").write_text("{"), r"info.json: unreadable \(JSONDecodeError"),
    (lambda shard: (shard.parent.parent / "info.json").write_text("{}"), r"info.json: unreadable \(KeyError"),
])
def test_a_damaged_set_is_named_with_the_fix(tmp_path, damage, message):
    """A zero-byte or foreign shard, a shard shorter than its manifest says, a corrupt manifest or info.json:
    a DataError naming the file and the fix (re-run or dvc checkout), never EOFError/IndexError/ArrowInvalid."""
    damage(written_set(tmp_path))
    with pytest.raises(DataError, match=message) as error:
        DatasetInfo.read(tmp_path)
        read_split(tmp_path, "train")
    assert "dvc checkout" in str(error.value)


def test_a_flipped_bit_in_a_shard_is_refused_with_the_dvc_cache_file_to_delete(tmp_path):
    """Bit rot keeps a file's size and mtime, so DVC's status trusts its recorded hash and checks the file out
    as it is: the shard's own checksum is what stops a stage from reading it as images."""
    shard = written_set(tmp_path)
    expected = (tmp_path / "images/train-00000.npy.md5").read_text().strip()
    before = shard.stat()
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0x01  # one pixel, one bit: the shard still loads
    shard.write_bytes(bytes(data))
    os.utime(shard, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert np.load(shard).shape == (5, 4, 4, 1)
    cache = f".dvc/cache/files/md5/{expected[:2]}/{expected[2:]}"
    with pytest.raises(DataError, match=f"train-00000.npy: corrupt: .* written as {expected}.*{cache} is corrupt too"
                                        ".*dvc pull"):
        read_split(tmp_path, "train")
    data[-1] ^= 0x01
    shard.write_bytes(bytes(data))
    assert read_split(tmp_path, "train")[0].shape == (5, 4, 4, 1)


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


def test_atomic_file_keeps_the_old_file_when_the_block_fails(tmp_path):
    write_json(tmp_path / "m.json", {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_file(tmp_path / "m.json") as tmp:
            tmp.write_text('{"a": ')  # half written
            raise RuntimeError("killed")
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


@pytest.mark.parametrize("code, why", [(errno.ENOSPC, "the disk is full"), (errno.EROFS, "the file system is read-only")])
def test_a_full_or_read_only_disk_is_a_storage_error_and_keeps_the_old_output(tmp_path, code, why):
    """ENOSPC/EROFS injected where a stage writes its output (a real full disk: the next test)."""
    final = tmp_path / "out"
    with atomic_dir(final) as tmp:
        (tmp / "a.txt").write_text("first")
    with pytest.raises(StorageError, match=f"out: cannot write the output, {why}.*previous out, if any, is kept"):
        with atomic_dir(final) as tmp:
            raise OSError(code, os.strerror(code), str(tmp / "a.txt"))
    with pytest.raises(StorageError, match=why):
        with atomic_file(tmp_path / "m.json"):
            raise OSError(code, os.strerror(code))
    assert (final / "a.txt").read_text() == "first" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_file_written_atomically_inside_an_output_folder_is_reported_as_that_output(tmp_path):
    """A shard's .md5 (atomic_file) failing inside prepare's atomic_dir names data/prepared, not a temp file."""
    final = tmp_path / "out"
    with atomic_dir(final) as tmp:
        (tmp / "a.txt").write_text("first")
    with pytest.raises(StorageError) as info:
        with atomic_dir(final) as tmp, atomic_file(tmp / "a.txt.md5"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert str(info.value).startswith(f"{final}: cannot write the output, the disk is full"), info.value
    assert (final / "a.txt").read_text() == "first" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


FILL_A_TMPFS = """
import json, subprocess, sys
from pathlib import Path
import numpy as np
import torch
from components.data.atomic import atomic_dir
from components.data.shards import ShardWriter
from components.errors import StorageError
from components.training import checkpoint
disk = Path(sys.argv[1])
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(disk)], check=True)
def write(n):
    with atomic_dir(disk / "out") as tmp, ShardWriter(tmp, prefix="train", shard_size=512) as writer:
        writer.write(np.full((n, 28, 28, 1), 7, np.uint8))
write(16)
before = {str(p): p.read_bytes() for p in (disk / "out").rglob("*") if p.is_file()}
try:
    write(256)  # one 200 KB shard: more than the tmpfs holds
    error = None
except StorageError as exc:
    error = str(exc)
after = {str(p): p.read_bytes() for p in (disk / "out").rglob("*") if p.is_file()}
try:  # a trainer's checkpoint (torch.save fails on a full disk without an errno)
    checkpoint.save(disk / "step-0000010.pt", {"w": torch.zeros(100_000)})
    saving = None
except StorageError as exc:
    saving = str(exc)
print(json.dumps({"error": error, "kept": before == after, "left": sorted(p.name for p in disk.iterdir()),
                  "checkpoint": saving}))
"""


@pytest.mark.skipif(subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode != 0 if
                    shutil.which("unshare") else True, reason="no user+mount namespaces here (unshare -rm)")
def test_a_really_full_disk_is_a_storage_error_and_keeps_the_old_output(tmp_path):
    """A real full disk: a 128 KiB tmpfs in a user+mount namespace. numpy reports a short shard write as
    "N requested and M written", and torch.save a checkpoint as a RuntimeError, both without an errno: each must
    still read as a full disk."""
    (tmp_path / "disk").mkdir()
    result = subprocess.run(["unshare", "-rm", sys.executable, "-c", FILL_A_TMPFS, str(tmp_path / "disk")],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["error"] and "out: cannot write the output, the disk is full" in record["error"], record
    assert record["kept"] and record["left"] == ["out"], record
    assert record["checkpoint"] and "step-0000010.pt: cannot write the output, the disk is full" in record["checkpoint"]


def test_no_permission_for_the_output_folder_is_a_storage_error(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path))
    monkeypatch.setattr("tempfile.mkdtemp", refuse)
    with pytest.raises(StorageError, match="no permission to write there"):
        with atomic_dir(tmp_path / "out"):
            pass


def test_a_permission_error_reading_an_input_is_not_blamed_on_the_output(tmp_path):
    with pytest.raises(PermissionError):
        with atomic_dir(tmp_path / "out"):
            raise PermissionError(errno.EACCES, "Permission denied", "/some/input.png")


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


def write_shards(root, sizes, seed=0):
    """Random 8x8 images in shards of the given sizes; their names."""
    rng = np.random.default_rng(seed)
    with ShardWriter(root, prefix="s", shard_size=max(sizes)) as writer:
        names = []
        for size in sizes:
            names += writer.write(rng.integers(0, 256, (size, 8, 8, 1), dtype=np.uint8))[0]
            writer.flush()
    return sorted(set(names))


def test_map_shards_copies_or_maps_each_shard_a_full_batch_at_a_time(tmp_path):
    names = write_shards(tmp_path / "src", [5, 3])
    map_shards(tmp_path / "src", tmp_path / "copy", names, None, batch_size=4)
    for name in names:
        assert (tmp_path / "copy" / name).read_bytes() == (tmp_path / "src" / name).read_bytes()

    seen = []

    def twice_as_large(batch):
        seen.append(len(batch))
        return 255 - batch.repeat(2, axis=1).repeat(2, axis=2)

    map_shards(tmp_path / "src", tmp_path / "big", names, twice_as_large, batch_size=4, scale=2)
    assert seen == [4, 4, 4]  # 5 = 4 + 1 padded, 3 padded: the function never sees a short batch
    for name in names:
        before, after = load_shard(tmp_path / "src", name), load_shard(tmp_path / "big", name)
        assert after.shape == (len(before), 16, 16, 1)
        assert np.array_equal(after, 255 - before.repeat(2, axis=1).repeat(2, axis=2))
    assert not list((tmp_path / "big").rglob("*.tmp*"))


def test_a_mapped_sample_does_not_depend_on_where_its_shard_ends(tmp_path):
    """32 images through a (random) denoiser, as one shard or as 32 shards of one: the same pixels. Without
    full batches a few pixels differ (CPU kernels pick their algorithm by batch size; a batch of one differs
    from a batch of 16), so the samples would depend on how the shards were cut or shared among workers."""
    from components.models import autoencoder
    pictures = np.random.default_rng(0).integers(0, 256, (32, 28, 28, 1), dtype=np.uint8)
    model = autoencoder.build(1, 28, seed=0, width=16, levels=2)
    fn = lambda batch: autoencoder.denoise(model, batch, 1.0, len(batch), torch.device("cpu"))  # noqa: E731
    outputs = []
    for root, size in (("one", 32), ("many", 1)):
        with ShardWriter(tmp_path / root, prefix="s", shard_size=size) as writer:
            writer.write(pictures)
        names = sorted(p.relative_to(tmp_path / root).as_posix() for p in (tmp_path / root).rglob("*.npy"))
        map_shards(tmp_path / root, tmp_path / f"{root}-out", names, fn, batch_size=16)
        outputs.append(np.concatenate([load_shard(tmp_path / f"{root}-out", name) for name in names]))
    assert len(names) == 32 and np.array_equal(*outputs)
