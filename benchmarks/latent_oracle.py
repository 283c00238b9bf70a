"""Where should a sample's latent be? Unseen real images' latents against the priors', and what each teaches.

generator_oracle.py found that unseen real images encoded and decoded by the pipeline's cVAE add points with their
true labels, while the prior's samples, decoded by the same decoder with their conditioning labels, lose: the
difference is only where the latents are. This script measures where they are and what a prior fitted to the unseen
latents themselves would give. Per class, in the cVAE's latent space (posterior means of its last checkpoint's EMA
encoder, Euclidean distances, medians over the class), against 1,000 unseen images a class (REFERENCE), with 1,000
latents a source: how far each source's latents lie from the nearest train image's latent; how far from the nearest
unseen image's latent (are they where images are?); how far each unseen image's latent lies from the nearest of
theirs (do they cover the class?); for a Gaussian, the unseen latents' mean squared Mahalanobis distance under it
over the dimension (1 where they follow it) and their negative log-likelihood under it. The sources: other unseen
images (what a perfect prior gives), the product's priors (standard, N(0, I), which the KL term pulls every
posterior towards; on the train posteriors aggregate, interpolated, gaussian at spread 1 and at the pipeline's
prior_spread; drawn as generate draws them), the gaussian prior's Gaussian fitted to the pool's other unseen
posteriors (thousands a class, not 90) at spread 1: is it the estimate from 90 images or the Gaussian's shape that
misplaces the samples?, the train latents' Gaussian with its covariance shrunk towards the pooled one (every class's
posteriors about their class's mean: 900 images, not 90; the share per class chosen from SHRINKAGES by the held-out
likelihood of the class's train latents, SHRINKAGE_FOLDS folds, nothing unseen), the train and unseen Gaussians'
mean and covariance swapped (which of the two does the unseen-fitted Gaussian get right?), and the gaussian prior's
latents at spread 1 decoded and encoded again CYCLES times (the encoder moves them towards where it puts images).
Then the synthetic arm trained on decoded latents with their labels (hard, as `evaluate.synthetic_labels: hard`;
every one, no label check; as many a class as the samples): the standard prior's latents, the train posteriors
(prior aggregate), the Gaussian fitted to them, the Gaussian fitted to unseen latents, the shrunk Gaussian, the two
swapped ones and the re-encoded Gaussian, beside the pipeline's own runs and, read back from generator_oracle.py's
work folder when --work is the same, the unseen real images and their reconstructions. Val chooses nothing here;
test reports. Writes the figures, the machine and the command as JSON (--out). Never asserted in tests.

    python benchmarks/latent_oracle.py --data /tmp/aug/s0/per_class-100:0 --work /tmp/oracle-aug
"""

import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.generator_oracle import reconstruct, trained_cvae  # noqa: E402
from benchmarks.pipeline_runs import Variant, on_each_pipeline, pipelines_parser, train_variants  # noqa: E402
from benchmarks.real_oracle import ARM, first_of_each_class, oracle_inputs  # noqa: E402
from components import paths  # noqa: E402
from components.device import autocast  # noqa: E402
from components.generation.sample import generate_class_range, prior_latents, sample_seeds  # noqa: E402
from components.models import cgan, cvae  # noqa: E402
from components.pixels import to_input, to_uint8  # noqa: E402
from components.training.downstream import Context, Images  # noqa: E402

REFERENCE = 1000  # unseen images a class the latents are measured against
PER_SOURCE = 1000  # latents a class from each source
CYCLES = 3  # decode-encode cycles of the re-encoded Gaussian
REENCODED = f"prior gaussian, spread 1, re-encoded {CYCLES} times"
SHRINKAGES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # chosen from by held-out likelihood on train latents
SHRINKAGE_FOLDS = 10
SHRUNK = "gaussian shrunk to the pooled covariance, spread 1"
UNSEEN_MEAN = "unseen latents' mean, train latents' covariance"
UNSEEN_COVARIANCE = "train latents' mean, unseen latents' covariance"


def main() -> None:
    on_each_pipeline(pipelines_parser(__doc__.splitlines()[0], "latent_oracle-cpu-2core.json").parse_args(),
                     compare)


