"""Pixel and seed conventions, in one place: images are stored as uint8 (N, H, W, C) arrays (the shard
layout); models take float (N, C, H, W) tensors in [-1, 1]. Here are the conversions between the two,
the resize that brings real images to the generator's size, the input check, the per-stream seeds and
the PSNR (two kinds, named for what they average)."""

import numpy as np
import torch
import torch.nn.functional as F

from components.errors import DataError

# A perfect copy has an infinite PSNR; flooring the MSE keeps it finite (and a metrics file valid JSON).
MSE_FLOOR = 1e-10


def to_signed(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels (any layout) -> float in [-1, 1]."""
    return pixels.float().div_(127.5).sub_(1.0)


def to_input(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float (N, C, H, W) in [-1, 1] on `device` (converted there: 4x less to copy)."""
    return to_signed(torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2))


def to_device(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (N, H, W, C) -> uint8 (N, C, H, W) on `device`, contiguous: data moved once, scaled per batch."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous().to(device)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float (N, C, H, W) in [-1, 1] (values outside are clipped) -> uint8 (N, H, W, C) numpy, the shard layout."""
    pixels = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def resize(pixels: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, C, H, W) to (N, C, size, size); unchanged when already that size. A whole-number
    downscale (28 -> 14 for a generator at half the target size) averages each block of pixels (area),
    the low-resolution images the upscaler learns to invert; other sizes: antialiased bilinear."""
    height, width = pixels.shape[-2:]
    if (height, width) == (size, size):
        return pixels.contiguous()
    whole = height % size == 0 and width % size == 0
    mode = {"mode": "area"} if whole else {"mode": "bilinear", "antialias": True, "align_corners": False}
    out = [F.interpolate(chunk.float(), size=(size, size), **mode).round_().clamp_(0, 255).to(torch.uint8)
           for chunk in pixels.split(4096)]
    return torch.cat(out)


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """`resize` on uint8 (N, H, W, C) arrays: (N, size, size, C)."""
    pixels = resize(torch.from_numpy(np.array(images)).permute(0, 3, 1, 2), size)  # a writable copy
    return pixels.permute(0, 2, 3, 1).contiguous().numpy()


def check_images(images: np.ndarray, who: str, channels: int | None = None, min_side: int = 1) -> None:
    """DataError unless `images` is uint8 (N, H, W, C) with C `channels` (1 or 3 when None) and sides >= min_side."""
    ok = (isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 4
          and (images.shape[-1] == channels if channels else images.shape[-1] in (1, 3))
          and min(images.shape[1:3]) >= min_side)
    if not ok:
        shown = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
        sides = f" with sides >= {min_side}" if min_side > 1 else ""
        raise DataError(f"{who} takes uint8 images shaped (N, H, W, {channels or '1 or 3'}){sides}, got {shown}")


def stream_seed(seed: int, *key: int) -> int:
    """A seed of its own for each use of randomness (the callers' keys name the use), from the run's seed alone."""
    return int(np.random.SeedSequence([seed, *key]).generate_state(1)[0])


def psnr_per_image(images: torch.Tensor, targets: torch.Tensor, peak: float) -> torch.Tensor:
    """The mean over images of each image's PSNR in dB (as super-resolution papers report it)."""
    mse = (images - targets).square().flatten(1).mean(dim=1).clamp_min(MSE_FLOOR)
    return (10 * torch.log10(peak ** 2 / mse)).mean()


def psnr_pooled(images: torch.Tensor, targets: torch.Tensor, peak: float) -> torch.Tensor:
    """The PSNR in dB of the mean squared error over all pixels of all images."""
    return 10 * torch.log10(peak ** 2 / (images - targets).square().mean().clamp_min(MSE_FLOOR))


def psnr_uint8(images: np.ndarray, targets: np.ndarray, pooled: bool = False) -> float:
    """`psnr_per_image` (or `psnr_pooled`) of uint8 arrays, in float64, peak 255."""
    pair = torch.from_numpy(np.asarray(images)).double(), torch.from_numpy(np.asarray(targets)).double()
    return float((psnr_pooled if pooled else psnr_per_image)(*pair, peak=255.0))
