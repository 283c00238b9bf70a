"""The image sources of the prepare stage: read one source (Fashion-MNIST, IDX, image folders, a manifest
table, scikit-learn's digits) into SourceData at prepare.size and prepare.channels.

The label budget, class subset, splits and imbalance are the prepare stage's; this module only reads,
checks and converts. Bad image files are skipped (and reported) or fatal, as prepare.on_bad_file says.
"""

import gzip
import importlib.util
import logging
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from components.config.data import (
    FASHION_MNIST_CLASSES, FashionMnistSource, IdxSource, ImageFolderSource, ManifestSource,
    PrepareParams, SklearnDigitsSource,
)
from components.data.images import BadImage, fit_gray_stack, fit_image, read_image
from components.errors import DataError

log = logging.getLogger("genaug")

PATH_KEY = "prepare.source.path"
# Warn about this many skipped files one by one, then only count them: a folder of stray files
# should not bury the rest of the log.
WARN_EACH = 20
SHOWN_ROWS = 10


@dataclass
class LoadReport:
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason) of each skipped bad file
    resized: int = 0  # images whose size differed from the target and were resized
    converted: int = 0  # images whose channel count differed and were converted


@dataclass
class SourceData:
    images: np.ndarray  # (N, size, size, channels) uint8
    labels: np.ndarray  # (N,) int64, indices into class_names
    origins: list[str]  # stable origin per sample: relative path, "<idx file>:<index>" or "digits:<row>"
    official_test: np.ndarray  # (N,) bool; True for the rows of an official test split (IDX t10k-*)
    class_names: list[str]
    report: LoadReport


def load_source(params: PrepareParams) -> SourceData:
    """Read params.source, at params.size x params.size with params.channels channels."""
    data = LOADERS[params.source.kind](params.source, params)
    if len(data.labels) == 0:
        raise DataError(f"{PATH_KEY}: the {params.source.kind} source at {params.source.path} has no usable "
                        f"images ({len(data.report.skipped)} file(s) skipped); add images or point "
                        f"{PATH_KEY} at another source")
    if data.report.skipped:
        log.warning("skipped %d bad file(s) in all; they are listed under 'skipped' in the prepared "
                    "dataset's info.json", len(data.report.skipped))
    return data


# --- checks shared by the sources ---------------------------------------------------------------

def require_dir(path: Path, holding: str) -> Path:
    if not path.is_dir():
        state = "is not a folder" if path.exists() else "does not exist"
        raise DataError(f"{PATH_KEY}: {path} {state}; set {PATH_KEY} in params.yaml to the folder holding {holding}")
    return path


def bad_file(params: PrepareParams, report: LoadReport, path: Path | str, name: str, reason: str) -> None:
    """Apply prepare.on_bad_file to one bad file: record and warn, or stop."""
    if params.on_bad_file == "fail":
        raise DataError(f"{path}: {reason}; fix or remove the file, or set prepare.on_bad_file: skip "
                        "to skip bad files")
    report.skipped.append((name, reason))
    if len(report.skipped) <= WARN_EACH:
        log.warning("skipping %s: %s", path, reason)


def decode_files(root: Path, files: list[str], params: PrepareParams,
                 report: LoadReport) -> tuple[np.ndarray, np.ndarray]:
    """Decode and fit `files` (relative to root); returns the images and the indices of the files kept."""
    images = np.empty((len(files), params.size, params.size, params.channels), np.uint8)
    kept: list[int] = []
    for index, name in enumerate(tqdm(files, desc="decoding images", unit="img", leave=False, disable=None)):
        try:
            image = read_image(root / name)
        except BadImage as e:
            bad_file(params, report, root / name, name, str(e))
            continue
        fitted = fit_image(image, params.size, params.channels)
        images[len(kept)] = fitted.pixels
        report.resized += fitted.resized
        report.converted += fitted.converted
        kept.append(index)
    return images[:len(kept)], np.array(kept, dtype=np.int64)


def first_rows(rows: np.ndarray) -> str:
    shown = ", ".join(str(r) for r in rows[:SHOWN_ROWS])
    return shown + (f" and {len(rows) - SHOWN_ROWS} more" if len(rows) > SHOWN_ROWS else "")


# --- IDX: fashion-mnist and idx -----------------------------------------------------------------

IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IDX_SPLITS = {"train": False, "t10k": True}  # split prefix -> official test


@dataclass
class IdxPart:
    name: str  # the images file's name without .gz, so origins survive gunzipping
    images: np.ndarray  # (N, H, W) uint8
    labels: np.ndarray  # (N,) int64
    labels_file: Path
    official_test: bool