@torch.no_grad()
def posteriors(model: cvae.CVAE, images: Images, device: torch.device,
               batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 (N, latent_dim) means and stds on the CPU: each image's posterior under its own label."""
    parts = [model.encoder(to_input(images.images[i:i + batch_size], device),
                           torch.from_numpy(images.labels[i:i + batch_size].copy()).to(device))
             for i in range(0, len(images), batch_size)]
    return (torch.cat([m for m, _ in parts]).double().cpu(),
            torch.cat([v for _, v in parts]).double().mul(0.5).exp().cpu())


@torch.no_grad()
def reencoded(model: cvae.CVAE, latents: torch.Tensor, label: int, device: torch.device,
              cycles: int = CYCLES, batch_size: int = 512) -> torch.Tensor:
    """float64 latents on the CPU: each decoded with `label` and encoded again (its posterior mean), `cycles` times.
    The encoder was trained on images, not on latents: a cycle moves a latent towards where it puts images."""
    out = []
    for i in range(0, len(latents), batch_size):
        z = latents[i:i + batch_size].float().to(device)
        y = torch.full((len(z),), label, dtype=torch.int64, device=device)
        for _ in range(cycles):
            z = model.encoder(model.decoder(z, y), y)[0]
        out.append(z.double().cpu())
    return torch.cat(out)


@torch.no_grad()
def decode(decoder: cvae.Decoder, latents: torch.Tensor, label: int, device: torch.device,
           batch_size: int = 256) -> np.ndarray:
    """uint8 images of `latents` decoded with `label`, as generate decodes (full batches, autocast, to_uint8)."""
    parts = []
    for i in range(0, len(latents), batch_size):
        z = latents[i:i + batch_size].float()
        padded = torch.cat([z, z.new_zeros(batch_size - len(z), z.shape[1])]).to(device)
        labels = torch.full((batch_size,), label, dtype=torch.int64, device=device)
        with autocast(device):
            parts.append(to_uint8(cgan.sample(decoder, labels, padded))[:len(z)])
    return np.concatenate(parts)


def placement(latents: torch.Tensor, train: torch.Tensor, reference: torch.Tensor) -> dict:
    """Medians of: each latent's distance to the nearest train latent and to the nearest reference latent, and
    each reference latent's distance to the nearest of `latents`."""
    nearest = lambda a, b: float(torch.cdist(a, b).min(1).values.median())  # noqa: E731
    return {"to_train": nearest(latents, train), "to_unseen": nearest(latents, reference),
            "unseen_to_these": nearest(reference, latents)}


def mahalanobis(latents: torch.Tensor, centre: torch.Tensor, factor: torch.Tensor) -> float:
    """The mean squared Mahalanobis distance of `latents` under the Gaussian (centre, factor @ factor.T), over the
    latent dimension: 1 where they follow it, above 1 where they lie outside what it expects."""
    whitened = torch.linalg.solve_triangular(factor, (latents - centre).T, upper=False)
    return float(whitened.pow(2).sum(0).mean() / len(centre))


def nll(latents: torch.Tensor, centre: torch.Tensor, factor: torch.Tensor) -> float:
    """The mean negative log-likelihood of `latents` under the Gaussian (centre, factor @ factor.T), in nats over
    the latent dimension: lower where it fits them, and unlike the Mahalanobis figure not lowered by a wider one."""
    log_det = 2 * float(torch.log(torch.diagonal(factor)).sum())
    return 0.5 * (mahalanobis(latents, centre, factor) + log_det / len(centre) + math.log(2 * math.pi))


def pooled_covariance(means: torch.Tensor, stds: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The covariance class_gaussian fits, of every class's posteriors about their class's mean, pooled over the
    classes (weighted by their counts): one shape estimated from all the train images, not from 90."""
    parts = [(labels == k).sum() * cvae.mixture_covariance(means[labels == k], stds[labels == k])
             for k in labels.unique().tolist()]
    return sum(parts) / len(labels)


def shrunk_gaussian(means: torch.Tensor, stds: torch.Tensor, pooled: torch.Tensor,
                    shrinkage: float) -> tuple[torch.Tensor, torch.Tensor]:
    """class_gaussian's (centre, factor) at spread 1 with its covariance moved `shrinkage` of the way to `pooled`."""
    centre, factor = cvae.class_gaussian(means, stds, 1.0)
    return centre, torch.linalg.cholesky((1 - shrinkage) * factor @ factor.T + shrinkage * pooled)


def held_out_nll(means: torch.Tensor, stds: torch.Tensor, pooled: torch.Tensor, shrinkage: float,
                 folds: int = SHRINKAGE_FOLDS) -> float:
    """The mean negative log-likelihood (as `nll`) of a class's train latents, each under the shrunk Gaussian fitted
    to the other folds (fixed folds: every fold-th image)."""
    total = 0.0
    for fold in range(folds):
        held = torch.zeros(len(means), dtype=torch.bool)
        held[fold::folds] = True
        total += nll(means[held], *shrunk_gaussian(means[~held], stds[~held], pooled, shrinkage)) * int(held.sum())
    return total / len(means)


def compare(data: Path, pipeline_seed: int, work: Path, overrides: dict) -> dict:
    """Latent placement per source (no training), then the synthetic arm on four sources' decoded latents."""
    ctx, _, per_class, pool = oracle_inputs(data, pipeline_seed, overrides)
    params, device, classes = ctx.params, ctx.device, range(ctx.num_classes)
    model = trained_cvae(data, params, ctx.num_classes, pool.images.shape[-1], device)
    decoder, saved = cvae.load(data / paths.GENERATOR / paths.GENERATOR_FILE, device)
    bank = {k: v for k, v in saved["posterior"].items() if k in ("means", "stds", "labels")}
    train, train_labels = bank["means"].double(), bank["labels"]
    pool_means, pool_stds = posteriors(model, pool, device)

    # per class, the pool in order: the first per_class[k] are generator_oracle's images (kept out of both sets
    # below), the next REFERENCE the reference, the rest what the unseen Gaussian is fitted to
    def unseen(k: int, of: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rows = of[torch.from_numpy(pool.labels == k)][per_class.get(k, 0):]
        return rows[:REFERENCE], rows[REFERENCE:]

    def fitted_to_unseen(spread: float) -> dict:
        """Per class, the gaussian prior's Gaussian (class_gaussian) of the unseen posteriors outside the reference."""
        return {k: cvae.class_gaussian(unseen(k, pool_means)[1], unseen(k, pool_stds)[1], spread) for k in classes}

    priors = {"prior standard": None,
              "prior aggregate (train latents)": {**bank, "mix": cvae.PRIOR_MIX["aggregate"]},
              "prior interpolated": {**bank, "mix": cvae.PRIOR_MIX["interpolated"]},
              "prior gaussian, spread 1": {**bank, "mix": 0.0, "spread": 1.0},
              f"prior gaussian, spread {params.train_generator.cvae.prior_spread:g}":
                  {**bank, "mix": 0.0, "spread": params.train_generator.cvae.prior_spread},
              "gaussian fitted to unseen latents, spread 1": {**bank, "mix": 0.0, "spread": 1.0},
              SHRUNK: {**bank, "mix": 0.0, "spread": 1.0},
              UNSEEN_MEAN: {**bank, "mix": 0.0, "spread": 1.0},
              UNSEEN_COVARIANCE: {**bank, "mix": 0.0, "spread": 1.0}}
    unseen_gaussian = fitted_to_unseen(1.0)
    train_stds = bank["stds"].double()
    train_gaussian = {k: cvae.class_gaussian(train[train_labels == k], train_stds[train_labels == k], 1.0)
                      for k in classes}
    pooled = pooled_covariance(train, train_stds, train_labels)
    shrinkage = {k: min(SHRINKAGES, key=lambda a: held_out_nll(train[train_labels == k], train_stds[train_labels == k],
                                                               pooled, a)) for k in classes}
    print(f"pipeline seed {pipeline_seed}, shrinkage per class (held-out likelihood): {shrinkage}", flush=True)
    shrunk_gaussians = {k: shrunk_gaussian(train[train_labels == k], train_stds[train_labels == k], pooled,
                                           shrinkage[k]) for k in classes}
    dim = train.shape[1]
    standard = {k: (torch.zeros(dim, dtype=torch.float64), torch.eye(dim, dtype=torch.float64)) for k in classes}

    # the Gaussians not fitted to the train latents alone (the rest: set_posterior fits them)
    own_gaussians = {"gaussian fitted to unseen latents, spread 1": unseen_gaussian, SHRUNK: shrunk_gaussians,
                     # which of the two, the mean or the covariance, makes the unseen-fitted Gaussian teach more?
                     UNSEEN_MEAN: {k: (unseen_gaussian[k][0], train_gaussian[k][1]) for k in classes},
                     UNSEEN_COVARIANCE: {k: (train_gaussian[k][0], unseen_gaussian[k][1]) for k in classes}}

    def set_prior(name: str) -> None:
        cvae.set_posterior(decoder, priors[name])
        if name in own_gaussians:
            decoder.gaussian = own_gaussians[name]

    reference = {k: unseen(k, pool_means)[0] for k in classes}
    rows: dict[str, list[dict]] = {"unseen images (others)": []}
    for k in classes:
        rest = unseen(k, pool_means)[1]
        rows["unseen images (others)"].append(placement(rest[:PER_SOURCE], train[train_labels == k], reference[k]))
    for name in priors:
        set_prior(name)
        rows[name] = [placement(prior_latents(decoder, k, sample_seeds(pipeline_seed, k, 0, PER_SOURCE)).double(),
                                train[train_labels == k], reference[k]) for k in classes]
        gaussians = decoder.gaussian or (None if decoder.posterior else standard)
        if gaussians:
            for k, row in zip(classes, rows[name]):
                row["unseen_mahalanobis"] = mahalanobis(reference[k], *gaussians[k])
                row["unseen_nll"] = nll(reference[k], *gaussians[k])
    cvae.set_posterior(decoder, priors["prior gaussian, spread 1"])

    def gaussian_latents(k: int, count: int) -> torch.Tensor:
        return prior_latents(decoder, k, sample_seeds(pipeline_seed, k, 0, count))

    rows[REENCODED] = [placement(reencoded(model, gaussian_latents(k, PER_SOURCE), k, device),
                                 train[train_labels == k], reference[k]) for k in classes]
    latent_placement = {name: {key: round(float(np.mean([r[key] for r in per])), 3) for key in per[0]}
                        for name, per in rows.items()}
    for name, figures in latent_placement.items():
        print(f"pipeline seed {pipeline_seed}, {name}: {figures}", flush=True)

    hard = params.model_copy(update={"evaluate": ctx.p.model_copy(update={"synthetic_labels": "hard"})})

    def given(images: Images) -> Context:
        """generator_oracle.py's context: the first images of each class as the synthetic set, true labels."""
        chosen = first_of_each_class(images, per_class, np.ones(len(images), bool))
        return replace(ctx, params=hard, sets=replace(ctx.sets, synthetic=Images(images.images[chosen],
                                                                                   images.labels[chosen])))

    def on_images(draw, folder: str) -> Variant:
        """The synthetic arm, hard labels, on draw(k, n) images of each class k, as many a class as the samples."""
        images = np.concatenate([draw(k, n) for k, n in sorted(per_class.items())])
        labels = np.concatenate([np.full(n, k, np.int64) for k, n in sorted(per_class.items())])
        return Variant(ARM, replace(ctx, params=hard, sets=replace(ctx.sets, synthetic=Images(images, labels))),
                       False, folder)

    def decoded(name: str) -> Variant:
        """The synthetic arm on the decoded latents of prior `name`, drawn as generate draws them."""
        set_prior(name)
        return on_images(lambda k, n: generate_class_range(decoder, k, 0, n, pipeline_seed, device=device),
                         name.split(" (")[0].replace(",", "").replace("'", "").replace(" ", "-"))

    def decoded_reencoded() -> Variant:
        """The synthetic arm on the re-encoded Gaussian's latents, decoded."""
        cvae.set_posterior(decoder, priors["prior gaussian, spread 1"])  # gaussian_latents draws from it
        return on_images(lambda k, n: decode(decoder, reencoded(model, gaussian_latents(k, n), k, device), k, device),
                         f"gaussian-reencoded-{CYCLES}")

    variants = {
        "real_classic (taken)": Variant("real_classic", ctx, True, "taken"),
        f"{ARM} (taken)": Variant(ARM, ctx, True, "taken"),
        # generator_oracle.py's variants, read back where --work is its work folder
        "unseen real, true labels": Variant(ARM, given(pool), False, "unseen-true-labels"),
        "unseen real through the cVAE, true labels": Variant(
            ARM, given(Images(reconstruct(model, pool, device), pool.labels)), False, "through-cvae-true-labels"),
        **{f"{name}, conditioning labels": decoded(name) for name in (
            "prior standard", "prior aggregate (train latents)", "prior gaussian, spread 1",
            "gaussian fitted to unseen latents, spread 1", SHRUNK, UNSEEN_MEAN, UNSEEN_COVARIANCE)},
        f"{REENCODED}, conditioning labels": decoded_reencoded(),
    }
    return {"data": str(data), "pipeline_seed": pipeline_seed, "unseen_per_class": list(per_class.values()),
            "reference_per_class": REFERENCE, "latents_per_source": PER_SOURCE,
            "shrinkage": shrinkage, "latent_placement": latent_placement,
            **train_variants(variants, data, pipeline_seed, work)}


if __name__ == "__main__":
    main()
