"""The manifest: one row per image (id, split, label, class_name, source, shard, offset, provenance).

A dataset folder (data/prepared, data/augmented) holds images/*.npy, manifest.parquet and info.json
(class names, image size, channels). pandas reads the manifest; shards.py reads the pixels.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from components.data.atomic import atomic_file, write_json
from components.data.shards import gather_images
from components.errors import DataError

MANIFEST = "manifest.parquet"
INFO = "info.json"
SPLITS = ("train", "val", "test")
SOURCES = ("real", "synthetic")

# Columns every manifest has, with their dtypes; synthetic rows add provenance columns
# (model, checkpoint, seed, ...) that are null on real rows.
COLUMNS = {
    "id": "string",
    "split": "string",
    "label": "int64",
    "class_name": "string",
    "source": "string",
    "origin": "string",
    "shard": "string",
    "offset": "int64",
}


@dataclass(frozen=True)
class DatasetInfo:
    class_names: list[str]
    size: int
    channels: int

    @classmethod
    def read(cls, root: Path) -> "DatasetInfo":
        path = Path(root) / INFO
        try:
            raw = json.loads(path.read_text())
            return cls(class_names=list(raw["class_names"]), size=int(raw["size"]), channels=int(raw["channels"]))
        except FileNotFoundError:
            raise DataError(f"{path}: missing; re-run the stage that wrote {root}") from None
        except (ValueError, KeyError, TypeError) as exc:  # not JSON, or not the fields this file holds
            raise DataError(f"{path}: unreadable ({type(exc).__name__}: {exc}); re-run the stage that wrote {root} "
                            "(dvc repro), or restore it (dvc checkout)") from None

    def write(self, root: Path, **extra) -> None:
        write_json(Path(root) / INFO, {"class_names": self.class_names, "size": self.size,
                                       "channels": self.channels, **extra})


def check_manifest(df: pd.DataFrame, where: str) -> pd.DataFrame:
    """Check the required columns, values and unique ids; return the frame with canonical dtypes."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{where}: manifest lacks column(s) {missing}")
    df = df.astype(COLUMNS)
    bad_split = sorted(set(df["split"]) - set(SPLITS))
    if bad_split:
        raise DataError(f"{where}: unknown split value(s) {bad_split}; allowed: {list(SPLITS)}")
    bad_source = sorted(set(df["source"]) - set(SOURCES))
    if bad_source:
        raise DataError(f"{where}: unknown source value(s) {bad_source}; allowed: {list(SOURCES)}")
    dupes = df["id"][df["id"].duplicated()].unique().tolist()
    if dupes:
        raise DataError(f"{where}: duplicate sample id(s) {dupes[:5]}")
    return df


def write_manifest(root: Path, df: pd.DataFrame) -> None:
    df = check_manifest(df, str(Path(root) / MANIFEST)).reset_index(drop=True)
    with atomic_file(Path(root) / MANIFEST) as tmp:
        df.to_parquet(tmp, index=False)


def read_manifest(root: Path) -> pd.DataFrame:
    path = Path(root) / MANIFEST
    try:
        df = pd.read_parquet(path)
    except FileNotFoundError:
        raise DataError(f"{path}: missing; re-run the stage that wrote {root}") from None
    except (OSError, ValueError) as exc:  # pyarrow's errors for a file that is no Parquet, or a cut one
        raise DataError(f"{path}: not a readable manifest ({type(exc).__name__}: {exc}); re-run the stage that "
                        f"wrote {root} (dvc repro), or restore it (dvc checkout)") from None
    return check_manifest(df, str(path))


def read_split(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W, C) uint8 and labels (N,) int64 of one split, in manifest order."""
    manifest = read_manifest(root)
    rows = manifest[manifest["split"] == split]
    if rows.empty:
        raise DataError(f"{Path(root) / MANIFEST}: split '{split}' has no images")
    return gather_images(root, rows), rows["label"].to_numpy(dtype=np.int64)
