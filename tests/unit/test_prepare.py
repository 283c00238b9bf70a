"""The prepare stage: label budget, class subset, imbalance, splits, determinism, and its outputs."""

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components import paths
from components.config import validate
from components.data.atomic import atomic_dir
from components.data.manifest import DatasetInfo, read_manifest, read_split
from components.data.sources import LoadReport, SourceData, sklearn_digits_path
from components.errors import DataError, ParamsError
from components.stages import prepare

REPO = Path(__file__).resolve().parents[2]


def params(**prepare_keys):
    raw = {"seed": 0, "classic": {"hflip": False}, "prepare": {"source": {"kind": "sklearn-digits", "path": str(sklearn_digits_path())},
                                  "size": 8, **prepare_keys},
           "generator": {"size": 8}, "upscale": {"factor": 1}}
    return validate(raw)


def source(counts: list[int], official_test: int = 0) -> SourceData:
    labels = np.repeat(np.arange(len(counts)), counts)
    test = np.zeros(len(labels), bool)
    if official_test:
        labels = np.concatenate([labels, np.repeat(np.arange(len(counts)), official_test)])
        test = np.concatenate([test, np.ones(official_test * len(counts), bool)])
    n = len(labels)
    return SourceData(images=np.zeros((n, 8, 8, 1), np.uint8), labels=labels,
                      origins=[f"row:{i}" for i in range(n)], official_test=test,
                      class_names=[f"c{k}" for k in range(len(counts))],
                      report=LoadReport(skipped=[], resized=0, converted=0))


def counts(data: SourceData, split: np.ndarray, name: str) -> list[int]:
    return np.bincount(data.labels[split == name], minlength=len(data.class_names)).tolist()


def test_budget_per_class_with_val_and_held_out_test():
    data = source([100, 50, 30])
    split = prepare.assign_splits(data, params(per_class=20, val_fraction=0.25, test_fraction=0.2).prepare, 0)
    assert counts(data, split, "test") == [20, 10, 6]
    assert counts(data, split, "train") == [15, 15, 15]
    assert counts(data, split, "val") == [5, 5, 5]


def test_official_test_split_is_used_and_not_budgeted():
    data = source([40, 40], official_test=7)
    split = prepare.assign_splits(data, params(per_class=10, val_fraction=0.0).prepare, 0)
    assert counts(data, split, "test") == [7, 7]
    assert (split[data.official_test] == "test").all()
    assert counts(data, split, "train") == [10, 10]


def test_fraction_budget_and_imbalance():
    data = source([100, 100, 100])
    p = params(fraction=0.5, val_fraction=0.0, test_fraction=0.2,
               imbalance={"classes": ["c1"], "factor": 0.1}).prepare
    split = prepare.assign_splits(data, p, 0)
    assert counts(data, split, "train") == [40, 4, 40]


def test_budget_larger_than_a_class_takes_all_of_it(caplog):
    data = source([10, 100])
    split = prepare.assign_splits(data, params(per_class=50, val_fraction=0.0).prepare, 0)
    assert counts(data, split, "train") == [8, 50]
    assert "fewer than its budget" in caplog.text


def test_a_smaller_budget_is_a_subset_of_a_larger_one_and_seeds_matter():
    data = source([200, 200])
    small = prepare.assign_splits(data, params(per_class=10, val_fraction=0.0).prepare, 0)
    large = prepare.assign_splits(data, params(per_class=50, val_fraction=0.0).prepare, 0)
    assert set(np.flatnonzero(small == "train")) <= set(np.flatnonzero(large == "train"))
    other_seed = prepare.assign_splits(data, params(per_class=10, val_fraction=0.0).prepare, 1)
    assert set(np.flatnonzero(other_seed == "train")) != set(np.flatnonzero(small == "train"))


def test_class_subset_renumbers_in_the_given_order():
    data = prepare.keep_classes(source([5, 6, 7]), ["c2", "c0"])
    assert data.class_names == ["c2", "c0"]
    assert np.bincount(data.labels).tolist() == [7, 5]
    with pytest.raises(ParamsError, match=r"prepare.classes: unknown class\(es\) \['zebra'\]"):
        prepare.keep_classes(source([5]), ["zebra"])


def test_unknown_rare_class_and_empty_class_are_errors():
    with pytest.raises(ParamsError, match="prepare.imbalance.classes"):
        prepare.assign_splits(source([5, 5]), params(imbalance={"classes": ["nope"]}).prepare, 0)
    data = source([5, 5], official_test=2)
    data.labels[data.labels == 1] = 0
    data.labels[data.official_test] = 1
    with pytest.raises(DataError, match=r"\['c1'\] have no training images"):
        prepare.check_no_empty_class(data)


