"""The denoiser and the denoise stage: a short training improves PSNR on held-out images, strength 0 is
the identity (bytes unchanged, no denoiser trained) and 1 the denoiser's output, the classic filters, and
the stages (train_denoiser's metrics, denoise's output folder, manifest columns and grid)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from components import paths
from components.config import validate
from components.config.autoencoder import TrainDenoiserParams
from components.data.manifest import DatasetInfo, read_manifest, write_manifest
from components.data.shards import ShardWriter, gather_images
from components.data.sources import read_idx, sklearn_digits_path
from components.data.transforms import noise
from components.errors import DataError, ParamsError
from components.models import autoencoder
from components.pixels import psnr_uint8, resize_images
from components.stages import denoise, prepare, train_denoiser, train_scorer
from components.training.autoencoder import train_denoiser as fit_denoiser

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")
FASHION = Path("/usr/share/datasets/fashion-mnist")



@pytest.fixture(scope="module")
def fashion() -> tuple[np.ndarray, np.ndarray]:
    """500 Fashion-MNIST train images at 14x14 (the cascade's generator size, quick to train): 400 to train, 100
    held out."""
    if not FASHION.is_dir():
        pytest.skip(f"{FASHION} missing (apt-get install dataset-fashion-mnist)")
    images = resize_images(read_idx(FASHION / "train-images-idx3-ubyte.gz")[:500, :, :, None], 14)
    return images[:400], images[400:]


def test_a_short_training_improves_psnr_on_held_out_images(fashion, tmp_path):
    train, held_out = fashion
    tp = TrainDenoiserParams(steps=300, batch_size=32, lr=3e-3, width=8, variants=4, log_every=50,
                             checkpoint_every=150)
    model, summary = fit_denoiser(train, held_out[:5], tp, seed=0, device=CPU, run_dir=tmp_path)
    assert (tmp_path / "denoiser.pt").exists() and (tmp_path / "denoised.png").exists()
    noisy = noise(held_out, tp.noise, seed=123)
    measured = train_denoiser.measure(model, held_out, noisy, CPU)
    assert measured["denoiser"]["psnr"] > measured["noisy"]["psnr"] + 1.0, measured
    assert measured["denoiser"]["ssim"] > measured["noisy"]["ssim"], measured


def test_strength_0_is_the_identity_and_1_the_output(fashion):
    _, images = fashion
    model = autoencoder.build(1, 14, seed=0, width=8, levels=2)
    with torch.no_grad():
        model.head.weight.add_(0.05)  # an untrained residual net would change the images only a little
    assert autoencoder.denoise(model, images, 0.0, 32, CPU) is images
    full = autoencoder.denoise(model, images, 1.0, 32, CPU)
    assert np.array_equal(full, autoencoder.outputs(model, images, 32, CPU))
    half = autoencoder.denoise(model, images, 0.5, 32, CPU).astype(int)
    change_full, change_half = np.abs(full.astype(int) - images).mean(), np.abs(half - images).mean()
    assert change_full > 1 and abs(change_half - change_full / 2) < 0.1 * change_full


def test_classic_filters_and_the_measures():
    rng = np.random.default_rng(0)
    clean = np.zeros((6, 16, 16, 1), np.uint8)
    clean[:, 4:12, 4:12] = 200
    noisy = np.where(rng.random(clean.shape) < 0.05, 255, clean).astype(np.uint8)  # salt
    assert psnr_uint8(train_denoiser.median(noisy), clean, pooled=True) > psnr_uint8(noisy, clean, pooled=True)
    assert train_denoiser.nl_means(noisy, 10).shape == noisy.shape
    assert train_denoiser.nl_means(np.repeat(noisy, 3, axis=3), 10).shape == (6, 16, 16, 3)
    assert psnr_uint8(clean, clean, pooled=True) > 100  # the MSE floor keeps it finite
    assert train_denoiser.mean_ssim(clean[:, :8, :8], clean[:, :8, :8]) is None  # below SSIM's 11x11 window


@pytest.fixture
def stages(tmp_path, monkeypatch):
    """A prepared digits set, a trained (a few steps) scorer and denoiser, and a folder of 'generated' samples."""
    monkeypatch.chdir(tmp_path)
    tiny = {"steps": 10, "batch_size": 16, "log_every": 5, "checkpoint_every": 5, "width": 8}
    params = validate({
        "device": "cpu",
        "classic": {"hflip": False}, "prepare": {"source": {"kind": "sklearn-digits", "path": str(sklearn_digits_path())}, "size": 8,
                    "per_class": 20, "classes": ["0", "1", "7"]},
        "generator": {"size": 8},
        "upscale": {"factor": 1},
        "train_scorer": {**tiny, "latent_dim": 4},
        "train_denoiser": {**tiny, "variants": 2},
        "denoise": {"strength": 1.0, "batch_size": 4, "grid_columns": 3},
    })
    prepare.run(params)
    train_scorer.run(params)
    write_generated(paths.GENERATED)
    return params


def write_generated(root: Path) -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], [5, 5, 2])
    images = rng.integers(0, 256, (len(labels), 8, 8, 1), dtype=np.uint8)
    with ShardWriter(root, prefix="synthetic", shard_size=5) as writer:
        shards, offsets = writer.write(images)
    write_manifest(root, pd.DataFrame({
        "id": [f"synthetic-{i}" for i in range(len(labels))], "split": "train", "label": labels,
        "class_name": [["0", "1", "7"][k] for k in labels], "source": "synthetic",
        "origin": [f"cgan:abc:{k}:{i}" for i, k in enumerate(labels)], "shard": shards, "offset": offsets,
        "model": "cgan", "checkpoint": "abc", "seed": np.arange(len(labels))}))
    DatasetInfo(["0", "1", "7"], 8, 1).write(root, model="cgan", checkpoint="abc")


def test_train_denoiser_measures_against_the_classic_filters(stages):
    summary = train_denoiser.run(stages)
    metrics = json.loads(paths.metrics_file("train_denoiser").read_text())
    assert metrics == json.loads(json.dumps(summary))
    val = metrics["val"]
    assert set(val) >= {"noisy", "median", "nl_means", "denoiser", "gain", "nl_means_h"}
    assert val["images"] == 6 and val["denoiser"]["ssim"] is None  # 8x8: below SSIM's window
    assert val["gain"]["over"] in ("median", "nl_means")
    assert "time" not in json.dumps(metrics) and "second" not in json.dumps(metrics)
    assert (paths.DENOISER / "denoiser.pt").exists() and (paths.DENOISER / "samples" / "step-0000010.png").exists()


def test_denoise_at_strength_0_leaves_the_bytes_and_adds_provenance(stages):
    zero = stages.model_copy(update={"denoise": stages.denoise.model_copy(update={"strength": 0.0})})
    summary = denoise.run(zero)  # no denoiser trained: at strength 0 none is needed
    for shard in sorted((paths.GENERATED / "images").iterdir()):
        assert (paths.DENOISED / "images" / shard.name).read_bytes() == shard.read_bytes()
    manifest = read_manifest(paths.DENOISED)
    before = read_manifest(paths.GENERATED)
    assert manifest["id"].tolist() == before["id"].tolist() and (manifest["model"] == "cgan").all()
    assert (manifest["denoise_strength"] == 0).all() and manifest["denoiser"].isna().all()
    assert manifest["outlier_score"].notna().all() and (manifest["outlier_score"] > 0).all()
    assert summary["mean_abs_change"] == 0 and summary["outlier_score"]["before"] == summary["outlier_score"]["after"]
    info = json.loads((paths.DENOISED / "info.json").read_text())
    assert info["checkpoint"] == "abc" and info["denoise_strength"] == 0
    assert (paths.DENOISED / paths.DENOISE_GRID).exists()


def test_strength_0_trains_no_denoiser_and_1_trains_one_afresh(stages):
    zero = stages.model_copy(update={"denoise": stages.denoise.model_copy(update={"strength": 0.0})})
    train_denoiser.run(stages)                      # an earlier run at strength 1: its files must go
    summary = train_denoiser.run(zero)
    assert summary == {"strength": 0.0, "denoiser": None}
    assert json.loads(paths.metrics_file("train_denoiser").read_text()) == summary
    assert [p.name for p in paths.DENOISER.iterdir()] == ["no_denoiser.txt"]
    assert denoise.run(zero)["denoiser"] is None    # the stage after it needs no model
    trained = train_denoiser.run(stages)            # back to strength 1: trained again, the note gone
    assert "no_denoiser.txt" not in [p.name for p in paths.DENOISER.iterdir()]
    assert trained["val"]["denoiser"]["psnr"] > 0 and (paths.DENOISER / "denoiser.pt").exists()


def test_denoise_applies_the_denoiser_shard_by_shard(stages):
    train_denoiser.run(stages)
    summary = denoise.run(stages)
    manifest = read_manifest(paths.DENOISED)
    assert len(manifest) == 12 and (manifest["denoise_strength"] == 1).all()
    assert manifest["denoiser"].str.len().eq(64).all() and summary["denoiser"] == manifest["denoiser"].iloc[0]
    model, _ = autoencoder.load(paths.DENOISER / "denoiser.pt", "denoiser", CPU)
    first = manifest.iloc[:4]  # the first batch (denoise.batch_size 4) of the first shard
    expected = autoencoder.denoise(model, gather_images(paths.GENERATED, first), 1.0, 4, CPU)
    assert np.array_equal(gather_images(paths.DENOISED, first), expected)
    assert summary["mean_abs_change"] > 0
    assert json.loads(paths.metrics_file("denoise").read_text())["images"] == 12


def test_denoise_refuses_a_shard_outside_its_folder_and_a_stale_scorer(stages):
    manifest = read_manifest(paths.GENERATED)
    off = stages.model_copy(update={"denoise": stages.denoise.model_copy(update={"strength": 0.0})})
    write_manifest(paths.GENERATED, manifest.assign(shard="../escape.npy"))
    with pytest.raises(DataError, match="outside the folder"):
        denoise.run(off)
    write_manifest(paths.GENERATED, manifest)
    DatasetInfo(["0", "1", "7"], 12, 1).write(paths.GENERATED)
    with pytest.raises(DataError, match="re-run train_scorer"):
        denoise.run(off)
    with pytest.raises(DataError, match="run the train_denoiser stage first"):
        denoise.run(stages)
    assert not paths.DENOISED.exists()


def test_params_name_bad_values():
    raw = {"classic": {"hflip": False}, "prepare": {"source": {"kind": "sklearn-digits", "path": "x"}}, "denoise": {"strength": 1.5},
           "train_denoiser": {"variants": 0, "noise": {"gaussian": {"std": [0.2, 0.1]}}}}
    with pytest.raises(ParamsError) as info:
        validate(raw)
    message = str(info.value)
    assert "denoise.strength" in message and "1.5" in message
    assert "train_denoiser.variants" in message and "train_denoiser.noise.gaussian.std" in message
