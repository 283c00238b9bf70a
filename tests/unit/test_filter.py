"""The filter: its checks and targets as pure functions, the stage on planted samples (mislabeled ones,
copies of train images, unrealistic ones are rejected for the right reason; assemble keeps the rest),
and the top-up rounds on a tiny real chain of models."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components import paths
from components.config import validate
from components.data.manifest import DatasetInfo, read_manifest, read_split
from components.data.shards import gather_images
from components.data.sources import sklearn_digits_path
from components.errors import DataError, ParamsError
from components.generation import filtering
from components.stages import (assemble, denoise, generate, prepare, train_denoiser, train_generator, train_judge,
                               train_scorer, train_upscaler, upscale)
from components.stages import filter as filter_stage
from tests.quality_data import FASHION_MNIST, planted, small_params, write_synthetic

pytestmark = pytest.mark.usefixtures("one_thread")


def frame(**columns) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    base = {"label": [0] * n, "judge_label": [0] * n, "judge_confidence": [0.9] * n, "outlier_score": [0.01] * n,
            "nn_distance": [1.0] * n}
    return pd.DataFrame({**base, **columns})


def test_the_first_failing_check_names_the_rejection():
    scores = frame(judge_label=[0, 1, 0, 0, 1, 0], judge_confidence=[0.9, 0.9, 0.4, 0.9, 0.9, 0.9],
                   outlier_score=[0.01, 0.01, 0.01, 0.5, 0.5, 0.01], nn_distance=[1.0, 1.0, 1.0, 0.0, 0.0, 0.05])
    verdict = filtering.check(scores, label_check=True, min_confidence=0.5, realism=0.1, duplicate=0.1)
    assert verdict.tolist() == ["accepted", "label", "label", "realism", "label", "duplicate"]
    # The default label check: only a judge that names another class rejects; an unsure one (0.4) does not.
    assert filtering.check(scores, True, None, 0.1, 0.1).tolist() == [
        "accepted", "label", "accepted", "realism", "label", "duplicate"]
    # Thresholds at their "off" values pass everything the judge agrees with.
    loose = filtering.check(scores, True, 0.0, float("inf"), 0.0)
    assert loose.tolist() == ["accepted", "label", "accepted", "accepted", "label", "accepted"]
    assert (filtering.check(scores, False, None, float("inf"), 0.0) == "accepted").all()  # every check off
    # The confidence alone, without the class check.
    assert filtering.check(scores, False, 0.5, float("inf"), 0.0).tolist() == [
        "accepted", "accepted", "label", "accepted", "accepted", "accepted"]


def test_targets_keep_the_first_passing_samples_and_name_cap_or_surplus():
    rows = pd.DataFrame({"label": [0] * 5 + [1] * 3, "index": [4, 0, 1, 2, 3, 0, 1, 2],
                         "filter": ["accepted", "accepted", "label", "accepted", "accepted", "accepted", "accepted",
                                    "realism"]})
    kept = filtering.keep_targets(rows, quota={0: 2, 1: 3}, cap=None)
    # class 0: indices 0 and 2 pass first; 3 and 4 are beyond the quota of 2
    assert kept.tolist() == ["surplus", "accepted", "label", "accepted", "surplus", "accepted", "accepted", "realism"]
    capped = filtering.keep_targets(rows, quota={0: 2, 1: 3}, cap=1)
    assert capped.tolist() == ["cap", "accepted", "label", "cap", "cap", "accepted", "cap", "realism"]
    assert filtering.shortfall(rows, {0: 2, 1: 3}, None) == {1: 1}
    assert filtering.shortfall(rows, {0: 2, 1: 3}, 1) == {}


def test_thresholds_and_nearest_distances():
    assert filtering.realism_threshold(np.arange(101, dtype=float), 0.95) == pytest.approx(95)
    assert filtering.realism_threshold(np.arange(5.0), None) == float("inf")
    # Real points on a line 1 apart: the median nearest-other distance is 1.
    real = np.arange(10, dtype=float)[:, None] * np.array([[1.0, 0.0]])
    assert filtering.duplicate_threshold(real, 0.2) == pytest.approx(0.2)
    assert filtering.duplicate_threshold(real, None) == 0.0
    points = np.array([[0.0, 0.0], [3.0, 4.0], [2.5, 0.0]])
    assert filtering.nearest_distance(points, real) == pytest.approx([0.0, 4.0, 0.5])


def test_acceptance_counts_per_class_and_reason():
    rows = pd.DataFrame({"label": [0, 0, 0, 1], "filter": ["accepted", "label", "duplicate", "accepted"]})
    report = filtering.acceptance(rows, ["a", "b", "c"])
    assert (report["candidates"], report["accepted"], report["rate"]) == (4, 2, 0.5)
    assert report["per_class"]["a"]["rejected"] == {"label": 1, "realism": 0, "duplicate": 1, "cap": 0, "surplus": 0}
    assert report["per_class"]["c"] == {"candidates": 0, "accepted": 0, "rate": None,
                                        "rejected": dict.fromkeys(filtering.REASONS, 0)}


def test_bad_filter_params_name_the_key():
    with pytest.raises(ParamsError, match="filter.min_confidence"):
        small_params(filter={"min_confidence": 1.5})
    with pytest.raises(ParamsError, match="filter.typo"):
        small_params(filter={"typo": 1})


# ---- the stage on planted samples (Fashion-MNIST)

@pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="needs the Fashion-MNIST package")
def test_planted_mislabeled_copied_and_unrealistic_samples_are_rejected(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = small_params(prepare={"classes": ["Trouser", "Bag", "Sneaker"]}, train_judge={"steps": 80},
                          filter={"top_up_rounds": 0})
    prepare.run(params)
    train_judge.run(params)
    info = DatasetInfo.read(paths.PREPARED)
    real = read_manifest(paths.PREPARED)
    # train_scorer's output, as the realism check reads it: every real image scores 0.01
    paths.SCORER.mkdir(parents=True)
    real[["id"]].assign(outlier_score=0.01).to_parquet(paths.SCORER / "scores.parquet")

    good, labels = planted("heldout", 6, params)                # real images train never saw: pass
    copies, copy_labels = read_split(paths.PREPARED, "train")   # copies of train images: duplicates
    copies, copy_labels = copies[::11], copy_labels[::11]       # one per class
    wrong = (labels[:6] + 1) % 3                                # held-out Trousers labelled Bag: label
    images = np.concatenate([good, copies, good[:6]])
    all_labels = np.concatenate([labels, copy_labels, wrong])
    folder = write_synthetic(Path("data/upscaled"), images, all_labels, info.class_names)
    manifest = read_manifest(folder)
    scores = np.full(len(manifest), 0.005)
    scores[3] = 0.5                                             # one good Trouser looks unrealistic
    manifest.assign(outlier_score=scores).to_parquet(folder / "manifest.parquet")

    report = filter_stage.run(params, source=folder)
    out = read_manifest(paths.FILTERED)
    verdict = out["filter"].tolist()
    assert verdict[len(good):len(good) + 3] == ["duplicate"] * 3
    assert verdict[-6:] == ["label"] * 6
    assert verdict[3] == "realism"
    accepted = [i for i, v in enumerate(verdict[:len(good)]) if v == "accepted"]
    assert len(accepted) >= 15  # the judge knows held-out Trousers, Bags and Sneakers
    assert report["rejected"]["duplicate"] == 3 and report["rejected"]["label"] >= 6
    assert json.loads(paths.metrics_file("filter").read_text()) == report
    assert (paths.FILTERED / "filter.png").exists()
    # every candidate's pixels are kept for inspection, and its scores are in the manifest
    assert np.array_equal(gather_images(paths.FILTERED, out), images)
    assert {"judge_label", "judge_confidence", "nn_distance", "filter_round"} <= set(out.columns)

    assemble.run(params, synthetic=paths.FILTERED)
    augmented = read_manifest(paths.AUGMENTED)
    synthetic = augmented[augmented["source"] == "synthetic"]
    assert len(synthetic) == report["accepted"] and (synthetic["filter"] == "accepted").all()
    card = (paths.AUGMENTED / "card.md").read_text()
    assert "## Filter" in card and f"{report['accepted']} of {report['candidates']}" in card
    assert "| Trouser |" in card and "No top-up round" in card


# ---- top-up rounds on a tiny chain (scikit-learn digits, generator at 8, x2 to 16)

TINY_FIT = {"steps": 20, "batch_size": 8, "checkpoint_every": 10, "log_every": 5}


def chain_params(**filter_params):
    return validate({
        "device": "cpu",
        "classic": {"hflip": False}, "prepare": {"source": {"kind": "sklearn-digits", "path": str(sklearn_digits_path())}, "size": 16,
                    "per_class": 12, "classes": ["0", "1", "7"], "val_fraction": 0.25},
        "generator": {"kind": "cgan", "size": 8, "width": 8, "embed_dim": 8, "latent_dim": 8},
        "train_generator": {**TINY_FIT, "batch_size": 16},
        "generate": {"n": 5, "batch_size": 4, "shard_size": 4},
        "train_scorer": {**TINY_FIT, "width": 8, "latent_dim": 4},
        "train_denoiser": {**TINY_FIT, "width": 8, "variants": 2},
        "denoise": {"strength": 1.0, "batch_size": 4},
        "train_upscaler": {**TINY_FIT, "width": 8, "blocks": 1},
        "upscale": {"factor": 2, "batch_size": 4},
        "train_judge": {**TINY_FIT, "model": {"width": 8, "stages": 2}},
        "filter": {"batch_size": 4, **filter_params},
    })


def test_a_class_under_quota_is_topped_up_with_what_the_stages_would_make(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # A confidence no tiny judge reaches for every sample: classes fall short and get topped up.
    params = chain_params(min_confidence=0.6, realism_quantile=None, duplicate_ratio=None, top_up_rounds=2)
    for stage in (prepare, train_generator, generate, train_scorer, train_denoiser, denoise, train_upscaler,
                  upscale, train_judge):
        stage.run(params)
    report = filter_stage.run(params)
    out = read_manifest(paths.FILTERED)
    assert report["top_up"], report
    first = report["top_up"][0]
    assert first["round"] == 1 and set(first["generated"]) == set(first["short"])
    extra = out[out["filter_round"] > 0]
    assert len(extra) == sum(sum(r["generated"].values()) for r in report["top_up"])
    assert out["id"].is_unique
    accepted = out[out["filter"] == "accepted"].groupby("class_name").size()
    assert (accepted <= 5).all()  # never beyond the quota
    if not report["top_up"][-1]["still_short"]:
        assert (accepted == 5).all()

    # The same indices generated by the stages themselves give the same samples.
    label = int(extra["label"].iloc[0])
    last = int(extra[extra["label"] == label]["origin"].str.rsplit(":", n=1).str[1].astype(int).max())
    bigger = chain_params().model_copy(update={"generate": params.generate.model_copy(update={"n": last + 1})})
    for stage in (generate, denoise, upscale):
        stage.run(bigger)
    redone = read_manifest(paths.UPSCALED).set_index("id")
    mine = extra[extra["label"] == label]
    assert set(mine["id"]) <= set(redone.index)
    theirs = redone.loc[mine["id"]].reset_index()
    assert np.array_equal(gather_images(paths.FILTERED, mine), gather_images(paths.UPSCALED, theirs))
    assert np.allclose(mine["outlier_score"].to_numpy(), theirs["outlier_score"].to_numpy(), rtol=1e-5)


def test_a_missing_scorer_output_names_the_stage_and_the_way_out(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="scores.parquet: missing.*run train_scorer.*realism_quantile: null"):
        filter_stage.reference_scores()