def load_idx(source: FashionMnistSource | IdxSource, params: PrepareParams) -> SourceData:
    holding = "train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz]"
    if source.kind == "fashion-mnist":
        holding = "the 4 Fashion-MNIST IDX files (Debian/Ubuntu: apt-get install dataset-fashion-mnist)"
    folder = require_dir(source.path, holding)
    parts = []
    for prefix in IDX_SPLITS:
        part = read_idx_pair(folder, prefix, required=prefix == "train" or source.kind == "fashion-mnist")
        if part is not None:
            parts.append(part)
    class_names = idx_class_names(source, parts)
    report = LoadReport()
    fitted = []
    for part in parts:
        images, resized, converted = fit_gray_stack(part.images, params.size, params.channels)
        fitted.append(images)
        report.resized += resized
        report.converted += converted
    return SourceData(
        images=np.concatenate(fitted),
        labels=np.concatenate([part.labels for part in parts]),
        origins=[f"{part.name}:{i}" for part in parts for i in range(len(part.labels))],
        official_test=np.concatenate([np.full(len(part.labels), part.official_test) for part in parts]),
        class_names=class_names,
        report=report,
    )


def read_idx_pair(folder: Path, prefix: str, required: bool) -> IdxPart | None:
    """The images and labels files of one split; None when an optional pair is absent."""
    names = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
    found = [find_idx(folder, name) for name in names]
    if found == [None, None] and not required:
        return None
    for name, path in zip(names, found):
        if path is None:
            raise DataError(f"{PATH_KEY}: {folder} has no {name} (or {name}.gz); an IDX source needs "
                            f"{names[0]} and {names[1]}, gzipped or not")
    images_file, labels_file = found
    images, labels = read_idx(images_file), read_idx(labels_file)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{images_file}: expected (N, rows, cols) unsigned-byte images, found "
                        f"{images.dtype} with shape {images.shape}")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{labels_file}: expected a 1-D integer label file, found {labels.dtype} "
                        f"with shape {labels.shape}")
    if len(images) != len(labels):
        raise DataError(f"{images_file} holds {len(images)} images but {labels_file} holds {len(labels)} "
                        "labels; the two files of a split must come from the same release")
    return IdxPart(name=names[0], images=images, labels=labels.astype(np.int64), labels_file=labels_file,
                   official_test=IDX_SPLITS[prefix])


