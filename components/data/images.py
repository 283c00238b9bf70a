"""Pixels of one image: decode a file with Pillow, and fit images to the prepared size and channel count.

Every decoded image becomes 8-bit "L" (1 channel) or "RGB" (3 channels) first, whatever its mode;
fitting then converts channels (RGB->L by luminance, L->RGB by repetition) and resizes to a square.
"""

from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

SIXTEEN_BIT_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N"}
ALPHA_MODES = {"LA": "L", "La": "L", "RGBA": "RGB", "RGBa": "RGB"}
GRAY_MODES = {"1", "F"}


class BadImage(Exception):
    """A file that is not a readable image; the message is the reason, for the skip report."""


class Fitted(NamedTuple):
    pixels: np.ndarray  # (size, size, channels) uint8
    resized: bool
    converted: bool


def read_image(path: Path) -> Image.Image:
    """Decode the whole file now (so a truncated file fails here) into an 8-bit L or RGB image."""
    try:
        with Image.open(path) as img:
            check_pixel_count(img)
            img.load()
            return to_8bit(img)
    except BadImage:
        raise
    except FileNotFoundError as e:
        raise BadImage("file not found") from e
    except IsADirectoryError as e:
        raise BadImage("a folder, not an image file") from e
    except UnidentifiedImageError as e:
        raise BadImage("not an image Pillow can read") from e
    # Pillow's decoders report corrupt data with many exception types (OSError, SyntaxError,
    # ValueError, DecompressionBombError, ...); each one means this file cannot be used.
    except Exception as e:
        raise BadImage(f"corrupt or truncated image ({e})") from e


def check_pixel_count(img: Image.Image) -> None:
    """Refuse, before decoding, an image whose header claims more pixels than Pillow's decompression-bomb limit
    (a small file that would decode to gigabytes): Pillow itself only warns up to twice that limit."""
    limit = Image.MAX_IMAGE_PIXELS
    width, height = img.size
    if limit and width * height > limit:
        raise BadImage(f"too large to decode: {width} x {height} = {width * height:,} pixels, more than the "
                       f"{limit:,} allowed (a decompression bomb, or a huge photo: shrink it to a few hundred "
                       "pixels a side)")


def to_8bit(img: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit L or RGB: 16-bit scaled down, palette expanded, alpha composited on black."""
    if img.mode in ("L", "RGB"):
        return img
    if img.mode in SIXTEEN_BIT_MODES:
        return Image.fromarray(scale_16bit(np.asarray(img)))
    if img.mode in ("P", "PA"):
        img = img.convert("RGBA")
    if img.mode in ALPHA_MODES:
        return flatten_alpha(img)
    if img.mode in GRAY_MODES:
        return img.convert("L")
    return img.convert("RGB")


def scale_16bit(pixels: np.ndarray) -> np.ndarray:
    wide = np.clip(pixels, 0, 65535).astype(np.uint32)
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)


def flatten_alpha(img: Image.Image) -> Image.Image:
    """Composite on black: transparent pixels may hold any colour, and black keeps them at 0
    (premultiplied alpha), as the dark background of MNIST-style data."""
    mode = ALPHA_MODES[img.mode]
    img = img.convert(mode + "A")
    out = Image.new(mode, img.size, 0)
    out.paste(img.convert(mode), mask=img.getchannel("A"))
    return out


def fit_image(img: Image.Image, size: int, channels: int) -> Fitted:
    """An 8-bit L or RGB image as a (size, size, channels) array; non-square images are stretched."""
    target_mode = "L" if channels == 1 else "RGB"
    converted = img.mode != target_mode
    if converted:
        img = img.convert(target_mode)
    resized = img.size != (size, size)
    if resized:
        img = img.resize((size, size), resample_filter(img.size, size))
    pixels = np.asarray(img)
    return Fitted(pixels[..., None] if channels == 1 else pixels, resized, converted)


def resample_filter(current: tuple[int, int], size: int) -> Image.Resampling:
    """Lanczos when shrinking (Pillow widens its support, so it averages like an area filter), bicubic
    when only enlarging (Lanczos rings more there)."""
    if max(current) > size:
        return Image.Resampling.LANCZOS
    return Image.Resampling.BICUBIC


def fit_gray_stack(images: np.ndarray, size: int, channels: int) -> tuple[np.ndarray, int, int]:
    """(N, H, W) uint8 grayscale as (N, size, size, channels); returns it with the resized and converted counts.

    Without a resize this is vectorised; resizing goes through Pillow image by image.
    """
    n, height, width = images.shape
    resized = (height, width) != (size, size)
    if resized:
        out = np.empty((n, size, size), np.uint8)
        for i, image in enumerate(tqdm(images, desc="resizing images", unit="img", leave=False, disable=None)):
            out[i] = fit_image(Image.fromarray(image), size, 1).pixels[..., 0]
        images = out
    stacked = np.repeat(images[..., None], channels, axis=-1)
    return stacked, n * resized, n * (channels != 1)
