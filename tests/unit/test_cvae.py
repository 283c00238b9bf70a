"""The conditional VAE: shapes for every size and channel count, the KL and reconstruction terms, the
generator interface generate uses, loading by kind, conditioning (a classifier recognises the class of
its samples), resume, and the train_generator/generate stages with generator.kind cvae."""

import typing

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from components import paths
from components.config import validate
from components.config.generator import CvaeParams, GeneratorParams, TrainGeneratorParams
from components.data.manifest import read_manifest
from components.data.shards import gather_images
from components.data.sources import sklearn_digits_path
from components.errors import DataError, ParamsError
from components.generation.sample import generate_class_range, latents, prior_latents, sample_seeds
from components.models import cgan, cvae
from components.stages import generate as generate_stage
from components.stages import prepare
from components.stages import train_generator as train_stage
from components.training import generators
from components.training.cvae import train_cvae

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")
TINY = dict(latent_dim=8, width=8, embed_dim=4, max_width=32)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [8, 12, 14, 28, 32])
def test_shapes_and_range(size, channels):
    model = cvae.build(GeneratorParams(size=size, **TINY), num_classes=3, channels=channels, seed=0)
    images, labels = torch.rand(5, channels, size, size) * 2 - 1, torch.tensor([0, 1, 2, 0, 1])
    mean, logvar = model.encoder(images, labels)
    assert mean.shape == logvar.shape == (5, 8)
    logits, mean2, _ = model(images, labels, torch.randn(5, 8))
    assert logits.shape == images.shape and torch.equal(mean, mean2)
    decoded = model.decoder(torch.randn(5, 8), labels)
    assert decoded.shape == images.shape and decoded.min() >= -1 and decoded.max() <= 1


def test_decoder_offers_the_generator_interface():
    decoder = cvae.build(GeneratorParams(size=12, **TINY), num_classes=3, channels=1, seed=0).decoder
    assert (decoder.latent_dim, decoder.size, decoder.channels, decoder.num_classes) == (8, 12, 1, 3)
    images = generate_class_range(decoder, label=2, start=0, count=5, seed=0, batch_size=4)
    assert images.shape == (5, 12, 12, 1) and images.dtype == np.uint8


def test_kl_term():
    zero = torch.zeros(4, 8)
    assert torch.equal(cvae.kl_divergence(zero, zero), torch.zeros(4))
    mean, logvar = torch.randn(4, 8), torch.randn(4, 8)
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(mean, torch.exp(0.5 * logvar)), torch.distributions.Normal(0.0, 1.0)).sum(1)
    assert torch.allclose(cvae.kl_divergence(mean, logvar), expected, atol=1e-5)
    assert (cvae.kl_divergence(mean, logvar) > 0).all()


def test_reparameterisation_uses_the_given_noise():
    model = cvae.build(GeneratorParams(size=8, **TINY), 3, 1, seed=0)
    images, labels = torch.rand(2, 1, 8, 8) * 2 - 1, torch.tensor([0, 1])
    mean, _ = model.encoder(images, labels)
    logits, _, _ = model(images, labels, torch.zeros(2, 8))
    assert torch.allclose(logits, model.decoder.logits(mean, labels))


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_reconstruction_term_is_smaller_for_closer_reconstructions(likelihood):
    images = torch.rand(4, 1, 8, 8) * 2 - 1
    exact = torch.logit(((images + 1) / 2).clamp(1e-4, 1 - 1e-4))  # decodes to the images themselves
    near = cvae.reconstruction_nll(exact, images, likelihood)
    far = cvae.reconstruction_nll(exact.flip(0), images, likelihood)
    assert near.shape == (4,) and (near < far).all()


def test_bernoulli_is_the_binary_cross_entropy_of_the_pixel_intensities():
    logits, images = torch.randn(3, 1, 4, 4), torch.rand(3, 1, 4, 4) * 2 - 1
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, (images + 1) / 2, reduction="sum") / 3
    assert torch.isclose(cvae.reconstruction_nll(logits, images, "bernoulli").mean(), expected)


