"""Getting a dataset version back by git revision: a pandas manifest plus images, or an ImageFolder tree.

    from components.data.versions import load_version
    ds = load_version(rev="dataset-v1", repo="https://github.com/you/genaug")
    ds.manifest.groupby(["class_name", "source"]).size()
    images = ds.images(ds.manifest[ds.manifest.split == "train"])
"""

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from components import paths
from components.data.atomic import atomic_dir
from components.data.manifest import DatasetInfo, read_manifest
from components.data.shards import gather_images, iter_images
from components.errors import DataError


@dataclass(frozen=True)
class DatasetVersion:
    root: Path
    manifest: pd.DataFrame
    info: DatasetInfo

    def images(self, rows: pd.DataFrame | None = None) -> np.ndarray:
        """uint8 (N, H, W, C) pixels of `rows` (default: every row), in row order."""
        return gather_images(self.root, self.manifest if rows is None else rows)

    def rows(self, split: str | None = "train", sources: tuple[str, ...] = ("real", "synthetic")) -> pd.DataFrame:
        selected = self.manifest[self.manifest["source"].isin(sources)]
        return selected if split is None else selected[selected["split"] == split]


def fetch(rev: str | None = None, repo: str = ".", dest: Path | None = None,
          path: str = paths.AUGMENTED.as_posix()) -> Path:
    """A local folder holding the dataset at `rev` (the workspace itself when rev is None and repo is local)."""
    if rev is None and Path(repo).is_dir():
        return Path(repo) / path
    from dvc.api import DVCFileSystem
    from dvc.scm import RevError

    dest = Path(dest) if dest else Path(tempfile.mkdtemp(prefix="genaug-version-"))
    try:
        fs = DVCFileSystem(url=repo, rev=rev)
        fs.get(path, str(dest / "dataset"), recursive=True)
    except RevError as exc:
        raise DataError(f"{repo}: unknown revision {rev!r} ({exc}); list versions with `git tag`") from None
    except FileNotFoundError as exc:
        raise DataError(f"{repo}@{rev}: {path} is not there or not in the DVC remote ({exc}); "
                        "was the version pushed (`python -m components version`)?") from None
    return dest / "dataset"


def load_version(rev: str | None = None, repo: str = ".", dest: Path | None = None) -> DatasetVersion:
    root = fetch(rev, repo, dest)
    return DatasetVersion(root=root, manifest=read_manifest(root), info=DatasetInfo.read(root))


def export_imagefolder(dataset: DatasetVersion, out: Path, split: str | None = "train") -> int:
    """Write `<out>/<class>/<id>.png` for every image of `split` (None: all splits); returns the count."""
    rows = dataset.rows(split)
    if rows.empty:
        raise DataError(f"{dataset.root}: no images in split {split!r}")
    folders = {name: safe_folder(name) for name in dataset.info.class_names}
    with atomic_dir(Path(out)) as tmp:
        for folder in folders.values():
            (tmp / folder).mkdir()
        with tqdm(total=len(rows), desc="export", unit="img", disable=None) as bar:
            for shard_rows, images in iter_images(dataset.root, rows):
                for (_, row), image in zip(shard_rows.iterrows(), images):
                    pixels = image[..., 0] if image.shape[-1] == 1 else image
                    Image.fromarray(pixels).save(tmp / folders[row["class_name"]] / f"{row['id']}.png")
                bar.update(len(shard_rows))
    return len(rows)


def safe_folder(class_name: str) -> str:
    """A class name usable as one folder name (Fashion-MNIST has 'T-shirt/top')."""
    return class_name.replace("/", "_").replace("\\", "_").strip(". ") or "_"
