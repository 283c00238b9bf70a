"""The class-conditional diffusion model (DDPM, Ho et al. 2020): a small U-Net that predicts the noise added to an
image, its cosine noise schedule (Nichol and Dhariwal, 2021), and the DDIM sampler (eta 0) that turns noise into
images (build, export, load).

`Sampler` offers the cGAN generator's sampling interface (latent_dim, size, channels, num_classes and
forward(z, labels) -> images in [-1, 1]), so components/generation/sample.py and the generate stage sample it
like the other kinds: its latent is the starting noise, one value per pixel (latent_dim = channels x size x size),
drawn per sample as theirs are, and the sampler's steps are deterministic from there. The U-Net works at full, half
and quarter size: the side must be a multiple of 4 (28 for Fashion-MNIST: 28 -> 14 -> 7).
"""

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from components.config.generator import DiffusionParams, GeneratorParams
from components.models import model_file
from components.models.cgan import MISSING

KIND = "diffusion"


class Block(nn.Module):
    """A residual block whose first convolution's output is shifted by the time-and-class embedding."""

    def __init__(self, cin: int, cout: int, embedding: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups(cin), cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.shift = nn.Linear(embedding, cout)
        self.norm2, self.conv2 = nn.GroupNorm(groups(cout), cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.shift(e)[:, :, None, None]
        return self.conv2(F.silu(self.norm2(h))) + self.skip(x)


def groups(channels: int) -> int:
    """GroupNorm's groups: up to 8, of at least 2 channels each. A group of one channel would subtract the bias of
    the convolution before it, whose gradient is then rounding noise that Adam scales up to full steps."""
    return next(g for g in (8, 4, 2, 1) if channels % g == 0 and (channels // g >= 2 or g == 1))


class UNet(nn.Module):
    """Noise prediction eps(x_t, t, y): three levels with skips between them, the time and the class as one
    embedding added in every block. Trained with label dropout, label `num_classes` is "no class"."""

    def __init__(self, channels: int, num_classes: int, p: DiffusionParams):
        super().__init__()
        w, e = p.width, p.embedding
        self.half, self.num_classes = e // 2, num_classes
        self.time = nn.Sequential(nn.Linear(e, e), nn.SiLU(), nn.Linear(e, e))
        # the "no class" row only where it is learnt, so that models without it keep their initial weights
        self.label = nn.Embedding(num_classes + (p.label_dropout > 0), e)
        self.inp = nn.Conv2d(channels, w, 3, padding=1)
        self.down = nn.ModuleList([Block(w, w, e), Block(w, 2 * w, e), Block(2 * w, 2 * w, e)])
        self.middle = Block(2 * w, 2 * w, e)
        self.up = nn.ModuleList([Block(4 * w, 2 * w, e), Block(4 * w, w, e), Block(2 * w, w, e)])
        self.out = nn.Sequential(nn.GroupNorm(groups(w), w), nn.SiLU(), nn.Conv2d(w, channels, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        freqs = torch.exp(-math.log(1e4) * torch.arange(self.half, device=x.device) / self.half)
        angles = t[:, None].float() * freqs[None]
        e = self.time(torch.cat([angles.sin(), angles.cos()], 1)) + self.label(y)
        skips, h = [], self.inp(x)
        for i, block in enumerate(self.down):
            h = block(F.avg_pool2d(h, 2) if i else h, e)
            skips.append(h)
        h = self.middle(h, e)
        for i, block in enumerate(self.up):
            h = block(torch.cat([F.interpolate(h, scale_factor=2) if i else h, skips.pop()], 1), e)
        return self.out(h)


def alpha_bar(timesteps: int) -> torch.Tensor:
    """The cosine schedule's cumulative signal share at each timestep 0 .. timesteps-1."""
    s = torch.linspace(0, 1, timesteps + 1, dtype=torch.float64)
    f = torch.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2
    return (f[1:] / f[0]).clamp(min=1e-5).float()


def noised(x: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    """x_t: the images in [-1, 1] at timesteps t, with this noise."""
    a = abar[t][:, None, None, None]
    return a.sqrt() * x + (1 - a).sqrt() * noise


class Sampler(nn.Module):
    """The trained U-Net and its schedule, sampling with DDIM (eta 0) in `sample_steps` steps from the latent,
    guided by `guidance` (1: the class-conditional prediction alone)."""

    def __init__(self, net: UNet, params: GeneratorParams, recipe: DiffusionParams):
        super().__init__()
        self.net = net
        self.register_buffer("abar", alpha_bar(recipe.timesteps), persistent=False)
        self.size, self.channels, self.num_classes = params.size, net.inp.in_channels, net.num_classes
        self.latent_dim = self.channels * params.size * params.size
        self.sample_steps, self.guidance = recipe.sample_steps, recipe.guidance

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x = z.float().view(len(z), self.channels, self.size, self.size)
        times = torch.linspace(len(self.abar) - 1, 0, self.sample_steps).round().long().tolist()
        for t, after in zip(times, [*times[1:], None]):
            a = self.abar[t]
            eps = self.noise(x, t, labels)
            x0 = ((x - (1 - a).sqrt() * eps) / a.sqrt()).clamp(-1, 1)
            if after is not None:  # the next, less noisy step; the last step's estimate is the image
                b = self.abar[after]
                x = b.sqrt() * x0 + (1 - b).sqrt() * (x - a.sqrt() * x0) / (1 - a).sqrt()
        return x0

    def noise(self, x: torch.Tensor, t: int, labels: torch.Tensor) -> torch.Tensor:
        """The (guided) noise prediction at timestep t."""
        times = torch.full((len(x),), t, device=x.device)
        if self.guidance == 1:
            return self.net(x, times, labels).float()
        unconditional = torch.full_like(labels, self.num_classes)
        conditional, free = self.net(torch.cat([x, x]), torch.cat([times, times]),
                                     torch.cat([labels, unconditional])).float().chunk(2)
        return free + self.guidance * (conditional - free)


def build(recipe: DiffusionParams, num_classes: int, channels: int, seed: int) -> UNet:
    """The untrained U-Net, on the CPU, initialised from `seed` alone (the global RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet(channels, num_classes, recipe)


def export(net: UNet, params: GeneratorParams, recipe: DiffusionParams, class_names: list[str], step: int) -> dict:
    """What generator.pt holds: the U-Net's weights and all needed to rebuild the sampler around it."""
    return model_file.fields(net, KIND, step, arch=params.model_dump(mode="json"),
                             recipe=recipe.model_dump(mode="json"), class_names=list(class_names),
                             channels=net.inp.in_channels)


def load(path: Path, device: torch.device) -> tuple[Sampler, dict]:
    """Rebuild the sampler saved by `export`; returns it (eval mode, on `device`) and the file's fields."""
    return from_saved(model_file.read(path, KIND, MISSING), device)


def from_saved(saved: dict, device: torch.device) -> tuple[Sampler, dict]:
    """The sampler in the fields `model_file.read` gave (as `load`)."""
    params = GeneratorParams.model_validate(saved["arch"])
    recipe = DiffusionParams.model_validate(saved["recipe"])
    net = model_file.rebuild(saved, lambda: UNet(saved["channels"], len(saved["class_names"]), recipe), device)
    return Sampler(net, params, recipe).to(device).eval(), saved
