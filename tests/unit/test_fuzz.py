"""Fuzzing with hypothesis: a params document of any shape raises nothing but the params error; any bytes in
an image file are a skipped file, never a crash; a manifest with any paths (.., absolute, symlinks out of the
root, unicode, empty) is read without escaping its root, or refused with the data error."""

import copy
import os
from pathlib import Path

import numpy as np
import yaml
from hypothesis import HealthCheck, event, example, given, settings, strategies as st

from components.config import validate
from components.config.data import PrepareParams
from components.data.images import BadImage, read_image
from components.data.sources import load_source
from components.errors import DataError, ParamsError
from tests.imagegen import write_class_folders, write_image, write_manifest

REPO = Path(__file__).resolve().parents[2]
DEFAULTS = yaml.safe_load((REPO / "params.yaml").read_text())
FAST = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def leaves(node, prefix=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, (*prefix, key))
    else:
        yield prefix


PATHS = list(leaves(DEFAULTS))
VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                   st.text(max_size=12), st.lists(st.integers(-3, 30), max_size=4),
                   st.dictionaries(st.text(max_size=6), st.integers(), max_size=2))
EDITS = st.lists(st.tuples(st.sampled_from(["set", "delete", "unknown"]), st.sampled_from(PATHS), VALUES),
                 min_size=1, max_size=4)


def edited(edits) -> dict:
    raw = copy.deepcopy(DEFAULTS)
    for action, path, value in edits:
        node = raw
        for key in path[:-1]:
            if not isinstance(node, dict) or key not in node:
                break
            node = node[key]
        else:
            if not isinstance(node, dict):
                continue
            if action == "set":
                node[path[-1]] = value
            elif action == "delete":
                node.pop(path[-1], None)
            else:
                node[f"{path[-1]}_x"] = value
    return raw


@FAST
@given(EDITS)
def test_any_params_document_is_valid_or_a_params_error(edits):
    raw = edited(edits)
    try:
        params = validate(raw)
    except ParamsError as exc:
        assert str(exc)  # names what is wrong
        return
    assert validate(params.model_dump(mode="json")) == params  # what was accepted reads back the same


@FAST
@given(st.binary(max_size=400), st.sampled_from([".png", ".jpg", ".jpeg"]))
def test_any_bytes_in_an_image_file_are_an_image_or_a_bad_image(tmp_path, data, ext):
    path = tmp_path / f"fuzz{ext}"
    path.write_bytes(data)
    try:
        image = read_image(path)
    except BadImage as exc:
        assert str(exc)
        return
    assert image.mode in ("L", "RGB")


@settings(max_examples=15, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.binary(max_size=200), min_size=1, max_size=3))
def test_random_files_in_an_image_folder_are_skipped(tmp_path_factory, blobs):
    root = write_class_folders(tmp_path_factory.mktemp("folder"), {"a": 2, "b": 2})
    for i, blob in enumerate(blobs):
        (root / "a" / f"junk-{i}.png").write_bytes(blob)
    data = load_source(PrepareParams(source={"kind": "imagefolder", "path": str(root)}, size=12))
    assert len(data.labels) == 4 + sum(o.startswith("a/junk") for o in data.origins)
    assert len(data.report.skipped) + len(data.labels) == 4 + len(blobs)


SEGMENTS = st.one_of(st.sampled_from(["..", ".", "", "a", "b", "img.png", "out.png", "link", "link.png", "/",
                                      "~", "é.png", "a/../..", "\u202e.png"]),
                     st.text(min_size=1, max_size=6))
PATH_TEXT = st.one_of(st.sampled_from(["img.png", "a/img.png", "./a//img.png", "a/../img.png"]),  # inside
                      st.lists(SEGMENTS, min_size=1, max_size=4).map("/".join),
                      st.sampled_from(["/etc/passwd", "OUTSIDE", "link.png", "link/out.png", "a/../../out.png"]))


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(PATH_TEXT, st.sampled_from(["x", "y", ""])), min_size=1, max_size=3))
@example([("\x00", "x")])          # found by this test: a NUL in a path crashed prepare (ValueError)
@example([(".", "x"), ("img.png", "y")])
def test_a_manifest_never_reads_outside_its_root(tmp_path_factory, rows):
    """The image outside the root is pure white; nothing prepare reads may be it, whatever the path says."""
    base = tmp_path_factory.mktemp("manifest")
    root = base / "root"
    outside = base / "out.png"
    from PIL import Image
    Image.new("L", (12, 12), 255).save(outside)
    write_image(root / "img.png", 12, 12, "L")
    (root / "a").mkdir()
    write_image(root / "a" / "img.png", 12, 12, "L", seed=1)
    os.symlink(outside, root / "link.png")
    os.symlink(base, root / "link")
    table = [{"path": str(outside) if p == "OUTSIDE" else p, "label": label} for p, label in rows]
    write_manifest(root, table)
    try:
        data = load_source(PrepareParams(source={"kind": "manifest", "path": str(root)}, size=12))
    except DataError as exc:
        assert str(exc)
        return
    event("read")
    assert not any(np.all(image == 255) for image in data.images), data.origins
    assert all(not origin.startswith("/") and ".." not in Path(origin).parts for origin in data.origins)
