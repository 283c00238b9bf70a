"""Image shards: uint8 arrays (N, H, W, C) in .npy files, located by the manifest's shard/offset columns.

One array file per few thousand images keeps DVC fast (per-image files were ~20x slower to version).
Beside each shard, `<shard>.md5` holds the md5 of its bytes as written (DVC's name for the file in its cache);
a shard whose bytes no longer match is refused when read, so a stage never reads a corrupt shard as images
(DVC itself re-hashes a cache file only when its size or mtime changed: a flipped bit passes `dvc status`).
"""

import hashlib
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from components.data.atomic import atomic_file, write_text
from components.errors import DataError
from components.fanout import ordered_map, runs_here

SHARD_DIR = "images"
CHECKSUM = ".md5"
_verified: set[tuple] = set()  # shards this process has checked: (path, inode, size, mtime)


class ShardWriter:
    """Append image batches; every `shard_size` images become `<dir>/images/<prefix>-NNNNN.npy`.

    `write` returns the (shard, offset) of each image written, for the manifest.
    """

    def __init__(self, root: Path, prefix: str, shard_size: int):
        self.dir = Path(root) / SHARD_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.shard_size = shard_size
        self.pending: list[np.ndarray] = []
        self.pending_count = 0
        self.shard_index = 0
        self.count = 0

    def write(self, images: np.ndarray) -> tuple[list[str], list[int]]:
        if images.dtype != np.uint8 or images.ndim != 4:
            raise ValueError(f"shards hold uint8 (N, H, W, C) arrays, got {images.dtype} {images.shape}")
        shards, offsets = [], []
        start = 0
        while start < len(images):
            take = min(self.shard_size - self.pending_count, len(images) - start)
            name = self.shard_name(self.shard_index)
            shards += [name] * take
            offsets += range(self.pending_count, self.pending_count + take)
            self.pending.append(images[start:start + take])
            self.pending_count += take
            start += take
            if self.pending_count == self.shard_size:
                self.flush()
        self.count += len(images)
        return shards, offsets

    def shard_name(self, index: int) -> str:
        return f"{SHARD_DIR}/{self.prefix}-{index:05d}.npy"

    def flush(self) -> None:
        if not self.pending_count:
            return
        final = self.dir.parent / self.shard_name(self.shard_index)
        with atomic_file(final) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, np.concatenate(self.pending))
        record_checksum(final)
        self.pending, self.pending_count = [], 0
        self.shard_index += 1

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.flush()


def shard_path(root: Path, shard: str) -> Path:
    """root / shard, refused if the manifest's path leaves root."""
    path = (Path(root) / shard).resolve()
    if not path.is_relative_to(Path(root).resolve()):
        raise DataError(f"{root}: manifest names shard {shard!r}, outside the folder")
    return path


def load_shard(root: Path, shard: str, mmap: bool = False) -> np.ndarray:
    """The shard's images; `mmap`: memory-mapped read-only, read from disk only as they are used."""
    path = shard_path(root, shard)
    try:
        verify(path)
        return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except FileNotFoundError:
        raise DataError(f"{path}: shard named in the manifest is missing; re-run the stage that wrote {root}") from None
    except (ValueError, EOFError, OSError) as exc:  # EOFError: an empty file
        raise DataError(f"{path}: not a readable image shard ({type(exc).__name__}: {exc or 'empty file'}); re-run the "
                        f"stage that wrote {root} (dvc repro), or restore it (dvc checkout)") from None


def file_md5(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "md5").hexdigest()


def checksum_path(path: Path) -> Path:
    return path.with_name(path.name + CHECKSUM)


def record_checksum(path: Path) -> None:
    write_text(checksum_path(path), file_md5(path) + "\n")


