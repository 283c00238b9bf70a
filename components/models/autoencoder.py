"""The plain convolutional autoencoder, in its two jobs: the outlier scorer (a bottleneck autoencoder
whose reconstruction error is an image's outlier score) and the denoiser (a U-Net-like denoising
autoencoder); and the functions that use them (build, score, outputs, denoise, export, load).

Images are (N, C, H, W) floats in [-1, 1], C = 1 or 3, any side: the input is padded (edge pixels
repeated) to a multiple of 2**levels and the output cropped back. GroupNorm rather than BatchNorm:
each image is computed on its own, so a result never depends on what else is in its batch.
"""

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from components.errors import DataError
from components.models import model_file
from components.models.cgan import norm
from components.pixels import check_images, to_input, to_uint8

KINDS = ("scorer", "denoiser")


def conv(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride, 1), norm(c_out), nn.SiLU()]


class Up(nn.Module):
    """Doubles the side; with `skip` channels, concatenates the encoder's features of that side."""

    def __init__(self, c_in: int, c_out: int, skip: int):
        super().__init__()
        self.up = nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), norm(c_out), nn.SiLU())
        self.mix = nn.Sequential(*conv(c_out + skip, c_out))

    def forward(self, h: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        h = self.up(h)
        return self.mix(h if skip is None else torch.cat([h, skip], dim=1))


class Autoencoder(nn.Module):
    """images (N, C, size, size) in [-1, 1] -> reconstructions of the same shape.

    latent_dim set (the scorer): the deepest features pass through `latent_dim` dense units and
    nothing bypasses them, so the net can only reproduce what is typical of its training images;
    output tanh-bounded. latent_dim None (the denoiser): fully convolutional, U-Net skips carry each
    side's features across, and the output is the input plus a learned correction (residual
    learning, as in DnCNN): the net learns what to remove rather than to redraw the whole image.
    """

    def __init__(self, channels: int, size: int, width: int = 16, levels: int = 2, latent_dim: int | None = None):
        super().__init__()
        self.channels, self.size = channels, size
        self.arch = {"width": width, "levels": levels, "latent_dim": latent_dim}
        self.bottleneck = latent_dim is not None
        self.multiple = 2 ** levels
        chans = [width * 2 ** i for i in range(levels + 1)]
        self.stem = nn.Sequential(*conv(channels, chans[0]))
        self.down = nn.ModuleList(nn.Sequential(*conv(a, b, stride=2), *conv(b, b)) for a, b in zip(chans, chans[1:]))
        if self.bottleneck:
            self.bottom = (chans[-1], math.ceil(size / self.multiple))
            features = chans[-1] * self.bottom[1] ** 2
            self.squeeze = nn.Linear(features, latent_dim)
            self.expand = nn.Sequential(nn.Linear(latent_dim, features), nn.SiLU())
        skips = chans[:-1] if not self.bottleneck else [0] * levels
        self.up = nn.ModuleList(Up(a, b, s) for a, b, s in zip(chans[:0:-1], chans[-2::-1], skips[::-1]))
        self.head = nn.Conv2d(chans[0], channels, 3, 1, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        height, width = images.shape[-2:]
        if self.bottleneck and (height, width) != (self.size, self.size):
            raise DataError(f"the scorer was trained on {self.size}x{self.size} images, got {height}x{width}")
        extra = [-side % self.multiple for side in (width, height)]
        x = F.pad(images, (0, extra[0], 0, extra[1]), mode="replicate") if any(extra) else images
        features = [self.stem(x)]
        for down in self.down:
            features.append(down(features[-1]))
        h = features.pop()
        if self.bottleneck:
            channels, side = self.bottom
            h = self.expand(self.squeeze(h.flatten(1))).view(len(h), channels, side, side)
        for up in self.up:
            skip = features.pop()
            h = up(h, None if self.bottleneck else skip)
        out = torch.tanh(self.head(h)) if self.bottleneck else x + self.head(h)
        return out[..., :height, :width]


def build(channels: int, size: int, seed: int, width: int, levels: int, latent_dim: int | None = None) -> Autoencoder:
    """The untrained net, on the CPU, initialised from `seed` alone (the global RNG is left as it was)."""
    if channels not in (1, 3) or size < 4:
        raise DataError(f"an autoencoder takes 1 or 3 channels and sides >= 4, got {channels} channels, side {size}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Autoencoder(channels, size, width, levels, latent_dim)


@torch.no_grad()
def reconstruct(model: Autoencoder, images: np.ndarray, batch_size: int, device: torch.device):
    """Yield (start, inputs, outputs) per batch of uint8 (N, H, W, C) images, as floats in [-1, 1] (N, C, H, W)."""
    check_images(images, "the autoencoder", model.channels)
    model.eval()
    for start in range(0, len(images), batch_size):
        x = to_input(images[start:start + batch_size], device)
        yield start, x, model(x).float()


def score(model: Autoencoder, images: np.ndarray, batch_size: int, device: torch.device) -> np.ndarray:
    """Outlier scores (N,) float32: each image's mean squared reconstruction error, pixels in [0, 1]."""
    out = np.empty(len(images), np.float32)
    for start, x, y in reconstruct(model, images, batch_size, device):
        out[start:start + len(x)] = ((y.clamp(-1, 1) - x) / 2).square().flatten(1).mean(1).cpu().numpy()
    return out


def outputs(model: Autoencoder, images: np.ndarray, batch_size: int, device: torch.device) -> np.ndarray:
    """The model's outputs (reconstructions, or denoised images) as uint8 (N, H, W, C)."""
    out = np.empty_like(images)
    for start, x, y in reconstruct(model, images, batch_size, device):
        out[start:start + len(x)] = to_uint8(y)
    return out


def denoise(model: Autoencoder, images: np.ndarray, strength: float, batch_size: int,
            device: torch.device) -> np.ndarray:
    """uint8 (N, H, W, C): (1 - strength) * images + strength * the denoiser's output. Strength 0 returns
    the images themselves (no model run), so the bytes are unchanged."""
    if strength == 0:
        return images
    if strength == 1:
        return outputs(model, images, batch_size, device)
    out = np.empty_like(images)
    for start, x, y in reconstruct(model, images, batch_size, device):
        out[start:start + len(x)] = to_uint8(torch.lerp(x, y.clamp(-1, 1), strength))
    return out



def export(model: Autoencoder, kind: str, step: int) -> dict:
    """What scorer.pt / denoiser.pt hold: the weights and all that is needed to rebuild the model."""
    return model_file.fields(model, kind, step, arch=dict(model.arch), channels=model.channels, size=model.size)


def load(path: Path, kind: str, device: torch.device) -> tuple[Autoencoder, dict]:
    """Rebuild the `kind` model ("scorer" or "denoiser") saved by `export`: (model in eval mode on `device`, fields)."""
    saved = model_file.read(path, kind, f"no trained {kind}; run the train_{kind} stage first")
    return model_file.rebuild(saved, lambda: Autoencoder(saved["channels"], saved["size"], **saved["arch"]),
                              device), saved
