"""Super-resolution: the SR net's shapes and baseline, that it beats bicubic after a short training, the
train_upscaler and upscale stages (x2, and factor 1 skipping cleanly), resume, and the size checks of params."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from components import paths
from components.config import validate
from components.config.training import FitParams
from components.config.transforms import Blur, DegradeParams, GaussianNoise, Jpeg
from components.data.manifest import DatasetInfo, read_manifest, write_manifest
from components.data.shards import ShardWriter, gather_images
from components.data.sources import sklearn_digits_path
from components.errors import DataError, ParamsError
from components.metrics.fidelity import fidelity, psnr, ssim
from components.models import upscaler
from components.stages import prepare, train_upscaler, upscale
from components.pixels import resize
from components.training import upscaler as training
from components.training.fit import fit

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")



def rectangles(n: int, size: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Images of sharp-edged rectangles on black: edges are what bicubic blurs and SR can restore."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, size, size, channels), np.uint8)
    for image in out:
        for _ in range(3):
            y, x = rng.integers(0, size - 4, 2)
            h, w = rng.integers(3, size // 2, 2)
            image[y:y + h, x:x + w] = rng.integers(80, 256, channels)
    return out


# the model

@pytest.mark.parametrize("factor", [2, 4])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_and_the_untrained_net_is_bicubic(factor, channels):
    model = upscaler.build(factor, channels, width=8, blocks=1, seed=0)
    x = torch.rand(3, channels, 6, 5) * 2 - 1
    assert model(x).shape == (3, channels, 6 * factor, 5 * factor)
    low = rectangles(5, 8, channels)
    out = upscaler.apply(model, low, batch_size=2, device=CPU)
    assert out.shape == (5, 8 * factor, 8 * factor, channels) and out.dtype == np.uint8
    assert np.array_equal(out, upscaler.bicubic(low, factor))


def test_wrong_factor_or_input_is_refused():
    with pytest.raises(DataError, match="factor"):
        upscaler.build(3, 1, 8, 1, seed=0)
    model = upscaler.build(2, 1, 8, 1, seed=0)
    with pytest.raises(DataError, match="uint8"):
        upscaler.apply(model, np.zeros((2, 8, 8, 1), np.float32), 4, CPU)
    with pytest.raises(DataError, match="1-channel"):
        upscaler.apply(model, np.zeros((2, 8, 8, 3), np.uint8), 4, CPU)


def test_build_is_seeded_export_and_load_give_the_same_net(tmp_path):
    before = torch.get_rng_state()
    a, b = upscaler.build(2, 3, 8, 2, seed=4), upscaler.build(2, 3, 8, 2, seed=4)
    assert torch.equal(before, torch.get_rng_state())
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    torch.nn.init.normal_(a.tail.weight)  # not the bicubic start any more
    torch.save(upscaler.export(a, step=9), tmp_path / "u.pt")
    back, saved = upscaler.load(tmp_path / "u.pt", CPU)
    assert saved["step"] == 9 and saved["arch"] == {"factor": 2, "channels": 3, "width": 8, "blocks": 2}
    low = rectangles(4, 8, 3)
    assert np.array_equal(upscaler.apply(a, low, 4, CPU), upscaler.apply(back, low, 4, CPU))
    with pytest.raises(DataError, match="run the train_upscaler stage"):
        upscaler.load(tmp_path / "missing.pt", CPU)


def test_sr_beats_bicubic_on_a_tiny_set_after_short_training(tmp_path):
    train, val = rectangles(64, 16, seed=0), rectangles(32, 16, seed=1)
    clean = DegradeParams(blur=Blur(p=0), gaussian=GaussianNoise(p=0), jpeg=Jpeg(p=0), interpolations=["area"])
    pairs = training.TrainingPairs(train, clean, 2, seed=0, device=CPU)
    params = FitParams(steps=150, batch_size=16, lr=3e-3, checkpoint_every=150, log_every=50)
    model, _ = fit(upscaler.build(2, 1, width=16, blocks=2, seed=0),
                   lambda m, rng, step: training.batch_metrics(m, pairs, rng, step, 16),
                   training.METRICS, params, seed=0, device=CPU, run_dir=tmp_path, fingerprint={},
                   finals=(), name="test")
    low = training.degrade(val, clean, 2, seed=0)
    sr, bicubic = upscaler.apply(model, low, 8, CPU), upscaler.bicubic(low, 2)
    assert psnr(sr, val) > psnr(bicubic, val) + 1.0
    assert ssim(sr, val) > ssim(bicubic, val)


def test_fidelity_metrics():
    images = rectangles(4, 16)
    same = fidelity(images, images)
    assert same["psnr"] > 100 and same["ssim"] == 1.0
    noisy = np.clip(images.astype(int) + 10, 0, 255).astype(np.uint8)
    assert 20 < psnr(noisy, images) < 30 and ssim(noisy, images) < 1
    with pytest.raises(DataError, match="same"):
        psnr(images, images[:2])


def test_generator_training_images_are_area_downscaled():
    pixels = torch.arange(16, dtype=torch.uint8).reshape(1, 1, 4, 4) * 10
    assert resize(pixels, 2).flatten().tolist() == [25, 45, 105, 125]  # the mean of each 2x2 block


# params

def raw(size: int, generator: int, factor: int) -> dict:
    return {"classic": {"hflip": False}, "prepare": {"source": {"kind": "sklearn-digits", "path": "x"}, "size": size},
            "generator": {"size": generator}, "upscale": {"factor": factor}}


@pytest.mark.parametrize("size, generator, factor, expected", [
    (28, 28, 2, "generator.size 28 x upscale.factor 2 = 56, but prepare.size is 28"),
    (28, 14, 4, "prepare.size 28 / upscale.factor 4 = 7 is no generator.size"),
    (30, 14, 4, "prepare.size 30 is not divisible by upscale.factor 4"),
])
def test_sizes_that_do_not_divide_fail_at_validation(size, generator, factor, expected):
    with pytest.raises(ParamsError) as info:
        validate(raw(size, generator, factor))
    message = str(info.value)
    assert expected in message and "For prepare.size" in message
    assert "generator.size 14 with upscale.factor 2" in message or size == 30


@pytest.mark.parametrize("size, generator, factor", [(28, 14, 2), (28, 28, 1), (32, 8, 4), (64, 16, 4)])
def test_matching_sizes_are_valid(size, generator, factor):
    params = validate(raw(size, generator, factor))
    assert params.generator.size * params.upscale.factor == params.prepare.size


def test_upscale_factor_is_1_2_or_4():
    with pytest.raises(ParamsError, match="upscale.factor"):
        validate(raw(24, 8, 3))


# the stages

TINY_SR = {"steps": 20, "batch_size": 8, "checkpoint_every": 10, "log_every": 5, "width": 8, "blocks": 1}


def stage_params(factor: int, size: int = 16, **train):
    return validate({
        "device": "cpu",
        "classic": {"hflip": False}, "prepare": {"source": {"kind": "sklearn-digits", "path": str(sklearn_digits_path())}, "size": size,
                    "per_class": 10, "classes": ["0", "1", "7"], "val_fraction": 0.3},
        "generator": {"size": size // factor},
        "upscale": {"factor": factor, "batch_size": 3, "grid_columns": 2},
        "train_upscaler": {**TINY_SR, **train},
    })


def fake_generated(root, size: int, per_class: int = 4) -> None:
    """A data/generated folder as generate writes it: 3 classes, provenance columns, two shards."""
    images = rectangles(3 * per_class, size, seed=3)
    with ShardWriter(root, prefix="synthetic", shard_size=5) as writer:
        shards, offsets = writer.write(images)
    labels = np.repeat(np.arange(3), per_class)
    write_manifest(root, pd.DataFrame({
        "id": [f"synthetic-{i}" for i in range(len(labels))], "split": "train", "label": labels,
        "class_name": [["0", "1", "7"][k] for k in labels], "source": "synthetic",
        "origin": [f"cgan:abc:{k}:{i}" for i, k in enumerate(labels)], "shard": shards, "offset": offsets,
        "model": "cgan", "checkpoint": "abc", "seed": np.arange(len(labels)), "truncation": np.nan}))
    DatasetInfo(["0", "1", "7"], size, 1).write(root, model="cgan", checkpoint="abc", seed=0, truncation=None)


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    prepare.run(stage_params(2))
    return tmp_path


def test_train_upscaler_then_upscale_x2(project, monkeypatch):
    params = stage_params(2)
    summary = train_upscaler.run(params)
    folder = paths.UPSCALER
    assert (folder / "upscaler.pt").exists() and (folder / "lr_bicubic_sr_hr.png").exists()
    assert sorted(p.name for p in (folder / "samples").iterdir()) == ["step-0000010.png", "step-0000020.png"]
    metrics = json.loads(paths.metrics_file("train_upscaler").read_text())
    assert metrics == summary and metrics["factor"] == 2 and metrics["val"]["images"] == 9
    for name in ("area", "degraded"):
        assert set(metrics["val"][name]) == {"bicubic", "sr", "gain"}
    assert (folder / "metrics.csv").read_text().splitlines()[0] == "step,loss,psnr,psnr_bicubic"

    fake_generated(paths.GENERATED, 8)
    batches = []
    apply = upscaler.apply
    monkeypatch.setattr(upscaler, "apply", lambda m, x, b, d: batches.append(len(x)) or apply(m, x, b, d))
    result = upscale.run(params, source=paths.GENERATED)
    assert max(batches) <= 3  # upscale.batch_size: memory bounded by a batch, not by the count
    manifest, before = read_manifest(paths.UPSCALED), read_manifest(paths.GENERATED)
    assert manifest.columns.tolist() == [*before.columns, "upscale_factor", "upscaler"]
    assert manifest["id"].tolist() == before["id"].tolist() and (manifest["upscale_factor"] == 2).all()
    assert (manifest["upscaler"] == metrics["upscaler"]).all() and result["upscaler"] == metrics["upscaler"]
    images = gather_images(paths.UPSCALED, manifest)
    model, _ = upscaler.load(folder / "upscaler.pt", CPU)
    assert np.array_equal(images, upscaler.apply(model, gather_images(paths.GENERATED, before), 64, CPU))
    info = json.loads((paths.UPSCALED / "info.json").read_text())
    assert (info["size"], info["upscale_factor"], info["model"]) == (16, 2, "cgan")
    assert (paths.UPSCALED / "lr_sr.png").exists()
    assert json.loads(paths.metrics_file("upscale").read_text())["size"] == {"in": 8, "out": 16}


def test_a_resumed_run_ends_with_the_straight_run_s_weights(project, tmp_path):
    train_upscaler.run(stage_params(2, steps=30))
    straight = (paths.UPSCALER / "upscaler.pt").read_bytes()
    train_upscaler.run(stage_params(2, steps=10))   # "killed" after step 10
    train_upscaler.run(stage_params(2, steps=30))   # raising steps resumes
    assert (paths.UPSCALER / "upscaler.pt").read_bytes() == straight


def test_factor_1_skips_training_and_passes_samples_through(project):
    params = stage_params(1)
    train_upscaler.run(stage_params(2))            # an earlier x2 run: its files must go
    summary = train_upscaler.run(params)
    assert summary == {"factor": 1, "upscaler": None}
    assert [p.name for p in paths.UPSCALER.iterdir()] == ["no_upscaler.txt"]

    fake_generated(paths.GENERATED, 16)
    result = upscale.run(params, source=paths.GENERATED)
    assert result["factor"] == 1 and result["upscaler"] is None
    before, after = read_manifest(paths.GENERATED), read_manifest(paths.UPSCALED)
    assert (after["upscale_factor"] == 1).all() and after["upscaler"].isna().all()
    for shard in before["shard"].unique():
        assert (paths.UPSCALED / shard).read_bytes() == (paths.GENERATED / shard).read_bytes()


def test_upscale_refuses_samples_of_the_wrong_size_or_a_model_for_another_factor(project):
    train_upscaler.run(stage_params(2))
    fake_generated(paths.GENERATED, 12)
    with pytest.raises(DataError, match="not prepare.size 16"):
        upscale.run(stage_params(2), source=paths.GENERATED)
    fake_generated(paths.GENERATED, 8)
    with pytest.raises(DataError, match="re-run train_upscaler"):
        upscale.run(stage_params(4, size=32), source=paths.GENERATED)