def test_export_and_load_by_kind(tmp_path):
    params = GeneratorParams(kind="cvae", size=12, **TINY)
    model = cvae.build(params, 3, 1, seed=0)
    torch.save(cvae.export(model, params, ["a", "b", "c"], step=7), tmp_path / "generator.pt")
    loaded, saved = generators.load(tmp_path / "generator.pt", CPU)
    assert isinstance(loaded, cvae.Decoder) and saved["kind"] == "cvae" and saved["step"] == 7
    z, labels = torch.randn(4, 8), torch.tensor([0, 1, 2, 0])
    assert torch.equal(loaded(z, labels), model.decoder.eval()(z, labels))

    G, _ = cgan.build(GeneratorParams(size=12, **TINY), 3, 1, seed=0)
    torch.save(cgan.export(G, GeneratorParams(size=12, **TINY), ["a", "b", "c"], step=1), tmp_path / "gan.pt")
    assert isinstance(generators.load(tmp_path / "gan.pt", CPU)[0], cgan.Generator)
    with pytest.raises(DataError, match="not a 'cgan' one"):
        cgan.load(tmp_path / "generator.pt", CPU)
    torch.save({"kind": "flow"}, tmp_path / "other.pt")
    with pytest.raises(DataError, match="kind 'flow'"):
        generators.load(tmp_path / "other.pt", CPU)
    with pytest.raises(DataError, match="run the train_generator stage first"):
        generators.load(tmp_path / "missing.pt", CPU)


def test_every_kind_params_allow_is_registered():
    """generator.kind's Literal and the registry agree, and each kind's recipe is what the stage trains with."""
    assert set(typing.get_args(GeneratorParams.model_fields["kind"].annotation)) == set(generators.KINDS)
    for name, kind in generators.KINDS.items():
        assert kind.model.KIND == name and callable(kind.model.from_saved) and callable(kind.model.export)
    tp = TrainGeneratorParams(steps=3, cvae={"steps": 5})
    assert generators.KINDS["cgan"].recipe(tp).steps == 3 and generators.KINDS["cvae"].recipe(tp).steps == 5


