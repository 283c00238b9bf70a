"""The prepare stage's sources: Fashion-MNIST, IDX, image folders, manifests, sklearn digits, and bad input."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from components.config.data import FASHION_MNIST_CLASSES, PrepareParams
from components.data.sources import load_source, read_idx, sklearn_digits_path
from components.errors import DataError
from tests.imagegen import (
    gray_stack, idx_bytes, truncate, write_class_folders, write_idx, write_idx_split, write_image,
    write_manifest,
)

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def params(source: dict, **keys) -> PrepareParams:
    return PrepareParams(source=source, **keys)


def folder(root: Path, **keys) -> PrepareParams:
    return params({"kind": "imagefolder", "path": str(root)}, **keys)


def manifest(root: Path, name: str = "manifest.csv", classes: list[str] | None = None, **keys) -> PrepareParams:
    return params({"kind": "manifest", "path": str(root), "file": name, "classes": classes}, **keys)


# --- Fashion-MNIST and IDX ------------------------------------------------------------------------

def test_fashion_mnist_full_load():
    data = load_source(params({"kind": "fashion-mnist", "path": str(FASHION_MNIST)}))
    assert data.images.shape == (70_000, 28, 28, 1) and data.images.dtype == np.uint8
    assert data.labels.dtype == np.int64 and data.class_names == list(FASHION_MNIST_CLASSES)
    assert data.official_test.sum() == 10_000 and not data.official_test[:60_000].any()
    assert np.bincount(data.labels[data.official_test]).tolist() == [1000] * 10
    assert data.origins[0] == "train-images-idx3-ubyte:0"
    assert data.origins[-1] == "t10k-images-idx3-ubyte:9999"
    assert (data.report.resized, data.report.converted, data.report.skipped) == (0, 0, [])


@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder_with_test_split(tmp_path, gz):
    train, test = gray_stack(5, size=6, seed=1), gray_stack(3, size=6, seed=2)
    write_idx_split(tmp_path, "train", train, np.array([0, 1, 2, 1, 0], np.uint8), gz=gz)
    write_idx_split(tmp_path, "t10k", test, np.array([2, 2, 0], np.uint8), gz=gz)
    data = load_source(params({"kind": "idx", "path": str(tmp_path)}, size=6))
    assert data.class_names == ["0", "1", "2"]
    assert data.labels.tolist() == [0, 1, 2, 1, 0, 2, 2, 0]
    assert data.official_test.tolist() == [False] * 5 + [True] * 3
    assert (data.images[..., 0] == np.concatenate([train, test])).all()
    assert data.origins[5] == "t10k-images-idx3-ubyte:0"


def test_idx_without_test_split_with_class_names_resized_to_rgb(tmp_path):
    write_idx_split(tmp_path, "train", gray_stack(4, size=10), np.array([0, 1, 1, 0], np.uint8))
    data = load_source(params({"kind": "idx", "path": str(tmp_path), "class_names": ["cat", "dog"]},
                              size=8, channels=3))
    assert data.class_names == ["cat", "dog"]
    assert data.images.shape == (4, 8, 8, 3) and not data.official_test.any()
    assert (data.report.resized, data.report.converted) == (4, 4)


def test_read_idx_parses_header_dtype_and_dims(tmp_path):
    array = np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 5
    assert (read_idx(write_idx(tmp_path / "x-idx3", array)) == array).all()


def test_idx_wrong_magic_names_the_file(tmp_path):
    write_idx_split(tmp_path, "train", gray_stack(2), np.array([0, 1], np.uint8))
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x12\x34\x08\x03" + bytes(100))
    with pytest.raises(DataError, match="train-images-idx3-ubyte: not an IDX file"):
        load_source(params({"kind": "idx", "path": str(tmp_path)}))


def test_idx_truncated_file_names_the_file(tmp_path):
    write_idx_split(tmp_path, "train", gray_stack(4), np.array([0, 1, 0, 1], np.uint8))
    truncate(tmp_path / "train-images-idx3-ubyte", keep=0.7)
    with pytest.raises(DataError, match="train-images-idx3-ubyte: truncated"):
        load_source(params({"kind": "idx", "path": str(tmp_path)}))


def test_idx_corrupt_gzip_names_the_file(tmp_path):
    write_idx_split(tmp_path, "train", gray_stack(4), np.array([0, 1, 0, 1], np.uint8), gz=True)
    truncate(tmp_path / "train-labels-idx1-ubyte.gz", keep=0.6)
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz: not a valid gzip file"):
        load_source(params({"kind": "idx", "path": str(tmp_path)}))


def test_idx_image_and_label_count_mismatch(tmp_path):
    write_idx_split(tmp_path, "train", gray_stack(4), np.array([0, 1, 0], np.uint8))
    with pytest.raises(DataError, match="holds 4 images but .*train-labels-idx1-ubyte holds 3 labels"):
        load_source(params({"kind": "idx", "path": str(tmp_path)}))


def test_idx_missing_file_and_half_test_pair(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", gray_stack(2))
    with pytest.raises(DataError, match="no train-labels-idx1-ubyte"):
        load_source(params({"kind": "idx", "path": str(tmp_path)}))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([0, 1], np.uint8))
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", gray_stack(2))
    with pytest.raises(DataError, match="no t10k-labels-idx1-ubyte"):
        load_source(params({"kind": "idx", "path": str(tmp_path)}))


def test_fashion_mnist_needs_its_test_files(tmp_path):
    write_idx_split(tmp_path, "train", gray_stack(2), np.array([0, 1], np.uint8))
    with pytest.raises(DataError, match="no t10k-images-idx3-ubyte"):
        load_source(params({"kind": "fashion-mnist", "path": str(tmp_path)}))


def test_idx_labels_beyond_class_names(tmp_path):
    write_idx_split(tmp_path, "train", gray_stack(3), np.array([0, 1, 2], np.uint8))
    with pytest.raises(DataError, match=r"label\(s\) \[2\] outside 0..1; give one name per label in "
                                        "prepare.source.class_names"):
        load_source(params({"kind": "idx", "path": str(tmp_path), "class_names": ["a", "b"]}))


def test_idx_non_byte_images_are_refused(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((2, 4, 4), np.float32))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([0, 1], np.uint8))
    with pytest.raises(DataError, match="unsigned-byte images"):
        load_source(params({"kind": "idx", "path": str(tmp_path)}))


def test_idx_bytes_helper_round_trips_big_endian():
    data = idx_bytes(np.array([1, 256], np.int16))
    assert data[:4] == b"\0\0\x0b\x01" and data[-4:] == b"\x00\x01\x01\x00"


@pytest.mark.parametrize("kind", ["fashion-mnist", "idx", "imagefolder", "manifest", "sklearn-digits"])
def test_missing_path_names_it_and_the_params_key(tmp_path, kind):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=f"prepare.source.path: {missing} does not exist"):
        load_source(params({"kind": kind, "path": str(missing)}))


# --- image folders --------------------------------------------------------------------------------

def test_imagefolder_mixed_formats_sizes_and_channels(tmp_path):
    write_image(tmp_path / "cat" / "a.png", 8, 8, "L")
    write_image(tmp_path / "cat" / "b.JPG", 16, 16, "RGB")
    write_image(tmp_path / "ant" / "sub" / "c.jpeg", 20, 10, "L")
    write_image(tmp_path / "ant" / "d.png", 8, 8, "RGB")
    data = load_source(folder(tmp_path, size=8, channels=1))
    assert data.class_names == ["ant", "cat"]
    assert data.origins == ["ant/d.png", "ant/sub/c.jpeg", "cat/a.png", "cat/b.JPG"]
    assert data.labels.tolist() == [0, 0, 1, 1]
    assert data.images.shape == (4, 8, 8, 1) and data.images.dtype == np.uint8
    assert (data.report.resized, data.report.converted) == (2, 2)
    assert not data.official_test.any() and data.report.skipped == []


def test_imagefolder_to_rgb_keeps_pixels_of_gray_images(tmp_path):
    path = write_image(tmp_path / "a" / "x.png", 6, 6, "L")
    write_image(tmp_path / "b" / "y.png", 6, 6, "RGB")
    data = load_source(folder(tmp_path, size=6, channels=3))
    assert data.images.shape == (2, 6, 6, 3) and data.report.converted == 1
    assert (data.images[0] == np.asarray(Image.open(path))[..., None]).all()


def test_imagefolder_ignores_hidden_files_and_folders(tmp_path):
    write_class_folders(tmp_path, {"a": 2, "b": 1})
    write_image(tmp_path / ".cache" / "x.png")
    write_image(tmp_path / "a" / ".thumb.png")
    write_image(tmp_path / "a" / ".git" / "y.png")
    data = load_source(folder(tmp_path))
    assert data.class_names == ["a", "b"] and len(data.labels) == 3 and data.report.skipped == []


def test_imagefolder_extensions_from_params_any_case(tmp_path):
    write_class_folders(tmp_path, {"a": 1, "b": 1}, ext=".BMP")
    write_image(tmp_path / "a" / "z.png")
    data = load_source(params({"kind": "imagefolder", "path": str(tmp_path), "extensions": ["bmp"]}))
    assert data.origins == ["a/a-0.BMP", "b/b-0.BMP"]
    assert data.report.skipped == [("a/z.png", "not an image extension")]


def test_other_extensions_are_skipped_and_reported(tmp_path, caplog):
    write_class_folders(tmp_path, {"a": 2, "b": 2})
    (tmp_path / "a" / "labels.txt").write_text("x")
    (tmp_path / "README.md").write_text("x")
    with caplog.at_level(logging.WARNING, logger="genaug"):
        data = load_source(folder(tmp_path))
    assert len(data.labels) == 4
    assert data.report.skipped == [("README.md", "not in a class folder"), ("a/labels.txt", "not an image extension")]
    assert "labels.txt" in caplog.text


@pytest.mark.parametrize("bad", ["truncated.png", "truncated.jpg", "text.png"])
def test_bad_image_files_are_skipped_with_a_warning(tmp_path, caplog, bad):
    write_class_folders(tmp_path, {"a": 2, "b": 2})
    if bad == "text.png":
        (tmp_path / "b" / bad).write_text("this is not a PNG")
    else:
        truncate(write_image(tmp_path / "b" / bad, 32, 32, "RGB"), keep=0.6)
    with caplog.at_level(logging.WARNING, logger="genaug"):
        data = load_source(folder(tmp_path))
    assert len(data.labels) == 4 and f"b/{bad}" not in data.origins
    [(file, reason)] = data.report.skipped
    assert file == f"b/{bad}" and ("truncated" in reason or "not an image" in reason)
    assert any(r.name == "genaug" and bad in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("bad", ["truncated.png", "notes.txt"])
def test_bad_files_fail_when_asked(tmp_path, bad):
    write_class_folders(tmp_path, {"a": 2, "b": 2})
    if bad == "notes.txt":
        (tmp_path / "a" / bad).write_text("x")
    else:
        truncate(write_image(tmp_path / "a" / bad, 32, 32), keep=0.5)
    with pytest.raises(DataError, match=f"{tmp_path / 'a' / bad}: .*prepare.on_bad_file"):
        load_source(folder(tmp_path, on_bad_file="fail"))


def test_empty_class_folder_is_an_error_naming_it(tmp_path):
    write_class_folders(tmp_path, {"a": 2})
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=f"class folder {tmp_path / 'empty'} has no images.*prepare.classes"):
        load_source(folder(tmp_path))


def test_empty_class_folder_left_out_with_prepare_classes(tmp_path):
    write_class_folders(tmp_path, {"a": 2, "b": 1})
    (tmp_path / "empty").mkdir()
    data = load_source(folder(tmp_path, classes=["a", "b"]))
    assert data.class_names == ["a", "b", "empty"] and len(data.labels) == 3


def test_class_folder_of_only_bad_files_is_an_error(tmp_path):
    write_class_folders(tmp_path, {"a": 2})
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.png").write_bytes(b"junk")
    with pytest.raises(DataError, match=f"class folder {tmp_path / 'b'}: all 1 image file.*skipped"):
        load_source(folder(tmp_path))


def test_folder_without_class_folders_is_an_error(tmp_path):
    write_image(tmp_path / "loose.png")
    with pytest.raises(DataError, match="has no class folders"):
        load_source(folder(tmp_path))


def test_zero_usable_images_is_an_error(tmp_path):
    write_manifest(tmp_path, [{"path": "a.png", "label": "x"}])
    with pytest.raises(DataError, match="no usable images"):
        load_source(manifest(tmp_path))


# --- manifests ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["manifest.csv", "labels.parquet"])
def test_manifest_csv_and_parquet(tmp_path, name):
    write_image(tmp_path / "img" / "1.png", 8, 8, "L")
    write_image(tmp_path / "img" / "2.jpg", 12, 9, "RGB")
    write_image(tmp_path / "3.png", 8, 8, "L")
    write_manifest(tmp_path, [{"path": "img/1.png", "label": "shoe"}, {"path": "./img/2.jpg", "label": "bag"},
                              {"path": "3.png", "label": "shoe"}], name)
    data = load_source(manifest(tmp_path, name, size=8))
    assert data.class_names == ["bag", "shoe"]
    assert data.labels.tolist() == [1, 0, 1]
    assert data.origins == ["img/1.png", "img/2.jpg", "3.png"]
    assert data.images.shape == (3, 8, 8, 1) and (data.report.resized, data.report.converted) == (1, 1)


def test_manifest_classes_and_column_names_from_params(tmp_path):
    for i in range(3):
        write_image(tmp_path / f"{i}.png")
    write_manifest(tmp_path, [{"file": f"{i}.png", "digit": i % 2} for i in range(3)], "m.parquet")
    data = load_source(params({"kind": "manifest", "path": str(tmp_path), "file": "m.parquet",
                               "path_column": "file", "label_column": "digit", "classes": ["1", "0"]},
                              size=12))
    assert data.class_names == ["1", "0"] and data.labels.tolist() == [1, 0, 1]


def test_manifest_unknown_labels_list_them_and_the_allowed(tmp_path):
    write_manifest(tmp_path, [{"path": "a.png", "label": "cat"}, {"path": "b.png", "label": "emu"}])
    with pytest.raises(DataError, match=r"label\(s\) \['emu'\] are not in prepare.source.classes "
                                        r"\(allowed: \['cat', 'dog'\]\)"):
        load_source(manifest(tmp_path, classes=["cat", "dog"]))


def test_manifest_empty_labels_name_the_rows(tmp_path):
    rows = [{"path": f"{i}.png", "label": "" if i in (1, 3) else "x"} for i in range(5)]
    write_manifest(tmp_path, rows)
    with pytest.raises(DataError, match=r"2 row\(s\) have an empty 'label': rows 1, 3"):
        load_source(manifest(tmp_path))
    write_manifest(tmp_path, [{"path": "0.png", "label": "x"}, {"path": "1.png", "label": None}], "m.parquet")
    with pytest.raises(DataError, match="rows 1 "):
        load_source(manifest(tmp_path, "m.parquet"))


def test_manifest_missing_column_names_it_and_the_present_ones(tmp_path):
    write_manifest(tmp_path, [{"file": "a.png", "label": "x"}])
    with pytest.raises(DataError, match=r"no column 'path' \(the columns are \['file', 'label'\]\).*path_column"):
        load_source(manifest(tmp_path))


@pytest.mark.parametrize("value", ["../outside.png", "img/../../outside.png", "ABSOLUTE", "link/x.png"])
def test_manifest_paths_must_stay_under_the_root(tmp_path, value):
    root, outside = tmp_path / "root", tmp_path / "elsewhere"
    write_image(outside / "x.png")
    write_image(tmp_path / "outside.png")
    write_image(root / "ok.png")
    (root / "link").symlink_to(outside)
    value = str(tmp_path / "outside.png") if value == "ABSOLUTE" else value
    write_manifest(root, [{"path": "ok.png", "label": "a"}, {"path": value, "label": "a"}])
    with pytest.raises(DataError, match=f"row 1 .*{value!r} resolves to .*outside the root"):
        load_source(manifest(root))


def test_manifest_missing_image_is_skipped_or_fatal(tmp_path):
    write_image(tmp_path / "a.png")
    write_manifest(tmp_path, [{"path": "a.png", "label": "x"}, {"path": "gone.png", "label": "x"}])
    data = load_source(manifest(tmp_path, size=12))
    assert data.origins == ["a.png"] and data.report.skipped == [("gone.png", "file not found")]
    with pytest.raises(DataError, match="gone.png: file not found"):
        load_source(manifest(tmp_path, on_bad_file="fail"))


def test_manifest_repeated_path_is_an_error(tmp_path):
    write_image(tmp_path / "a.png")
    write_manifest(tmp_path, [{"path": "a.png", "label": "x"}, {"path": "./a.png", "label": "y"}])
    with pytest.raises(DataError, match="repeat an earlier row"):
        load_source(manifest(tmp_path))


def test_manifest_file_missing_or_of_unknown_type(tmp_path):
    with pytest.raises(DataError, match="prepare.source.file: manifest .*manifest.csv does not exist"):
        load_source(manifest(tmp_path))
    (tmp_path / "m.xlsx").write_text("x")
    with pytest.raises(DataError, match="neither .csv nor .parquet"):
        load_source(manifest(tmp_path, "m.xlsx"))
    (tmp_path / "m.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="cannot read the manifest"):
        load_source(manifest(tmp_path, "m.parquet"))


# --- scikit-learn digits --------------------------------------------------------------------------

def test_sklearn_digits_real_file():
    data = load_source(params({"kind": "sklearn-digits", "path": str(sklearn_digits_path())}, size=8))
    assert data.images.shape == (1797, 8, 8, 1) and data.images.max() == 255
    assert data.class_names == [str(k) for k in range(10)]
    assert np.bincount(data.labels).min() > 150
    assert data.origins[3] == "digits:3" and data.report.resized == 0


def test_sklearn_digits_resized(tmp_path):
    data = load_source(params({"kind": "sklearn-digits", "path": str(sklearn_digits_path())}))
    assert data.images.shape == (1797, 28, 28, 1) and data.report.resized == 1797


def test_sklearn_digits_missing_path_tells_the_bundled_one(tmp_path):
    with pytest.raises(DataError, match=f"scikit-learn's digits file is at {sklearn_digits_path()}"):
        load_source(params({"kind": "sklearn-digits", "path": str(tmp_path / "digits.csv.gz")}))


def test_sklearn_digits_wrong_file(tmp_path):
    wrong = tmp_path / "digits.csv"
    wrong.write_text("1,2,3\n4,5,6\n")
    with pytest.raises(DataError, match="is not scikit-learn's digits.csv.gz"):
        load_source(params({"kind": "sklearn-digits", "path": str(wrong)}))


def test_a_file_name_that_is_not_utf8_is_skipped_and_the_set_still_written(tmp_path, monkeypatch):
    """Linux allows any bytes in a name; the manifest (Parquet), info.json and the log need UTF-8."""
    import os
    import shutil

    from components.config import validate
    from components.data.manifest import read_manifest
    from components.stages import prepare
    images = tmp_path / "images"
    write_class_folders(images, {"a": 3, "b": 3})
    shutil.copyfile(images / "a" / "a-0.png", os.path.join(os.fsencode(images / "a"), b"caf\xe9.png"))
    monkeypatch.chdir(tmp_path)
    p = validate({"prepare": {"source": {"kind": "imagefolder", "path": str(images)}, "size": 12, "test_fraction": 0.3},
                  "generator": {"size": 12}})
    prepare.run(p)
    assert len(read_manifest("data/prepared")) == 6
    assert ["a/caf\ufffd.png", "a file name that is not valid UTF-8 (rename it)"] in \
        json.loads(Path("data/prepared/info.json").read_text())["skipped"]

    os.mkdir(os.path.join(os.fsencode(images), b"\xff"))
    with pytest.raises(DataError, match="a class folder whose name is not valid UTF-8; rename it"):
        load_source(p.prepare)
