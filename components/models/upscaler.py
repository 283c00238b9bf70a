"""The super-resolution net, ESPCN/EDSR-like: residual blocks at the low resolution, then a convolution
and PixelShuffle per x2 (once for x2, twice for x4), added to a bicubic upsampling of the input; and the
functions that use it (build, apply, bicubic, export, load).

The net predicts what bicubic misses. Its last convolution starts at zero, so the untrained net is
bicubic upsampling exactly: training starts from the baseline it has to beat. No normalisation layers
(EDSR drops them for SR): each image is computed on its own, whatever else is in its batch.
Images are (N, C, h, w) floats in [-1, 1] in and (N, C, h*factor, w*factor) out, C = 1 or 3.
"""

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from components.device import autocast
from components.errors import DataError
from components.models import model_file
from components.pixels import check_images, to_input, to_uint8

KIND = "upscaler"
FACTORS = (2, 4)


class ResBlock(nn.Module):
    """conv 3x3, ReLU, conv 3x3, plus the input."""

    def __init__(self, width: int):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class Upscaler(nn.Module):
    def __init__(self, factor: int, channels: int, width: int = 32, blocks: int = 4):
        super().__init__()
        if factor not in FACTORS or channels not in (1, 3):
            raise DataError(f"the upscaler takes factor {FACTORS} and 1 or 3 channels, got x{factor}, {channels}")
        self.factor, self.channels, self.width, self.blocks = factor, channels, width, blocks
        self.head = nn.Conv2d(channels, width, 3, padding=1)
        self.body = nn.Sequential(*(ResBlock(width) for _ in range(blocks)), nn.Conv2d(width, width, 3, padding=1))
        doublings = factor.bit_length() - 1
        self.up = nn.Sequential(*(layer for _ in range(doublings)
                                  for layer in (nn.Conv2d(width, 4 * width, 3, padding=1), nn.PixelShuffle(2))))
        self.tail = nn.Conv2d(width, channels, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x)
        h = h + self.body(h)
        return upsample(x, self.factor) + self.tail(self.up(h))


def upsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Bicubic upsampling of (N, C, h, w), the baseline (and the net's starting point)."""
    return F.interpolate(x, scale_factor=factor, mode="bicubic", align_corners=False)


def build(factor: int, channels: int, width: int, blocks: int, seed: int) -> Upscaler:
    """The untrained net (bicubic upsampling), on the CPU, initialised from `seed` alone (the global RNG
    is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Upscaler(factor, channels, width, blocks)




def apply(model: Upscaler, images: np.ndarray, batch_size: int, device: torch.device) -> np.ndarray:
    """uint8 (N, h, w, C) -> uint8 (N, h*factor, w*factor, C), `batch_size` images per forward pass (so
    memory is bounded by the batch, not by N), in eval mode; the model's mode is restored."""
    if images.ndim == 4 and images.shape[-1] != model.channels:
        raise DataError(f"the upscaler was trained on {model.channels}-channel images, got {images.shape}")
    was_training = model.training
    model.eval()
    try:
        return batched(model, images, model.factor, batch_size, device)
    finally:
        model.train(was_training)


def bicubic(images: np.ndarray, factor: int, batch_size: int = 256, device: torch.device = torch.device("cpu")) -> np.ndarray:
    """The baseline: uint8 (N, h, w, C) upsampled by `factor`, bicubic, computed as the net's own base."""
    return batched(lambda x: upsample(x, factor), images, factor, batch_size, device)


@torch.no_grad()
def batched(function, images: np.ndarray, factor: int, batch_size: int, device: torch.device) -> np.ndarray:
    check_images(images, "upscaling")
    if batch_size < 1:
        raise DataError(f"batch_size must be >= 1, got {batch_size}")
    n, h, w, c = images.shape
    out = np.empty((n, h * factor, w * factor, c), np.uint8)
    for start in range(0, n, batch_size):
        x = to_input(images[start:start + batch_size], device)
        with autocast(device):
            out[start:start + len(x)] = to_uint8(function(x))
    return out


def export(model: Upscaler, step: int) -> dict:
    """What upscaler.pt holds: the weights and all that is needed to rebuild the net."""
    return model_file.fields(model, KIND, step, arch={"factor": model.factor, "channels": model.channels,
                                                      "width": model.width, "blocks": model.blocks})


def load(path: Path, device: torch.device) -> tuple[Upscaler, dict]:
    """Rebuild the net saved by `export`; returns it (eval mode, on `device`) and the file's fields."""
    saved = model_file.read(path, KIND, "no trained upscaler; run the train_upscaler stage first")
    return model_file.rebuild(saved, lambda: Upscaler(**saved["arch"]), device), saved
