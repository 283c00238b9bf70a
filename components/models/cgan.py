"""The conditional GAN: a DCGAN-style generator with a class embedding, a spectral-norm discriminator
with projection conditioning, their losses, and the functions that use them (build, sample, load).

Sizes: any even size from 8. The generator starts at a small side (`sides`: 7 for 28, 4 for 14, 32
and 64) and doubles it up to the size, a 4x4 stride-2 transposed convolution per doubling (2s), or a 3x3
one where the next side is odd (2s - 1: 4 -> 7 on the way to 14); the discriminator mirrors it.
Images are (N, C, H, W) floats in [-1, 1], C = 1 or 3.
"""

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from components.config.generator import GeneratorParams
from components.models import model_file

KIND = "cgan"
MISSING = "no trained generator; run the train_generator stage first"


def sides(size: int) -> list[int]:
    """The sides of the generator's feature maps, coarsest first, ending at `size`: `size` halved
    exactly while the half stays >= 4 (28: 7, 14, 28; 32: 4, 8, 16, 32). A size that halves exactly
    only once (14 = 2 x 7) is halved once more, rounding up, where that stays >= 4 (14: 4, 7, 14): so
    a generator at half of 28 has the depth of the one at 28, not a single layer."""
    out = [size]
    while out[0] % 2 == 0 and out[0] // 2 >= 4:
        out.insert(0, out[0] // 2)
    if len(out) == 2 and (out[0] + 1) // 2 >= 4:
        out.insert(0, (out[0] + 1) // 2)
    return out


def num_upsamples(size: int) -> int:
    """How many times the generator doubles its side (the discriminator halves it as often)."""
    return len(sides(size)) - 1


def kernel(side: int) -> int:
    """Kernel of the stride-2 (transposed) convolution between a side and its double: 4 when the fine
    side is even (2s), 3 when it is odd (2s - 1); padding 1 either way."""
    return 4 if side % 2 == 0 else 3


def widths(params: GeneratorParams) -> list[int]:
    """Channels per resolution, coarsest first: width at size/2, doubled at each coarser one, capped."""
    k = num_upsamples(params.size)
    return [min(params.max_width, params.width * 2 ** (k - 1 - i)) for i in range(k)]


class Generator(nn.Module):
    """z (N, latent_dim) and labels (N,) -> images (N, C, size, size) in [-1, 1].

    GroupNorm rather than BatchNorm: each sample is computed on its own (no batch statistics), so
    train and eval behave alike, the EMA copy needs no running stats, and a sample does not depend
    on what else is in its batch.
    """

    def __init__(self, params: GeneratorParams, num_classes: int, channels: int):
        super().__init__()
        self.size, self.channels, self.num_classes = params.size, channels, num_classes
        self.latent_dim = params.latent_dim
        chans, fine = widths(params), sides(params.size)[1:]
        self.start = sides(params.size)[0]
        self.embed = nn.Embedding(num_classes, params.embed_dim)
        self.project = nn.Linear(params.latent_dim + params.embed_dim, chans[0] * self.start ** 2)
        layers: list[nn.Module] = [norm(chans[0]), nn.ReLU()]
        for c_in, c_out, side in zip(chans, chans[1:], fine):
            layers += [nn.ConvTranspose2d(c_in, c_out, kernel(side), 2, 1, bias=False), norm(c_out), nn.ReLU()]
        layers += [nn.ConvTranspose2d(chans[-1], channels, kernel(params.size), 2, 1), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.project(torch.cat([z, self.embed(labels)], dim=1))
        return self.body(h.view(len(z), -1, self.start, self.start))


def norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(32, channels // 4) or 1, channels)


class Discriminator(nn.Module):
    """images (N, C, size, size) and labels (N,) -> logits (N,): positive means real.

    Projection conditioning (Miyato & Koyama 2018): logit = w.h + embed(label).h on the flattened
    features h; spectral norm on every weight keeps D Lipschitz, which is what stabilises hinge loss.
    """

    def __init__(self, params: GeneratorParams, num_classes: int, channels: int):
        super().__init__()
        chans, fine = widths(params)[::-1], sides(params.size)[:0:-1]  # finest first
        layers: list[nn.Module] = []
        for c_in, c_out, side in zip([channels] + chans[:-1], chans, fine):
            layers += [spectral_norm(nn.Conv2d(c_in, c_out, kernel(side), 2, 1)), nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*layers)
        features = chans[-1] * sides(params.size)[0] ** 2
        self.linear = spectral_norm(nn.Linear(features, 1))
        self.embed = spectral_norm(nn.Embedding(num_classes, features))

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.body(images).flatten(1)
        return self.linear(h).squeeze(1) + (self.embed(labels) * h).sum(1)


def build(params: GeneratorParams, num_classes: int, channels: int, seed: int) -> tuple[Generator, Discriminator]:
    """Both networks, on the CPU, initialised from `seed` alone (the global RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Generator(params, num_classes, channels), Discriminator(params, num_classes, channels)


def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """Discriminator loss on the logits of real and fake images; smoothing is one-sided (real side)."""
    real, fake = real.float(), fake.float()
    if kind == "hinge":
        return F.relu((1.0 - smoothing) - real).mean() + F.relu(1.0 + fake).mean()
    target = torch.full_like(real, 1.0 - smoothing)
    return F.binary_cross_entropy_with_logits(real, target) + F.softplus(fake).mean()


def g_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    fake = fake.float()
    if kind == "hinge":
        return -fake.mean()
    return F.softplus(-fake).mean()


@torch.no_grad()
def sample(generator: Generator, labels: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] for the given labels and latents (same length), in eval mode."""
    was_training = generator.training
    generator.eval()
    try:
        return generator(latents, labels).float()
    finally:
        generator.train(was_training)



def export(generator: Generator, params: GeneratorParams, class_names: list[str], step: int) -> dict:
    """What generator.pt holds: the weights and all that is needed to rebuild the model."""
    return model_file.fields(generator, KIND, step, arch=params.model_dump(mode="json"),
                             class_names=list(class_names), channels=generator.channels)


def load(path: Path, device: torch.device) -> tuple[Generator, dict]:
    """Rebuild the generator saved by `export`; returns it (eval mode, on `device`) and the file's fields."""
    return from_saved(model_file.read(path, KIND, MISSING), device)


def from_saved(saved: dict, device: torch.device) -> tuple[Generator, dict]:
    """The generator in the fields `model_file.read` gave (as `load`)."""
    params = GeneratorParams.model_validate(saved["arch"])
    return model_file.rebuild(saved, lambda: Generator(params, len(saved["class_names"]), saved["channels"]),
                              device), saved
