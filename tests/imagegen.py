"""Tiny real image fixtures for tests: IDX files, PNG/JPEG class folders, CSV/Parquet manifests."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
             np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}


def pixels(width: int, height: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Random uint8 pixels, (height, width) or (height, width, 3)."""
    shape = (height, width) if channels == 1 else (height, width, channels)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def write_image(path: Path, width: int = 12, height: int = 12, mode: str = "L", seed: int = 0) -> Path:
    """A random image in `mode` (L or RGB); the format comes from the extension (.png, .jpg, ...)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels(width, height, 1 if mode == "L" else 3, seed)).save(path)
    return path


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, IDX_CODES[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray) -> Path:
    """An IDX file holding `array`, gzipped when the name ends in .gz."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def write_idx_split(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray,
                    gz: bool = False) -> tuple[Path, Path]:
    """`<prefix>-images-idx3-ubyte` and `<prefix>-labels-idx1-ubyte` (with .gz if asked) in folder."""
    end = ".gz" if gz else ""
    return (write_idx(folder / f"{prefix}-images-idx3-ubyte{end}", images),
            write_idx(folder / f"{prefix}-labels-idx1-ubyte{end}", labels))


def gray_stack(n: int, size: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size), dtype=np.uint8)


def write_class_folders(root: Path, counts: dict[str, int], ext: str = ".png", width: int = 12,
                        height: int = 12, mode: str = "L") -> Path:
    """root/<class>/<class>-<i><ext>, counts[class] random images per class."""
    for k, (name, n) in enumerate(counts.items()):
        for i in range(n):
            write_image(root / name / f"{name}-{i}{ext}", width, height, mode, seed=100 * k + i)
    return root


def write_manifest(root: Path, rows: list[dict], name: str = "manifest.csv") -> Path:
    """A CSV or Parquet table (by the name's extension) of `rows` in root."""
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    if path.suffix == ".csv":
        table.to_csv(path, index=False)
    else:
        table.to_parquet(path, index=False)
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut the file to its first `keep` share of bytes, like an interrupted download."""
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    return path
