"""generator.kind diffusion: the U-Net learns the classes, its sampler is deterministic from the latent whatever the
batch, a change of sample_steps or guidance never retrains, guided samples keep their class, an interrupted run
resumes to the same model, bad params are named, and the stages run it as they run the other kinds."""

import numpy as np
import pandas as pd
import pytest
import torch

from components import paths
from components.config import validate
from components.config.generator import DiffusionParams, GeneratorParams, TrainGeneratorParams
from components.data.manifest import read_manifest
from components.data.shards import gather_images
from components.data.sources import sklearn_digits_path
from components.errors import ParamsError
from components.generation.sample import generate_class_range
from components.models import diffusion
from components.stages import generate as generate_stage
from components.stages import prepare
from components.stages import train_generator as train_stage
from components.training import generators
from components.training.diffusion import train_diffusion
from tests.unit.test_cvae import recognised

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")
ARCH = GeneratorParams(kind="diffusion", size=8)
NAMES = ["zero", "one", "seven"]


def recipe(**changes) -> TrainGeneratorParams:
    base = dict(steps=150, batch_size=32, lr=3e-3, log_every=50, checkpoint_every=150, width=16, embedding=32,
                timesteps=200, sample_steps=10, augment={"hflip": False})  # a mirrored digit is no digit
    return TrainGeneratorParams(grid_columns=3, diffusion=DiffusionParams(**{**base, **changes}))


def test_samples_of_class_k_are_classified_as_k(digits, tmp_path):
    """A classifier trained on the real digits recognises the class of the diffusion model's samples far more
    often than chance (1/3); generator.pt loads as any kind's, and its sampler has the generators' interface."""
    images, labels = digits
    summary = train_diffusion(images, labels, NAMES, ARCH, recipe(), seed=0, device=CPU, run_dir=tmp_path)
    assert summary["steps"] == 150 and np.isfinite(list(summary["final"].values())).all()
    assert (tmp_path / "samples.png").exists() and (tmp_path / "metrics.csv").read_text().startswith("step,loss\n")
    sampler, saved = generators.load(tmp_path / "generator.pt", CPU)
    assert isinstance(sampler, diffusion.Sampler) and saved["kind"] == "diffusion"
    assert (sampler.size, sampler.channels, sampler.num_classes, sampler.latent_dim) == (8, 1, 3, 64)
    accuracy = recognised(sampler, digits)
    assert accuracy > 0.8, f"samples recognised as their class {accuracy:.0%} of the time (chance: 33%)"


def test_a_sample_is_the_same_in_any_shard_and_sample_steps_never_retrain(digits, tmp_path):
    """Sample i of a class is decoded from its own latent: the same bytes whether it is generated alone or among
    others. sample_steps shapes the samples, not the weights: a finished run asked for fewer steps is not trained
    again, and samples differently."""
    images, labels = digits
    short = dict(steps=20, log_every=5, checkpoint_every=10)
    train_diffusion(images, labels, NAMES, ARCH, recipe(**short), 0, CPU, tmp_path)
    sampler, _ = generators.load(tmp_path / "generator.pt", CPU)
    whole = generate_class_range(sampler, 1, 0, 12, seed=4, batch_size=4)
    assert generate_class_range(sampler, 1, 5, 3, seed=4, batch_size=4).tobytes() == whole[5:8].tobytes()
    assert 0 < whole.std() and whole.dtype == np.uint8

    trained = (tmp_path / "metrics.csv").read_text()
    train_diffusion(images, labels, NAMES, ARCH, recipe(**short, sample_steps=4), 0, CPU, tmp_path)
    assert (tmp_path / "metrics.csv").read_text() == trained  # resumed at its last step: nothing trained
    fewer, saved = generators.load(tmp_path / "generator.pt", CPU)
    assert saved["recipe"]["sample_steps"] == 4
    assert all(torch.equal(a, b) for a, b in zip(fewer.state_dict().values(), sampler.state_dict().values()))
    assert generate_class_range(fewer, 1, 0, 12, seed=4, batch_size=4).tobytes() != whole.tobytes()


def test_guidance_draws_its_class_and_never_retrains(digits, tmp_path):
    """With label_dropout the U-Net also learns a "no class" label: guided samples (guidance 3) are recognised as
    their class, those of "no class" alone (guidance 0) are not; guidance, like sample_steps, changes the samples
    and not the weights."""
    images, labels = digits
    train_diffusion(images, labels, NAMES, ARCH, recipe(label_dropout=0.2), 0, CPU, tmp_path)
    plain, _ = generators.load(tmp_path / "generator.pt", CPU)
    assert plain.net.label.num_embeddings == 4 and plain.num_classes == 3  # the three classes and "no class"
    trained = (tmp_path / "metrics.csv").read_text()
    train_diffusion(images, labels, NAMES, ARCH, recipe(label_dropout=0.2, guidance=3.0), 0, CPU, tmp_path)
    assert (tmp_path / "metrics.csv").read_text() == trained  # resumed at its last step: nothing trained
    guided, saved = generators.load(tmp_path / "generator.pt", CPU)
    assert saved["recipe"]["guidance"] == 3.0 and guided.guidance == 3.0
    assert all(torch.equal(a, b) for a, b in zip(guided.state_dict().values(), plain.state_dict().values()))
    assert generate_class_range(guided, 1, 0, 4, seed=4).tobytes() != generate_class_range(plain, 1, 0, 4,
                                                                                            seed=4).tobytes()
    accuracy = recognised(guided, digits)
    assert accuracy > 0.9, f"guided samples recognised as their class {accuracy:.0%} of the time (chance: 33%)"
    # guidance 0 is the "no class" prediction alone: samples of any digit, whatever the label asked
    train_diffusion(images, labels, NAMES, ARCH, recipe(label_dropout=0.2, guidance=0.0), 0, CPU, tmp_path)
    unguided = recognised(generators.load(tmp_path / "generator.pt", CPU)[0], digits)
    assert unguided < 0.5, f"samples without their class recognised as it {unguided:.0%} of the time"