def find_idx(folder: Path, name: str) -> Path | None:
    for path in (folder / name, folder / f"{name}.gz"):
        if path.is_file():
            return path
    return None


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (plain or .gz): magic 0x00 0x00, dtype code, dim count, big-endian dims, data."""
    data = idx_bytes(path)
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number {data[:4].hex() or 'none'}); "
                        "expected MNIST-format files such as train-images-idx3-ubyte")
    dtype, ndim = np.dtype(IDX_DTYPES[data[2]]), data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header; download the file again")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "longer than its header says"
        raise DataError(f"{path}: {state} ({len(data)} bytes, the header {list(dims)} says {expected}); "
                        "download the file again")
    return np.frombuffer(data, dtype, offset=header).reshape(dims)


def idx_bytes(path: Path) -> bytes:
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        return gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: not a valid gzip file ({e}); download it again or gunzip a good copy") from e


def idx_class_names(source: FashionMnistSource | IdxSource, parts: list[IdxPart]) -> list[str]:
    """Fashion-MNIST's names, the params' names, or "0".."K-1"; every label must index one of them."""
    if source.kind == "fashion-mnist":
        names, fix = list(FASHION_MNIST_CLASSES), "this is not Fashion-MNIST: use prepare.source.kind: idx"
    elif source.class_names is not None:
        names, fix = list(source.class_names), "give one name per label in prepare.source.class_names"
    else:
        top = max(int(part.labels.max(initial=0)) for part in parts)
        names, fix = [str(k) for k in range(top + 1)], ""
    for part in parts:
        bad = part.labels[(part.labels < 0) | (part.labels >= len(names))]
        if len(bad):
            raise DataError(f"{part.labels_file}: label(s) {sorted(set(bad.tolist()))[:SHOWN_ROWS]} outside "
                            f"0..{len(names) - 1}; {fix or 'labels must be 0 or more'}")
    return names


# --- image folders --------------------------------------------------------------------------------

def load_imagefolder(source: ImageFolderSource, params: PrepareParams) -> SourceData:
    root = require_dir(source.path, "one sub-folder of images per class")
    extensions = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in source.extensions}
    class_names = [d.name for d in sorted(root.iterdir()) if d.is_dir() and not hidden(d.name)]
    for name in class_names:
        if not utf8(name):
            raise DataError(f"{printable(root / name)}: a class folder whose name is not valid UTF-8; rename it "
                            "(the name becomes the class name in the manifest)")
    if not class_names:
        raise DataError(f"{PATH_KEY}: {root} has no class folders; an imagefolder source is "
                        f"<path>/<class>/<image> with one sub-folder per class")
    report = LoadReport()
    for name in sorted(f.name for f in root.iterdir() if f.is_file() and not hidden(f.name)):
        bad_file(params, report, root / name, name, "not in a class folder")
    files, labels = [], []
    wanted = set(class_names if params.classes is None else params.classes)
    for label, class_name in enumerate(class_names):
        names, others = class_files(root, class_name, extensions)
        for name in others:
            bad_file(params, report, printable(root / name), printable(name),
                     "not an image extension" if utf8(name) else "a file name that is not valid UTF-8 (rename it)")
        if not names and class_name in wanted:
            raise DataError(empty_class_message(root / class_name, extensions, others))
        files += names
        labels += [label] * len(names)
    images, kept = decode_files(root, files, params, report)
    labels = np.array(labels, dtype=np.int64)
    check_classes_kept(root, class_names, wanted, files, labels, kept, report)
    return SourceData(images=images, labels=labels[kept], origins=[files[i] for i in kept],
                      official_test=np.zeros(len(kept), bool), class_names=class_names, report=report)


def hidden(name: str) -> bool:
    return name.startswith(".")


def class_files(root: Path, class_name: str, extensions: set[str]) -> tuple[list[str], list[str]]:
    """The files under one class folder (recursively, sorted, hidden ones left out), relative to root:
    those with an image extension (and a UTF-8 name), and the others."""
    images, others = [], []
    for folder, dirs, names in os.walk(root / class_name):
        dirs[:] = sorted(d for d in dirs if not hidden(d))
        for name in sorted(n for n in names if not hidden(n)):
            relative = (Path(folder) / name).relative_to(root).as_posix()
            image = Path(name).suffix.lower() in extensions and utf8(relative)
            (images if image else others).append(relative)
    return images, others


def utf8(name: str) -> bool:
    """False for a file name with bytes that are no UTF-8 (Python keeps them as surrogates): it could not go
    into the manifest, info.json or a log line."""
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def printable(path: Path | str) -> str:
    """The name with its undecodable bytes shown as U+FFFD, safe to print and to store."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def empty_class_message(folder: Path, extensions: set[str], others: list[str]) -> str:
    message = (f"class folder {folder} has no images (files ending in {', '.join(sorted(extensions))}); "
               "add images, or leave the class out with prepare.classes")
    if others:
        message += (f"; it holds {len(others)} other file(s) such as {others[0]}: if those are images, "
                    "add their extension to prepare.source.extensions")
    return message


def check_classes_kept(root: Path, class_names: list[str], wanted: set[str], files: list[str],
                       labels: np.ndarray, kept: np.ndarray, report: LoadReport) -> None:
    """A wanted class whose files were all skipped as bad is as empty as one without files."""
    had = np.bincount(labels, minlength=len(class_names))
    has = np.bincount(labels[kept], minlength=len(class_names))
    reasons = dict(report.skipped)
    for label, class_name in enumerate(class_names):
        if class_name in wanted and had[label] and not has[label]:
            example = files[int(np.argmax(labels == label))]
            raise DataError(f"class folder {root / class_name}: all {had[label]} image file(s) were skipped "
                            f"as bad (e.g. {example}: {reasons[example]}); replace them, or leave the class "
                            "out with prepare.classes")


# --- manifest tables ------------------------------------------------------------------------------

def load_manifest(source: ManifestSource, params: PrepareParams) -> SourceData:
    root = require_dir(source.path, f"the manifest {source.file} and the images it lists")
    table_file = root / source.file
    table = read_table(table_file)
    paths = column_text(table, source.path_column, "prepare.source.path_column", table_file)
    labels = column_text(table, source.label_column, "prepare.source.label_column", table_file)
    check_filled(paths, source.path_column, table_file)
    check_filled(labels, source.label_column, table_file)
    class_names = manifest_class_names(labels, source.classes, table_file)
    origins = relative_paths(root, paths, source.path_column, table_file)
    check_unique(origins, source.path_column, table_file)
    report = LoadReport()
    images, kept = decode_files(root.resolve(), origins, params, report)
    label_index = {name: k for k, name in enumerate(class_names)}
    return SourceData(images=images, labels=np.array([label_index[labels[i]] for i in kept], dtype=np.int64),
                      origins=[origins[i] for i in kept], official_test=np.zeros(len(kept), bool),
                      class_names=class_names, report=report)


