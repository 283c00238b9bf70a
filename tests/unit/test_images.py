"""Decoding image files of any mode to 8-bit L/RGB, and fitting images to the prepared size and channels."""

import numpy as np
import pytest
from PIL import Image

from components.data.images import BadImage, fit_gray_stack, fit_image, read_image, resample_filter
from tests.imagegen import gray_stack, truncate, write_image


@pytest.mark.parametrize("name, mode", [("a.png", "L"), ("a.png", "RGB"), ("a.jpg", "L"), ("a.jpeg", "RGB")])
def test_reads_png_and_jpeg_in_gray_and_rgb(tmp_path, name, mode):
    image = read_image(write_image(tmp_path / name, width=10, height=7, mode=mode))
    assert image.mode == mode and image.size == (10, 7)


@pytest.mark.parametrize("name", ["a.png", "a.jpg"])
def test_truncated_files_are_bad(tmp_path, name):
    path = truncate(write_image(tmp_path / name, width=32, height=32, mode="RGB"), keep=0.6)
    with pytest.raises(BadImage, match="truncated"):
        read_image(path)


def test_an_image_past_the_pixel_limit_is_refused_before_decoding(tmp_path, monkeypatch):
    """A decompression bomb is a small file whose header claims a huge image: named as too large, not corrupt.
    The limit is lowered here so that the test does not need gigabytes."""
    path = write_image(tmp_path / "bomb.png", width=100, height=50, mode="L")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 4000)
    with pytest.raises(BadImage, match=r"too large to decode: 100 x 50 = 5,000 pixels, more than the 4,000 allowed"):
        read_image(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)
    assert read_image(path).size == (100, 50)


def test_non_image_and_missing_files_are_bad(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not pixels")
    with pytest.raises(BadImage, match="not an image"):
        read_image(text)
    with pytest.raises(BadImage, match="not found"):
        read_image(tmp_path / "gone.png")


def test_16_bit_png_is_scaled_to_8_bit(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.array([[0, 257, 32896, 65535]], np.uint16)).save(path)
    image = read_image(path)
    assert image.mode == "L"
    assert np.asarray(image).tolist() == [[0, 1, 128, 255]]


def test_alpha_is_composited_on_black(tmp_path):
    path = tmp_path / "alpha.png"
    rgba = np.array([[[200, 100, 50, 255], [200, 100, 50, 0], [200, 100, 50, 128]]], np.uint8)
    Image.fromarray(rgba, "RGBA").save(path)
    out = np.asarray(read_image(path))
    assert out[0, 0].tolist() == [200, 100, 50]
    assert out[0, 1].tolist() == [0, 0, 0]
    assert np.abs(out[0, 2].astype(int) - [100, 50, 25]).max() <= 1


def test_gray_alpha_palette_and_bilevel_images(tmp_path):
    la = tmp_path / "la.png"
    Image.fromarray(np.array([[[90, 255], [90, 0]]], np.uint8), "LA").save(la)
    assert read_image(la).mode == "L" and np.asarray(read_image(la)).tolist() == [[90, 0]]

    palette = tmp_path / "p.png"
    rgb = Image.fromarray(np.array([[[10, 20, 30], [40, 50, 60]]], np.uint8))
    rgb.convert("P", palette=Image.Palette.ADAPTIVE).save(palette)
    assert read_image(palette).mode == "RGB"
    assert np.asarray(read_image(palette))[0, 0].tolist() == [10, 20, 30]

    bilevel = tmp_path / "b.png"
    Image.fromarray(np.array([[True, False]])).save(bilevel)
    assert np.asarray(read_image(bilevel)).tolist() == [[255, 0]]


def test_rgb_to_gray_by_luminance_and_gray_to_rgb_by_repetition():
    red = Image.new("RGB", (4, 4), (255, 0, 0))
    fitted = fit_image(red, 4, 1)
    assert fitted.pixels.shape == (4, 4, 1) and fitted.converted and not fitted.resized
    assert fitted.pixels[0, 0, 0] == 76  # 0.299 * 255

    gray = Image.new("L", (4, 4), 77)
    fitted = fit_image(gray, 4, 3)
    assert fitted.pixels.shape == (4, 4, 3) and fitted.converted
    assert (fitted.pixels == 77).all()


def test_same_size_and_mode_is_untouched():
    image = Image.fromarray(gray_stack(1, size=5)[0])
    fitted = fit_image(image, 5, 1)
    assert not fitted.resized and not fitted.converted
    assert (fitted.pixels[..., 0] == np.asarray(image)).all()


def test_non_square_images_are_stretched_to_the_square():
    fitted = fit_image(Image.new("RGB", (30, 10)), 16, 3)
    assert fitted.pixels.shape == (16, 16, 3) and fitted.resized


def test_downscaling_averages_instead_of_sampling():
    checker = (np.indices((56, 56)).sum(axis=0) % 2 * 255).astype(np.uint8)
    small = fit_image(Image.fromarray(checker), 28, 1).pixels
    assert np.abs(small.astype(int) - 128).max() <= 5  # nearest-neighbour would give 0s and 255s


def test_filter_is_lanczos_to_shrink_and_bicubic_to_enlarge():
    assert resample_filter((56, 56), 28) == Image.Resampling.LANCZOS
    assert resample_filter((40, 10), 28) == Image.Resampling.LANCZOS
    assert resample_filter((8, 8), 28) == Image.Resampling.BICUBIC


def test_gray_stack_without_resize_is_a_copy_with_counts():
    stack = gray_stack(5, size=6)
    out, resized, converted = fit_gray_stack(stack, 6, 1)
    assert out.shape == (5, 6, 6, 1) and (out[..., 0] == stack).all()
    assert (resized, converted) == (0, 0)
    out, resized, converted = fit_gray_stack(stack, 6, 3)
    assert out.shape == (5, 6, 6, 3) and (out == stack[..., None]).all()
    assert (resized, converted) == (0, 5)


def test_gray_stack_resize_matches_pillow_per_image():
    stack = gray_stack(3, size=6)
    out, resized, converted = fit_gray_stack(stack, 12, 3)
    assert out.shape == (3, 12, 12, 3) and (resized, converted) == (3, 3)
    expected = np.asarray(Image.fromarray(stack[1]).resize((12, 12), Image.Resampling.BICUBIC))
    assert (out[1, :, :, 2] == expected).all()
