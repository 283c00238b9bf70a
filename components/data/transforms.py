"""Seeded image pipelines on uint8 (N, H, W, C) batches: `noise` (what a denoiser learns to remove)
and `degrade` (what an upscaler learns to invert). The classifiers' classic augmentation is done in torch on
the batch instead (components/models/augment.py).

The one module that imports albumentations: 2.0.8 is its last MIT release, so its API stays behind the
two functions here and can be replaced in one place. Image i of a batch is transformed with its own
random state, drawn from (seed, i) alone: the same call gives the same bytes, whatever ran before.
"""

import os

# albumentations checks PyPI for a newer version on import; the pipeline runs without network.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from components.config.transforms import (  # noqa: E402
    Blur, DegradeParams, GaussianNoise, Jpeg, Mix, NoiseParams)
from components.errors import ParamsError  # noqa: E402
from components.pixels import check_images  # noqa: E402

INTERPOLATIONS = {"area": cv2.INTER_AREA, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}


def noise(images: np.ndarray, params: NoiseParams, seed: int) -> np.ndarray:
    """The images with the corruption of `params` (blur, Gaussian noise, salt-and-pepper, JPEG)."""
    check_images(images, "transforms")
    optional = [blur(params.blur), gaussian(params.gaussian),
                A.SaltAndPepper(amount=params.salt_and_pepper.amount, p=params.salt_and_pepper.p),
                jpeg(params.jpeg)]
    return run(A.Compose(mixed(optional, params.mix), strict=True), images, seed, images.shape[1:])


def degrade(images: np.ndarray, params: DegradeParams, factor: int, seed: int) -> np.ndarray:
    """Low-resolution versions (N, H/factor, W/factor, C) of the images, degraded as in `params`."""
    check_images(images, "transforms")
    height, width = images.shape[1:3]
    if factor < 1 or height % factor or width % factor:
        raise ParamsError(f"degrade: factor {factor} must be a whole divisor of the image size "
                          f"{height}x{width}; choose a factor that divides both sides")
    down = A.OneOf([A.Resize(height // factor, width // factor, interpolation=INTERPOLATIONS[name], p=1.0)
                    for name in params.interpolations], p=1.0)
    if params.mix == "each":
        steps = [blur(params.blur), down, gaussian(params.gaussian), jpeg(params.jpeg)]
    else:
        steps = [down, *mixed([blur(params.blur), gaussian(params.gaussian), jpeg(params.jpeg)], "one")]
    return run(A.Compose(steps, strict=True), images, seed, (height // factor, width // factor, images.shape[3]))


def blur(params: Blur) -> A.GaussianBlur:
    return A.GaussianBlur(sigma_limit=params.sigma, p=params.p)


def gaussian(params: GaussianNoise) -> A.GaussNoise:
    return A.GaussNoise(std_range=params.std, p=params.p)


def jpeg(params: Jpeg) -> A.ImageCompression:
    return A.ImageCompression(compression_type="jpeg", quality_range=params.quality, p=params.p)


def mixed(transforms: list[A.BasicTransform], mix: Mix) -> list:
    """`each`: the transforms as they are; `one`: one of those with p > 0, weighted by p."""
    if mix == "each":
        return transforms
    live = [t for t in transforms if t.p > 0]
    return [A.OneOf(live, p=1.0)] if live else []


def run(pipeline: A.Compose, images: np.ndarray, seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """Apply `pipeline` to each image with the random state of (seed, index); `shape` is one output's."""
    if seed < 0:
        raise ParamsError(f"transform seed must be >= 0, got {seed}")
    nodes = walk(pipeline)
    out = np.empty((len(images), *shape), np.uint8)
    for index, image in enumerate(images):
        reseed(nodes, seed, index)
        out[index] = pipeline(image=image)["image"]
    return out


def walk(node) -> list:
    """`node` and every transform under it, parents first."""
    return [node] + [n for child in getattr(node, "transforms", []) for n in walk(child)]


def reseed(nodes: list, seed: int, index: int) -> None:
    # Compose.set_random_seed hands the same seed to every transform, so their draws move together
    # (one uniform number decides whether each applies): give each node a seed of its own. Parents
    # come first, so a compose passing its seed down is overridden by its children's own.
    states = np.random.SeedSequence([seed, index]).generate_state(len(nodes))
    for node, state in zip(nodes, states):
        node.set_random_seed(int(state))