def test_a_single_class_source_stops_at_prepare(tmp_path, monkeypatch):
    """One class (an ImageFolder tree with one folder): every arm would score 100% and the gate pass a tie."""
    from tests.imagegen import write_class_folders
    write_class_folders(tmp_path / "images", {"cats": 6})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=r"1 class\(es\) \['cats'\]: a classifier .* at least 2 classes apart"):
        prepare.run(validate({"prepare": {"source": {"kind": "imagefolder", "path": str(tmp_path / "images")},
                                          "size": 12}, "generator": {"size": 12}}))
    assert not paths.PREPARED.exists()


def test_run_writes_prepared_set_deterministically(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = params(per_class=30, val_fraction=0.2, test_fraction=0.2, shard_size=64)
    summary = prepare.run(p)
    assert summary["images"] == {"train": 240, "val": 60, "test": 359}
    manifest = read_manifest(paths.PREPARED)
    assert manifest["id"].is_unique and (manifest["source"] == "real").all()
    info = DatasetInfo.read(paths.PREPARED)
    assert info.class_names == [str(d) for d in range(10)] and (info.size, info.channels) == (8, 1)
    images, labels = read_split(paths.PREPARED, "train")
    assert images.shape == (240, 8, 8, 1) and np.bincount(labels).tolist() == [24] * 10
    assert (paths.METRICS / "prepare.json").exists()

    first = {p.name: p.read_bytes() for p in (paths.PREPARED / "images").iterdir()}
    first_manifest = pd.read_parquet(paths.PREPARED / "manifest.parquet")
    prepare.run(p)
    again = {p.name: p.read_bytes() for p in (paths.PREPARED / "images").iterdir()}
    assert first == again
    pd.testing.assert_frame_equal(first_manifest, pd.read_parquet(paths.PREPARED / "manifest.parquet"))


def test_failed_run_keeps_the_previous_output(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    prepare.run(params(per_class=5))
    before = read_manifest(paths.PREPARED)
    with pytest.raises(ParamsError):
        prepare.run(params(per_class=5, classes=["0", "eleven"]))
    pd.testing.assert_frame_equal(before, read_manifest(paths.PREPARED))
    assert sorted(p.name for p in paths.DATA.iterdir()) == ["prepared"]


# A prepare run in its own process that kill -9s itself halfway through writing its second shard (a real
# SIGKILL: no Python clean-up runs), argv[1] the working folder.
KILLED_WHILE_WRITING = """
import os, signal, sys
import numpy as np
from tests.unit.test_prepare import params
from components.stages import prepare
os.chdir(sys.argv[1])
real_save, calls = np.save, []
def save(fh, array, *args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
        fh.write(b"\\x93NUMPY half a shard")
        fh.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(fh, array, *args, **kwargs)
np.save = save
prepare.run(params(per_class=10, shard_size=16))
"""


def prepared_bytes(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted((root / paths.PREPARED).rglob("*"))
            if p.is_file()}


def test_prepare_killed_while_writing_a_shard_loses_nothing_and_reruns_to_the_same_bytes(tmp_path, monkeypatch):
    """kill -9 in the middle of a shard: the previous output is intact (or absent on a first run), and the
    next run removes the half-written folder and writes what an uninterrupted run writes."""
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    for root in straight, killed:
        root.mkdir()
    monkeypatch.chdir(straight)
    prepare.run(params(per_class=10, shard_size=16))
    expected = prepared_bytes(straight)
    assert sum(name.endswith(".npy") for name in expected) > 2

    def run_killed():
        child = subprocess.run([sys.executable, "-c", KILLED_WHILE_WRITING, str(killed)], cwd=REPO,
                               capture_output=True, text=True)
        assert child.returncode == -signal.SIGKILL, child.stderr
        left = [p.name for p in (killed / paths.DATA).iterdir() if p.name.startswith(".prepared.tmp-")]
        assert len(left) == 1 and list((killed / paths.DATA / left[0]).rglob("*.npy*"))  # half-written, aside

    run_killed()  # a first run: nothing to keep
    assert not (killed / paths.PREPARED).exists()
    monkeypatch.chdir(killed)
    prepare.run(params(per_class=10, shard_size=16))
    assert prepared_bytes(killed) == expected
    assert sorted(p.name for p in (killed / paths.DATA).iterdir()) == ["prepared"]

    run_killed()  # a second run: the first one's output stays as it was
    assert prepared_bytes(killed) == expected


def test_a_previous_output_moved_aside_by_a_killed_run_is_put_back(tmp_path):
    """kill -9 between atomic_dir's two renames leaves the previous output at .<name>.old-<pid>: the next
    write of that output puts it back first, so a failure then still leaves the previous output."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    aside = tmp_path / f".out.old-{dead.pid}"
    aside.mkdir()
    (aside / "a.txt").write_text("previous")
    (tmp_path / f".out.tmp-{dead.pid}-x1y2").mkdir()
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "out"):
            raise RuntimeError("this run fails too")
    assert (tmp_path / "out/a.txt").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