def read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"prepare.source.file: manifest {path} does not exist; set prepare.source.file to "
                        f"the table's name inside {PATH_KEY}")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise DataError(f"prepare.source.file: {path} is neither .csv nor .parquet; save the manifest as one")
    try:
        if suffix == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False)
        return pd.read_parquet(path)
    except (ValueError, OSError) as e:
        raise DataError(f"{path}: cannot read the manifest ({e}); check that it is a valid {suffix[1:]} file") from e


def column_text(table: pd.DataFrame, column: str, key: str, path: Path) -> list[str]:
    """A column as stripped strings, '' where missing; integer labels stay "3", not "3.0"."""
    if column not in table.columns:
        raise DataError(f"{path}: no column {column!r} (the columns are {list(table.columns)}); "
                        f"set {key} to the right one")
    text = table[column].convert_dtypes().astype("string").fillna("").str.strip()
    return text.tolist()


def check_filled(values: list[str], column: str, path: Path) -> None:
    empty = np.flatnonzero(np.array([v == "" for v in values], dtype=bool))
    if len(empty):
        raise DataError(f"{path}: {len(empty)} row(s) have an empty {column!r}: rows {first_rows(empty)} "
                        "(counted from 0, header not counted); fill them in or remove those rows")


def manifest_class_names(labels: list[str], classes: list[str] | None, path: Path) -> list[str]:
    present = sorted(set(labels))
    if classes is None:
        return present
    allowed = set(classes)
    unknown = [label for label in present if label not in allowed]
    if unknown:
        raise DataError(f"{path}: label(s) {unknown[:SHOWN_ROWS]} are not in prepare.source.classes "
                        f"(allowed: {classes}); add them there or fix the labels")
    return list(classes)


def relative_paths(root: Path, values: list[str], column: str, path: Path) -> list[str]:
    """Each image path relative to the (resolved) root; one that resolves outside the root is an error,
    so that a manifest cannot read files elsewhere (../, absolute paths, symlinks)."""
    base = root.resolve()
    out = []
    for row, value in enumerate(values):
        if "\x00" in value:
            raise DataError(f"{path}: row {row} (counted from 0): {column} {value!r} holds a NUL character, which "
                            "no file name can; fix that row")
        full = (base / value).resolve()
        if not full.is_relative_to(base):
            raise DataError(f"{path}: row {row} (counted from 0): {column} {value!r} resolves to {full}, "
                            f"outside the root {base}; image paths must stay under {PATH_KEY}")
        out.append(full.relative_to(base).as_posix())
    return out


def check_unique(origins: list[str], column: str, path: Path) -> None:
    """One image listed twice would get one sample id and could land in two splits."""
    seen, repeated = set(), []
    for origin in origins:
        if origin in seen:
            repeated.append(origin)
        seen.add(origin)
    if repeated:
        raise DataError(f"{path}: {len(repeated)} {column} value(s) repeat an earlier row, such as "
                        f"{repeated[:3]}; list each image once")


# --- scikit-learn digits --------------------------------------------------------------------------

def sklearn_digits_path() -> Path:
    """scikit-learn's bundled digits.csv.gz, found without importing scikit-learn."""
    return Path(importlib.util.find_spec("sklearn").origin).parent / "datasets" / "data" / "digits.csv.gz"


def load_sklearn_digits(source: SklearnDigitsSource, params: PrepareParams) -> SourceData:
    table = read_digits(source.path)
    pixels = np.rint(table[:, :64] * (255 / 16)).astype(np.uint8).reshape(-1, 8, 8)
    images, resized, converted = fit_gray_stack(pixels, params.size, params.channels)
    return SourceData(images=images, labels=table[:, 64].astype(np.int64),
                      origins=[f"digits:{row}" for row in range(len(table))],
                      official_test=np.zeros(len(table), bool), class_names=[str(k) for k in range(10)],
                      report=LoadReport(resized=resized, converted=converted))


def read_digits(path: Path) -> np.ndarray:
    """The (N, 65) table: 64 pixels 0..16, then the digit."""
    bundled = sklearn_digits_path()
    if not path.is_file():
        raise DataError(f"{PATH_KEY}: {path} does not exist; scikit-learn's digits file is at {bundled}")
    not_digits = (f"{path} is not scikit-learn's digits.csv.gz (64 pixel columns 0..16 and a label 0..9); "
                  f"set {PATH_KEY} to {bundled}")
    try:
        table = np.loadtxt(path, delimiter=",", ndmin=2)
    except (ValueError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{not_digits} ({e})") from e
    if table.shape[1] != 65 or not np.isin(table, np.arange(17)).all() or table[:, 64].max(initial=0) > 9:
        raise DataError(not_digits)
    return table


LOADERS = {
    "fashion-mnist": load_idx,
    "idx": load_idx,
    "imagefolder": load_imagefolder,
    "manifest": load_manifest,
    "sklearn-digits": load_sklearn_digits,
}
