"""Pixel fidelity of restored images against their originals: PSNR and SSIM on uint8 (N, H, W, C) arrays,
as super-resolution papers report them (means over images; SSIM with torchmetrics' Gaussian 11x11 window)."""

import numpy as np
import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from components.errors import DataError
from components.pixels import psnr_uint8


def psnr(images: np.ndarray, targets: np.ndarray) -> float:
    """Mean over images of 10 log10(255^2 / MSE), in dB."""
    return psnr_uint8(*pair(images, targets))


def ssim(images: np.ndarray, targets: np.ndarray) -> float:
    """Mean structural similarity (1: identical), channels averaged."""
    images, targets = pair(images, targets)
    if min(images.shape[1:3]) < 11:
        raise DataError(f"SSIM's 11x11 window needs images of at least 11x11, got {images.shape[1]}x{images.shape[2]}")
    as_tensor = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).double()  # noqa: E731
    return float(structural_similarity_index_measure(as_tensor(images), as_tensor(targets), data_range=255.0))


def fidelity(images: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """{"psnr": dB, "ssim": ...}, rounded for a metrics file."""
    return {"psnr": round(psnr(images, targets), 3), "ssim": round(ssim(images, targets), 4)}


def pair(images: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    for name, a in (("images", images), ("targets", targets)):
        if not isinstance(a, np.ndarray) or a.dtype != np.uint8 or a.ndim != 4:
            raise DataError(f"{name}: expected uint8 (N, H, W, C), got {getattr(a, 'dtype', type(a))} "
                            f"{getattr(a, 'shape', '')}")
    if images.shape != targets.shape or len(images) == 0:
        raise DataError(f"images {images.shape} and targets {targets.shape} must have the same, non-empty shape")
    return images, targets
