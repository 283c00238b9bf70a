"""The conditional VAE: an encoder q(z | x, y) giving a mean and log-variance, a decoder p(x | z, y),
their losses (reconstruction under a Bernoulli or Gaussian likelihood, KL to the prior), and the
functions that use them (build, export, load).

The decoder offers the cGAN generator's sampling interface (latent_dim, size, channels, num_classes
and forward(z, labels) -> images in [-1, 1]), so components/generation/sample.py and the generate
stage sample either model alike: class k's samples are decoded from prior latents with label k. With
the aggregate or interpolated prior the decoder also carries `posterior`: per class, the (means, stds)
of its train images' posteriors, which sample.py draws latents from, and `posterior_mix`: how far a latent
may move towards a second train image's mean (0: aggregate; 0.5: anywhere between the two); with the
gaussian prior, `gaussian`: per class, the Gaussian fitted to those posteriors.
Sizes, as for the cGAN: any even size from 8; the sides, kernels and widths are the cGAN's.
"""

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from components import ranks
from components.config.generator import GeneratorParams
from components.models import model_file
from components.models.cgan import MISSING, kernel, norm, sides, widths

KIND = "cvae"
# The Gaussian likelihood's noise scale is fitted per batch; this floor (half a grey level in [-1, 1]
# units) keeps a perfect reconstruction from driving its log to minus infinity.
MIN_SIGMA = 1 / 255


class Encoder(nn.Module):
    """images (N, C, size, size) in [-1, 1] and labels (N,) -> (mean, log-variance), each (N, latent_dim).

    The label enters twice: as one-hot planes beside the pixels (the convolutions see it) and as an
    embedding beside the flattened features.
    """

    def __init__(self, params: GeneratorParams, num_classes: int, channels: int):
        super().__init__()
        self.num_classes = num_classes
        chans, fine = widths(params)[::-1], sides(params.size)[:0:-1]  # finest first, as the cGAN's discriminator
        layers: list[nn.Module] = []
        for c_in, c_out, side in zip([channels + num_classes] + chans[:-1], chans, fine):
            layers += [nn.Conv2d(c_in, c_out, kernel(side), 2, 1), norm(c_out), nn.SiLU()]
        self.body = nn.Sequential(*layers)
        features = chans[-1] * sides(params.size)[0] ** 2
        self.embed = nn.Embedding(num_classes, params.embed_dim)
        self.head = nn.Linear(features + params.embed_dim, 2 * params.latent_dim)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        planes = F.one_hot(labels, self.num_classes).to(images.dtype)[:, :, None, None]
        x = torch.cat([images, planes.expand(-1, -1, *images.shape[2:])], dim=1)
        h = torch.cat([self.body(x).flatten(1), self.embed(labels)], dim=1)
        mean, logvar = self.head(h).chunk(2, dim=1)
        return mean, logvar.clamp(-30, 20)  # exp() stays finite in float32


