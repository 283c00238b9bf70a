"""Params of the image transforms (components/data/transforms.py): the noise a denoiser learns to remove,
the degradations an upscaler learns to invert, and the classic augmentation of the classifiers.

They nest in the stage sections of params.yaml, for example:

    train_denoiser:
      noise:
        mix: each
        gaussian: {std: [0.04, 0.12], p: 0.8}
        blur: {sigma: [0.3, 0.8], p: 0.3}

A range `[low, high]` is drawn from uniformly per image; `p` is the chance that a transform applies to an
image. Defaults suit 28x28 Fashion-MNIST: a sigma or a hole that is small on a large photo wipes out
a 28-pixel garment.
"""

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from components.config.base import Section

Probability = Annotated[float, Field(ge=0, le=1)]

# How the optional transforms of a pipeline combine. each: every one applies on its own, with its own
# probability. one: exactly one applies per image, picked with weights proportional to the
# probabilities (none when they are all 0).
Mix = Literal["each", "one"]


def span(low: float, high: float, kind: type = float) -> type:
    """A `(low, high)` range of `kind`, ordered, and within [low, high]."""

    def check(value: tuple) -> tuple:
        first, last = value
        if first > last:
            raise ValueError("must be [low, high] with low <= high; swap the two values")
        if first < low or last > high:
            raise ValueError(f"must lie within [{low}, {high}]")
        return value

    return Annotated[tuple[kind, kind], AfterValidator(check)]


class GaussianNoise(Section):
    std: span(0.0, 1.0) = (0.04, 0.12)   # fraction of the largest pixel value (255)
    p: Probability = 0.8


class SaltAndPepper(Section):
    amount: span(0.0, 1.0) = (0.005, 0.03)  # fraction of pixels set to black or white
    p: Probability = 0.3


class Blur(Section):
    sigma: span(0.1, 10.0) = (0.3, 0.8)  # Gaussian blur, in pixels
    p: Probability = 0.3


class Jpeg(Section):
    quality: span(1, 100, int) = (50, 90)
    p: Probability = 0.3


class NoiseParams(Section):
    """The corruption a denoising autoencoder learns to remove; applied in the order blur, Gaussian
    noise, salt-and-pepper, JPEG."""

    mix: Mix = "each"
    blur: Blur = Blur()
    gaussian: GaussianNoise = GaussianNoise()
    salt_and_pepper: SaltAndPepper = SaltAndPepper()
    jpeg: Jpeg = Jpeg()


class DegradeParams(Section):
    """What a super-resolution net learns to invert: blur, then a downscale by the upscaler's factor
    with one of `interpolations` (picked per image; at x2 area and bilinear give the same pixels),
    then Gaussian noise and JPEG. With mix `one`, the downscale comes first and then one of blur,
    noise or JPEG."""

    mix: Mix = "each"
    blur: Blur = Blur(sigma=(0.2, 0.6), p=0.5)
    interpolations: list[Literal["area", "bilinear", "bicubic"]] = Field(
        ["area", "bilinear", "bicubic"], min_length=1)
    gaussian: GaussianNoise = GaussianNoise(std=(0.01, 0.04), p=0.3)
    jpeg: Jpeg = Jpeg(quality=(60, 95), p=0.3)


class Erase(Section):
    """Random erasing (cutout): one black square of `size` x the side, in a share `p` of the images."""

    p: Probability = 0.5
    size: float = Field(0.4, gt=0, le=1)


class ClassicParams(Section):
    """The classic augmentation of the classifiers (the judge and evaluate's *_classic arms), done in torch
    on each batch (components/models/augment.py): a pad-and-crop shift, a horizontal flip, one erased
    square. Set `hflip: false` for data whose mirror image is another class or no class (digits, letters)."""

    shift: int = Field(2, ge=0, le=64)   # pixels each way (pad and crop); 0: no shift
    hflip: bool = True
    erase: Erase = Erase()