def verify(path: Path) -> None:
    """DataError when the shard's bytes differ from those it was written with (a shard without a checksum,
    written before genaug kept them, is read as it is)."""
    recorded = checksum_path(path)
    if not recorded.is_file():
        return
    stat = path.stat()
    key = (str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if key in _verified:
        return
    expected, actual = recorded.read_text().strip(), file_md5(path)
    if actual != expected:
        cache = f".dvc/cache/files/md5/{expected[:2]}/{expected[2:]}"
        raise DataError(f"{path}: corrupt: its bytes hash to md5 {actual}, but it was written as {expected} "
                        f"({recorded.name}). Delete it and run `dvc checkout` (DVC's cached copy); if this error "
                        f"comes back, the cache file {cache} is corrupt too: delete it as well and run `dvc pull` "
                        f"(the remote's copy), or `dvc repro` to make the shard again")
    _verified.add(key)


def iter_images(root: Path, manifest: pd.DataFrame) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """Yield (rows, images) shard by shard, in the manifest's order within each shard."""
    for shard, rows in manifest.groupby("shard", sort=True):
        array = load_shard(root, shard)
        offsets = rows["offset"].to_numpy()
        if len(offsets) and (offsets.min() < 0 or offsets.max() >= len(array)):
            raise DataError(f"{shard_path(root, shard)}: holds {len(array)} images, but the manifest names offsets "
                            f"{offsets.min()} to {offsets.max()}: shard and manifest do not belong together; re-run "
                            f"the stage that wrote {root} (dvc repro), or restore it (dvc checkout)")
        yield rows, array[offsets]


def gather_images(root: Path, manifest: pd.DataFrame) -> np.ndarray:
    """All images of `manifest`'s rows, in row order, as one (N, H, W, C) array."""
    if manifest.empty:
        raise DataError(f"{root}: no images selected from the manifest")
    position = pd.Series(np.arange(len(manifest)), index=manifest.index)
    out: np.ndarray | None = None
    for rows, images in iter_images(root, manifest):
        if out is None:
            out = np.empty((len(manifest), *images.shape[1:]), dtype=np.uint8)
        out[position[rows.index].to_numpy()] = images
    return out


def map_shards(source: Path, out: Path, shards: Iterable[str], fn: Callable[[np.ndarray], np.ndarray] | None,
               batch_size: int, scale: int = 1, desc: str = "map", gpu: bool = False) -> None:
    """Write each shard of `source` into `out` under the same name, so the manifest's shard/offset columns
    still hold: `fn` over its images, a batch at a time, each shard file atomically; `fn` turns (n, h, w, C)
    into (n, h * scale, w * scale, C). `fn` None copies the shard's bytes. The shards run here (read and
    written memory-mapped: memory stays near a batch whatever the shard size) or on a Dask cluster
    (components/fanout.py: a piece is a shard's images, `gpu` asks for a GPU worker), with the same bytes.

    Every batch `fn` sees holds exactly `batch_size` images, the last one padded with black images and cut
    back: CPU kernels pick their algorithm by batch size, so a short batch would give other pixels, and a
    sample's pixels would depend on where its shard ends (or on how the shards are split among workers)."""
    shards = list(shards)
    images = {shard: load_shard(source, shard, mmap=True) for shard in shards}
    total = sum(len(a) for a in images.values())
    with tqdm(total=total, desc=desc, unit="img", disable=None) as bar:
        if fn is None:
            for shard in shards:
                copy_shard(source, out, shard)
                bar.update(len(images[shard]))
        elif runs_here(gpu):
            for shard, mapped in images.items():
                with shard_file(out, shard, mapped, scale) as target:
                    in_full_batches(fn, mapped, batch_size, target)
                bar.update(len(mapped))
        else:
            pieces = (np.asarray(images[shard]) for shard in shards)
            for shard, result in zip(shards, ordered_map(mapped_images, pieces, gpu, fn=fn,
                                                         batch_size=batch_size)):
                with shard_file(out, shard, images[shard], scale) as target:
                    target[:] = result
                bar.update(len(result))


def mapped_images(images: np.ndarray, fn: Callable[[np.ndarray], np.ndarray], batch_size: int) -> np.ndarray:
    """A piece of map_shards' work on a Dask worker: one shard's images through fn."""
    return in_full_batches(fn, images, batch_size)


def copy_shard(source: Path, out: Path, shard: str) -> None:
    src, dst = shard_path(source, shard), shard_path(out, shard)
    verify(src)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    record_checksum(dst)


@contextmanager
def shard_file(out: Path, shard: str, images: np.ndarray, scale: int) -> Iterator[np.ndarray]:
    """A memory-mapped (n, h * scale, w * scale, C) uint8 array to fill, renamed into place when complete."""
    n, h, w, c = images.shape
    dst = shard_path(out, shard)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(dst) as tmp:
        target = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, h * scale, w * scale, c))
        yield target
        target.flush()
        del target
    record_checksum(dst)


def in_full_batches(fn: Callable[[np.ndarray], np.ndarray], images: np.ndarray, batch_size: int,
                    out: np.ndarray | None = None) -> np.ndarray:
    """fn over (N, H, W, C) images `batch_size` at a time into `out` (a new array when None; fn's outputs may
    be larger images); every batch fn sees is full, the last one padded with black images and cut back."""
    for start in range(0, len(images), batch_size):
        part = images[start:start + batch_size]
        batch = np.zeros((batch_size, *images.shape[1:]), np.uint8)
        batch[:len(part)] = part
        result = fn(batch)[:len(part)]
        if out is None:
            out = np.empty((len(images), *result.shape[1:]), np.uint8)
        out[start:start + len(part)] = result
    return out if out is not None else images.copy()