def test_interrupted_training_resumes_to_the_same_model(digits, tmp_path):
    images, labels = digits
    short = dict(batch_size=16, log_every=5, checkpoint_every=10, augment={"shift": 1, "hflip": True})  # any draws
    train_diffusion(images, labels, NAMES, ARCH, recipe(steps=20, **short), 0, CPU, tmp_path / "straight")
    train_diffusion(images, labels, NAMES, ARCH, recipe(steps=10, **short), 0, CPU, tmp_path / "resumed")
    train_diffusion(images, labels, NAMES, ARCH, recipe(steps=20, **short), 0, CPU, tmp_path / "resumed")
    assert (tmp_path / "straight/generator.pt").read_bytes() == (tmp_path / "resumed/generator.pt").read_bytes()


def test_build_is_seeded_and_leaves_global_rng_alone():
    before = torch.get_rng_state()
    a = diffusion.build(DiffusionParams(width=8, embedding=8), 3, 1, seed=3)
    assert torch.equal(before, torch.get_rng_state())
    b = diffusion.build(DiffusionParams(width=8, embedding=8), 3, 1, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_params_name_bad_diffusion_values():
    raw = {"classic": {"hflip": False}, "prepare": {"source": {"kind": "sklearn-digits", "path": "x"}, "size": 8},
           "generator": {"kind": "diffusion", "size": 8}, "upscale": {"factor": 1},
           "train_generator": {"diffusion": {"embedding": 9, "width": 0, "timesteps": 1, "augment": {"hflip": False}}}}
    unflipped = {"augment": {"hflip": False}}
    with pytest.raises(ParamsError) as info:
        validate(raw)
    message = str(info.value)
    assert "train_generator.diffusion.embedding" in message and "even" in message
    assert "train_generator.diffusion.width" in message and "train_generator.diffusion.timesteps" in message
    with pytest.raises(ParamsError, match=r"sample_steps \(30\) must be at most timesteps \(20\)"):
        validate({**raw, "train_generator": {"diffusion": {"timesteps": 20, "sample_steps": 30, **unflipped}}})
    with pytest.raises(ParamsError, match=r"guidance 2.0 needs a model that also learnt the images without their "
                                          r"class: set label_dropout above 0"):
        validate({**raw, "train_generator": {"diffusion": {"guidance": 2, **unflipped}}})
    with pytest.raises(ParamsError, match=r"train_generator.diffusion.label_dropout"):
        validate({**raw, "train_generator": {"diffusion": {"label_dropout": 1, **unflipped}}})
    with pytest.raises(ParamsError, match=r"generator.size 14: .* a multiple of 4"):
        validate({**raw, "prepare": {**raw["prepare"], "size": 14}, "generator": {"kind": "diffusion", "size": 14},
                  "train_generator": {"diffusion": unflipped}})
    with pytest.raises(ParamsError, match=r"train_generator.diffusion.augment.hflip is true, but prepare.source is "
                                          r"sklearn-digits.*Set it to false"):
        validate({**raw, "train_generator": {}})  # mirrored by default, as for Fashion-MNIST
    # the recipe of a kind not in use is not read, so its flips do not matter
    validate({**raw, "generator": {"kind": "cvae", "size": 8}, "train_generator": {"diffusion": {"augment": {
        "hflip": True}}}})


def test_stages_with_kind_diffusion(tmp_path, monkeypatch):
    """Selecting diffusion in params is all it takes: the same stages, provenance says diffusion, and a sample
    comes back from its provenance alone."""
    monkeypatch.chdir(tmp_path)
    params = validate({
        "device": "cpu",
        "classic": {"hflip": False},
        "prepare": {"source": {"kind": "sklearn-digits", "path": str(sklearn_digits_path())}, "size": 8,
                    "per_class": 10, "classes": ["0", "1", "7"]},
        "generator": {"kind": "diffusion", "size": 8},
        "train_generator": {"grid_columns": 2, "diffusion": {"steps": 4, "batch_size": 8, "log_every": 2,
                                                             "checkpoint_every": 2, "width": 8, "embedding": 8,
                                                             "timesteps": 50, "sample_steps": 5,
                                                             "augment": {"hflip": False}}},
        "generate": {"n": 5, "shard_size": 4, "batch_size": 4},
        "upscale": {"factor": 1},
    })
    prepare.run(params)
    summary = train_stage.run(params)
    assert summary["steps"] == 4 and (paths.GENERATOR / "generator.pt").exists()
    result = generate_stage.run(params)
    manifest = read_manifest(paths.GENERATED)
    assert len(manifest) == 15 and (manifest["model"] == "diffusion").all()
    assert manifest["origin"].iloc[0].startswith(f"diffusion:{result['checkpoint'][:12]}:0:")
    sampler, _ = generators.load(paths.GENERATOR / "generator.pt", CPU)
    row = manifest[manifest["label"] == 2].iloc[3]
    again = generate_class_range(sampler, 2, int(row["origin"].rsplit(":", 1)[1]), 1, params.seed, batch_size=4)
    assert again.tobytes() == gather_images(paths.GENERATED, pd.DataFrame([row])).tobytes()