class Decoder(nn.Module):
    """z (N, latent_dim) and labels (N,) -> images (N, C, size, size) in [-1, 1]; `logits` gives the
    raw outputs the likelihoods are computed from (image = 2 * sigmoid(logits) - 1)."""

    def __init__(self, params: GeneratorParams, num_classes: int, channels: int):
        super().__init__()
        self.size, self.channels, self.num_classes = params.size, channels, num_classes
        self.latent_dim = params.latent_dim
        self.posterior: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = None  # the aggregate prior
        self.posterior_mix = 0.0
        self.gaussian: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = None  # the gaussian prior
        chans, fine = widths(params), sides(params.size)[1:]
        self.start = sides(params.size)[0]
        self.embed = nn.Embedding(num_classes, params.embed_dim)
        self.project = nn.Linear(params.latent_dim + params.embed_dim, chans[0] * self.start ** 2)
        layers: list[nn.Module] = [norm(chans[0]), nn.SiLU()]
        for c_in, c_out, side in zip(chans, chans[1:], fine):
            layers += [nn.ConvTranspose2d(c_in, c_out, kernel(side), 2, 1), norm(c_out), nn.SiLU()]
        layers += [nn.ConvTranspose2d(chans[-1], channels, kernel(params.size), 2, 1)]
        self.body = nn.Sequential(*layers)

    def logits(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.project(torch.cat([z, self.embed(labels)], dim=1))
        return self.body(h.view(len(z), -1, self.start, self.start))

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return to_image(self.logits(z, labels))


class CVAE(nn.Module):
    """Both halves, as the one module the training loop optimises (and keeps an EMA of)."""

    def __init__(self, params: GeneratorParams, num_classes: int, channels: int):
        super().__init__()
        self.encoder = Encoder(params, num_classes, channels)
        self.decoder = Decoder(params, num_classes, channels)

    def forward(self, images: torch.Tensor, labels: torch.Tensor,
                eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(decoder logits, mean, log-variance); z = mean + sigma * eps (the reparameterisation), with eps
        standard normal noise (N, latent_dim) the caller draws from its own generator."""
        mean, logvar = self.encoder(images, labels)
        z = mean + torch.exp(0.5 * logvar) * eps
        return self.decoder.logits(z, labels), mean, logvar


def to_image(logits: torch.Tensor) -> torch.Tensor:
    """The mean of the likelihood, in [-1, 1]: 2 * sigmoid(logits) - 1, which is tanh(logits / 2)."""
    return torch.tanh(logits / 2)


def build(params: GeneratorParams, num_classes: int, channels: int, seed: int) -> CVAE:
    """The untrained cVAE, on the CPU, initialised from `seed` alone (the global RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CVAE(params, num_classes, channels)


def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per sample (N,), in nats: 0.5 * sum(mean^2 + var - 1 - logvar)."""
    return 0.5 * (mean.float() ** 2 + logvar.float().exp() - 1 - logvar.float()).sum(dim=1)


def reconstruction_nll(logits: torch.Tensor, images: torch.Tensor, likelihood: str) -> torch.Tensor:
    """-log p(images | z) per sample (N,), in nats, for images in [-1, 1].

    bernoulli: each pixel's intensity in [0, 1] is the target of a Bernoulli with these logits (the
    usual binary cross-entropy, which has a floor above 0 for grey pixels). gaussian: each pixel is
    Normal(2 * sigmoid(logits) - 1, sigma) with one sigma for the batch, set to its maximum-likelihood
    value (the root mean squared error; not differentiated through).
    """
    logits, images = logits.float(), images.float()
    if likelihood == "bernoulli":
        nll = F.binary_cross_entropy_with_logits(logits, (images + 1) / 2, reduction="none")
        return nll.flatten(1).sum(dim=1)
    squared = (to_image(logits) - images) ** 2
    sigma = ranks.mean(squared.mean().detach()).sqrt().clamp_min(MIN_SIGMA)  # the global batch's, under torchrun
    per_pixel = squared / (2 * sigma ** 2) + torch.log(sigma) + 0.5 * math.log(2 * math.pi)
    return per_pixel.flatten(1).sum(dim=1)


PRIOR_MIX = {"aggregate": 0.0, "interpolated": 0.5, "gaussian": 0.0}  # train_generator.cvae.prior -> posterior_mix


@torch.no_grad()
def encode(model: CVAE, images: torch.Tensor, labels: torch.Tensor, prior: str, batch_size: int = 512,
           spread: float = 1.0) -> dict:
    """The posteriors of `images` (in [-1, 1]) as the `prior` (aggregate, interpolated or gaussian):
    {"means", "stds", "labels", "mix"}, on the CPU; for gaussian also "spread" (its Gaussians are fitted to the
    posteriors where the decoder is given them: set_posterior)."""
    model.eval()
    means, logvars = zip(*(model.encoder(images[i:i + batch_size], labels[i:i + batch_size])
                           for i in range(0, len(labels), batch_size)))
    return {"means": torch.cat(means).float().cpu(), "stds": torch.cat(logvars).float().mul(0.5).exp().cpu(),
            "labels": labels.cpu(), "mix": PRIOR_MIX[prior], **({"spread": float(spread)} if prior == "gaussian" else {})}


def set_posterior(decoder: Decoder, posterior: dict | None) -> Decoder:
    """Give the decoder the prior `encode` made (None: the standard normal prior): `posterior`, per class its
    train images' (means, stds); with a "spread", `gaussian` too, per class the (centre, factor) of class_gaussian."""
    decoder.posterior = None if posterior is None else {
        int(k): (posterior["means"][posterior["labels"] == k], posterior["stds"][posterior["labels"] == k])
        for k in range(decoder.num_classes)}
    decoder.posterior_mix = 0.0 if posterior is None else float(posterior["mix"])
    decoder.gaussian = None if posterior is None or "spread" not in posterior else {
        k: class_gaussian(means, stds, posterior["spread"]) for k, (means, stds) in decoder.posterior.items()
        if len(means)}
    return decoder


def class_gaussian(means: torch.Tensor, stds: torch.Tensor, spread: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(centre, factor), float64: the mean of the mixture of the posteriors N(means[i], diag(stds[i]^2)) and
    `spread` times a Cholesky factor of its covariance (the means' covariance plus their mean variance, so
    positive definite as every std is above 0). A latent is centre + factor @ noise."""
    return means.double().mean(0), spread * torch.linalg.cholesky(mixture_covariance(means, stds))


def mixture_covariance(means: torch.Tensor, stds: torch.Tensor) -> torch.Tensor:
    """float64: the covariance of the mixture of the posteriors N(means[i], diag(stds[i]^2)), the means' covariance
    plus their mean variance."""
    m, var = means.double(), stds.double() ** 2
    return torch.cov(m.T, correction=0).reshape(m.shape[1], -1) + torch.diag(var.mean(0))


def export(model: CVAE, params: GeneratorParams, class_names: list[str], step: int,
           posterior: dict | None = None) -> dict:
    """What generator.pt holds for a cVAE: the decoder's weights and all needed to rebuild it (the
    encoder is only for training and stays in the checkpoints), and the aggregate prior if one is used."""
    return model_file.fields(model.decoder, KIND, step, arch=params.model_dump(mode="json"),
                             class_names=list(class_names), channels=model.decoder.channels,
                             posterior=posterior)


def load(path: Path, device: torch.device) -> tuple[Decoder, dict]:
    """Rebuild the decoder saved by `export`; returns it (eval mode, on `device`) and the file's fields."""
    return from_saved(model_file.read(path, KIND, MISSING), device)


def from_saved(saved: dict, device: torch.device) -> tuple[Decoder, dict]:
    """The decoder in the fields `model_file.read` gave (as `load`)."""
    params = GeneratorParams.model_validate(saved["arch"])
    decoder = model_file.rebuild(saved, lambda: Decoder(params, len(saved["class_names"]), saved["channels"]),
                                 device)
    return set_posterior(decoder, saved.get("posterior")), saved