def test_build_is_seeded_and_leaves_global_rng_alone():
    before = torch.get_rng_state()
    a = cvae.build(GeneratorParams(size=8, **TINY), 3, 1, seed=3)
    assert torch.equal(before, torch.get_rng_state())
    b = cvae.build(GeneratorParams(size=8, **TINY), 3, 1, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def recipe(**changes) -> TrainGeneratorParams:
    base = dict(steps=300, batch_size=32, lr=3e-3, log_every=50, checkpoint_every=150, kl_warmup_steps=50)
    return TrainGeneratorParams(grid_columns=3, cvae=CvaeParams(**{**base, **changes}))


def recognised(decoder: torch.nn.Module, digits: tuple[np.ndarray, np.ndarray]) -> float:
    """The share of the decoder's samples (30 a class) that a classifier of the real digits puts in their class
    (chance: 1/3)."""
    images, labels = digits
    judge = LogisticRegression(max_iter=2000).fit(images.reshape(len(images), -1) / 255, labels)
    samples = [generate_class_range(decoder, k, 0, 30, seed=1, batch_size=30) for k in range(3)]
    return float((judge.predict(np.concatenate(samples).reshape(90, -1) / 255) == np.repeat(np.arange(3), 30)).mean())


def test_samples_of_class_k_are_classified_as_k(digits, tmp_path):
    """A classifier trained on the real digits recognises the class of the cVAE's samples far more
    often than chance (1/3)."""
    images, labels = digits
    arch = GeneratorParams(kind="cvae", size=8, latent_dim=8, width=16, embed_dim=8)
    summary = train_cvae(images, labels, ["zero", "one", "seven"], arch, recipe(), seed=0, device=CPU,
                         run_dir=tmp_path)
    assert summary["steps"] == 300 and np.isfinite(list(summary["final"].values())).all()
    assert (tmp_path / "samples.png").exists() and (tmp_path / "samples" / "step-0000150.png").exists()

    decoder, _ = generators.load(tmp_path / "generator.pt", CPU)
    accuracy = recognised(decoder, digits)
    assert accuracy > 0.8, f"samples recognised as their class {accuracy:.0%} of the time (chance: 33%)"


def test_shifted_and_mirrored_batches_still_teach_the_classes(digits, tmp_path):
    """train_generator.cvae.augment: the cVAE trains on shifted (and mirrored) copies, so its weights differ from
    the plain recipe's, and its samples are still recognised as their class. Off, it is the plain recipe: the
    key does not enter the run's fingerprint, so runs from before it existed resume."""
    images, labels = digits
    arch = GeneratorParams(kind="cvae", size=8, latent_dim=8, width=16, embed_dim=8)
    train_cvae(images, labels, ["zero", "one", "seven"], arch, recipe(augment={"shift": 1, "hflip": True}), seed=0,
               device=CPU, run_dir=tmp_path / "augmented")
    train_cvae(images, labels, ["zero", "one", "seven"], arch, recipe(steps=10), seed=0, device=CPU,
               run_dir=tmp_path / "plain")
    shifted, _ = generators.load(tmp_path / "augmented/generator.pt", CPU)
    plain, _ = generators.load(tmp_path / "plain/generator.pt", CPU)
    assert any(not torch.equal(a, b) for a, b in zip(shifted.state_dict().values(), plain.state_dict().values()))
    assert recognised(shifted, digits) > 0.8
    assert "augment" in CvaeParams().not_shaping() and "augment" not in CvaeParams(augment={"shift": 1}).not_shaping()


def test_temperature_scales_the_prior(digits, tmp_path):
    decoder = cvae.build(GeneratorParams(size=8, **TINY), 3, 1, seed=0).decoder.eval()
    plain = generate_class_range(decoder, 1, 0, 8, seed=0, batch_size=8)
    assert generate_class_range(decoder, 1, 0, 8, seed=0, batch_size=8, temperature=1.0).tobytes() == plain.tobytes()
    cold = generate_class_range(decoder, 1, 0, 8, seed=0, batch_size=8, temperature=1e-6).astype(int)
    assert np.abs(cold - cold[:1]).max() <= 1  # every sample is the decoded prior mean
    assert plain.astype(int).std(axis=0).mean() > cold.std(axis=0).mean()


def test_aggregate_prior_draws_from_the_class_train_posteriors(digits, tmp_path):
    """prior aggregate: generator.pt carries every train image's posterior; a sample's latent is one of its
    class's posteriors (picked by the sample's seed), so at temperature ~0 it decodes a train image's
    posterior mean, and its class is recognised at least as often as from the standard prior."""
    images, labels = digits
    arch = GeneratorParams(kind="cvae", size=8, latent_dim=8, width=16, embed_dim=8)
    train_cvae(images, labels, ["zero", "one", "seven"], arch, recipe(prior="aggregate"), seed=0, device=CPU,
               run_dir=tmp_path)
    decoder, saved = generators.load(tmp_path / "generator.pt", CPU)
    assert saved["posterior"]["means"].shape == (len(labels), 8)
    assert torch.equal(saved["posterior"]["labels"], torch.from_numpy(labels))
    assert (saved["posterior"]["stds"] > 0).all()

    means = {k: {tuple(m.tolist()) for m in decoder.posterior[k][0]} for k in range(3)}
    seeds = sample_seeds(1, 2, 0, 40)
    cold = prior_latents(decoder, 2, seeds, temperature=0.0)
    assert all(tuple(z.tolist()) in means[2] for z in cold)  # each an encoded seven's mean
    assert len({tuple(z.tolist()) for z in cold}) > 10          # the seeds pick different images
    again = generate_class_range(decoder, 2, 0, 40, seed=1, batch_size=16)
    assert generate_class_range(decoder, 2, 0, 40, seed=1, batch_size=40).tobytes() == again.tobytes()

    assert recognised(decoder, digits) > 0.8

    cvae.set_posterior(decoder, None)  # the standard prior again: plain normal latents
    assert torch.equal(prior_latents(decoder, 2, seeds), latents(seeds, 8))


def test_interpolated_prior_fills_the_segments_between_train_posteriors(digits, tmp_path):
    """prior interpolated: at temperature 0 a latent lies on the segment between two of its class's posterior
    means (its distance to the nearest mean is usually not 0), and varies more than the aggregate prior's."""
    images, labels = digits
    arch = GeneratorParams(kind="cvae", size=8, latent_dim=8, width=16, embed_dim=8)
    train_cvae(images, labels, ["zero", "one", "seven"], arch, recipe(steps=60, prior="interpolated"), seed=0,
               device=CPU, run_dir=tmp_path)
    decoder, saved = generators.load(tmp_path / "generator.pt", CPU)
    assert saved["posterior"]["mix"] == decoder.posterior_mix == 0.5
    means = decoder.posterior[1][0]
    cold = prior_latents(decoder, 1, sample_seeds(3, 1, 0, 200), temperature=0.0)
    nearest = torch.cdist(cold, means).min(dim=1).values
    assert (nearest > 1e-4).float().mean() > 0.9
    # each lies on a segment from some mean a at most half way to some mean b: z - a parallel to b - a
    to_z, to_b = cold[:, None, None] - means[None, :, None], means[None, None] - means[None, :, None]
    parallel = torch.nn.functional.cosine_similarity(to_z, to_b, dim=3) > 0.9999
    half_way = to_z.norm(dim=3) <= 0.5 * to_b.norm(dim=3) + 1e-5
    assert (parallel & half_way).flatten(1).any(dim=1).all()
    decoder.posterior_mix = 0.0
    aggregate = prior_latents(decoder, 1, sample_seeds(3, 1, 0, 200), temperature=0.0)
    assert (aggregate[:, None] - means[None]).norm(dim=2).min(dim=1).values.max() < 1e-6


def test_gaussian_prior_draws_from_the_moments_of_the_class_posteriors(digits, tmp_path):
    """prior gaussian: a class's latents are drawn from the Gaussian with the mean and covariance of its train
    images' posteriors (the covariance times prior_spread squared); at temperature 0 every latent is that mean.
    Its samples are still their class. Switching to it from another prior re-encodes the finished run's train
    images, it does not train again."""
    images, labels = digits
    arch = GeneratorParams(kind="cvae", size=8, latent_dim=8, width=16, embed_dim=8)
    train_cvae(images, labels, ["zero", "one", "seven"], arch, recipe(prior="interpolated"), seed=0, device=CPU,
               run_dir=tmp_path)
    checkpoints = {p.name: p.read_bytes() for p in (tmp_path / "checkpoints").iterdir()}
    interpolated, _ = generators.load(tmp_path / "generator.pt", CPU)
    train_cvae(images, labels, ["zero", "one", "seven"], arch, recipe(prior="gaussian", prior_spread=1.5), seed=0,
               device=CPU, run_dir=tmp_path)
    assert {p.name: p.read_bytes() for p in (tmp_path / "checkpoints").iterdir()} == checkpoints  # not trained again
    decoder, saved = generators.load(tmp_path / "generator.pt", CPU)
    assert all(torch.equal(a, b) for a, b in zip(decoder.state_dict().values(), interpolated.state_dict().values()))
    assert saved["posterior"]["spread"] == 1.5 and decoder.gaussian is not None and interpolated.gaussian is None

    means, stds = (saved["posterior"][k][saved["posterior"]["labels"] == 2].double() for k in ("means", "stds"))
    cold = prior_latents(decoder, 2, sample_seeds(1, 2, 0, 20), temperature=0.0)
    assert torch.allclose(cold, means.mean(0).float().expand(20, -1), atol=1e-6)
    drawn = prior_latents(decoder, 2, sample_seeds(1, 2, 0, 20000)).double()
    covariance = torch.cov(means.T, correction=0) + torch.diag((stds ** 2).mean(0))
    assert torch.allclose(drawn.mean(0), means.mean(0), atol=0.05 * covariance.diagonal().max().sqrt().item())
    assert torch.allclose(torch.cov(drawn.T), 1.5 ** 2 * covariance, atol=0.05 * 1.5 ** 2 * covariance.diagonal().max())

    again = generate_class_range(decoder, 2, 0, 40, seed=1, batch_size=16)
    assert generate_class_range(decoder, 2, 0, 40, seed=1, batch_size=40).tobytes() == again.tobytes()
    assert recognised(decoder, digits) > 0.8


def test_interrupted_training_resumes_to_the_same_decoder(digits, tmp_path):
    images, labels = digits
    arch = GeneratorParams(kind="cvae", size=8, **TINY)
    short = dict(batch_size=16, log_every=5, checkpoint_every=10, kl_warmup_steps=15)
    train_cvae(images, labels, ["a", "b", "c"], arch, recipe(steps=20, **short), 0, CPU, tmp_path / "straight")
    train_cvae(images, labels, ["a", "b", "c"], arch, recipe(steps=10, **short), 0, CPU, tmp_path / "resumed")
    train_cvae(images, labels, ["a", "b", "c"], arch, recipe(steps=20, **short), 0, CPU, tmp_path / "resumed")
    assert (tmp_path / "straight/generator.pt").read_bytes() == (tmp_path / "resumed/generator.pt").read_bytes()


def test_params_name_bad_cvae_values():
    raw = {"classic": {"hflip": False}, "prepare": {"source": {"kind": "sklearn-digits", "path": "x"}},
           "generator": {"kind": "cvae"},
           "train_generator": {"cvae": {"likelihood": "poisson", "beta": -1, "prior": "vamp", "prior_spread": 0}}}
    with pytest.raises(ParamsError) as info:
        validate(raw)
    message = str(info.value)
    assert "train_generator.cvae.likelihood" in message and "'bernoulli'" in message
    assert "train_generator.cvae.beta" in message and "train_generator.cvae.prior_spread" in message
    assert "train_generator.cvae.prior" in message and "'gaussian'" in message
    with pytest.raises(ParamsError, match="generator.kind"):
        validate({**raw, "generator": {"kind": "vae"}, "train_generator": {}})
    with pytest.raises(ParamsError, match=r"train_generator.cvae.augment.hflip is true, but prepare.source is "
                                          r"sklearn-digits.*Set it to false"):
        validate({**raw, "train_generator": {"cvae": {"augment": {"hflip": True}}}})
    with pytest.raises(ParamsError, match="train_generator.cvae.augment.shift"):
        validate({**raw, "train_generator": {"cvae": {"augment": {"shift": -1}}}})
    with pytest.raises(ParamsError, match="generate.temperature"):
        validate({**raw, "train_generator": {}, "generate": {"temperature": 0}})


def test_stages_with_kind_cvae(tmp_path, monkeypatch):
    """Selecting cvae in params is all it takes: same stages, provenance says cvae and the temperature."""
    monkeypatch.chdir(tmp_path)
    params = validate({
        "device": "cpu",
        "classic": {"hflip": False}, "prepare": {"source": {"kind": "sklearn-digits", "path": str(sklearn_digits_path())}, "size": 8,
                    "per_class": 10, "classes": ["0", "1", "7"]},
        "generator": {"kind": "cvae", "size": 8, **TINY},
        "train_generator": {"grid_columns": 2, "cvae": {"steps": 4, "batch_size": 8, "log_every": 2,
                                                        "checkpoint_every": 2}},
        "generate": {"n": 5, "shard_size": 4, "batch_size": 4, "temperature": 0.8},
        "upscale": {"factor": 1},
    })
    prepare.run(params)
    summary = train_stage.run(params)
    assert summary["steps"] == 4 and (paths.GENERATOR / "generator.pt").exists()
    assert (paths.GENERATOR / "metrics.csv").read_text().splitlines()[0] == "step,loss,recon,kl"
    result = generate_stage.run(params)
    manifest = read_manifest(paths.GENERATED)
    assert len(manifest) == 15 and (manifest["model"] == "cvae").all() and (manifest["temperature"] == 0.8).all()
    assert manifest["origin"].iloc[0].startswith(f"cvae:{result['checkpoint'][:12]}:0:")
    # a sample comes back from its provenance alone
    decoder, _ = generators.load(paths.GENERATOR / "generator.pt", CPU)
    row = manifest[manifest["label"] == 2].iloc[3]
    again = generate_class_range(decoder, 2, int(row["origin"].rsplit(":", 1)[1]), 1, params.seed, batch_size=4,
                                 temperature=0.8)
    assert again.tobytes() == gather_images(paths.GENERATED, pd.DataFrame([row])).tobytes()
