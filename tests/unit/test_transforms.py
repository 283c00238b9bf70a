"""The seeded image pipelines (noise, degrade) and the validation of their params."""

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from components.config.transforms import Blur, DegradeParams, GaussianNoise, Jpeg, NoiseParams, SaltAndPepper
from components.data.transforms import degrade, noise
from components.errors import DataError, ParamsError

OFF_NOISE = NoiseParams(blur=Blur(p=0), gaussian=GaussianNoise(p=0), salt_and_pepper=SaltAndPepper(p=0),
                        jpeg=Jpeg(p=0))
OFF_DEGRADE = DegradeParams(blur=Blur(p=0), gaussian=GaussianNoise(p=0), jpeg=Jpeg(p=0))


def smooth_images(n: int, size: int = 28, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Distinct low-frequency images: random 4x4 grids upsampled, so small shifts keep them recognisable."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (n, 4, 4, channels)).astype(np.float32)
    images = [cv2.resize(c, (size, size), interpolation=cv2.INTER_CUBIC).reshape(size, size, channels) for c in coarse]
    return np.clip(images, 0, 255).astype(np.uint8)


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a.astype(np.float64) - b) ** 2).mean())


def gray(n: int, value: int = 128, size: int = 28) -> np.ndarray:
    return np.full((n, size, size, 1), value, np.uint8)


# noise

@pytest.mark.parametrize("mix", ["each", "one"])
def test_noise_with_every_probability_0_is_the_identity(mix):
    images = smooth_images(20)
    assert np.array_equal(noise(images, OFF_NOISE.model_copy(update={"mix": mix}), seed=3), images)


def test_gaussian_noise_of_std_0_is_the_identity():
    images = smooth_images(20)
    params = OFF_NOISE.model_copy(update={"gaussian": GaussianNoise(std=(0, 0), p=1)})
    assert np.array_equal(noise(images, params, seed=0), images)


def test_stronger_gaussian_noise_moves_images_further_from_the_clean_ones():
    images = smooth_images(50)
    errors = [mse(noise(images, OFF_NOISE.model_copy(update={"gaussian": GaussianNoise(std=(s, s), p=1)}), 0), images)
              for s in (0.02, 0.1, 0.3)]
    assert 0 < errors[0] < errors[1] < errors[2]
    # std is a fraction of 255: 0.1 gives a standard deviation near 25 grey levels (less where clipped).
    assert 15 ** 2 < errors[1] < 30 ** 2


@pytest.mark.parametrize("name, params", [
    ("blur", OFF_NOISE.model_copy(update={"blur": Blur(sigma=(1, 1), p=1)})),
    ("jpeg", OFF_NOISE.model_copy(update={"jpeg": Jpeg(quality=(10, 10), p=1)})),
    ("salt_and_pepper", OFF_NOISE.model_copy(update={"salt_and_pepper": SaltAndPepper(amount=(0.1, 0.1), p=1)})),
])
def test_each_corruption_changes_the_images(name, params):
    images = smooth_images(20)
    assert mse(noise(images, params, seed=0), images) > 1.0


def test_salt_and_pepper_sets_the_given_fraction_of_pixels_to_black_or_white():
    params = OFF_NOISE.model_copy(update={"salt_and_pepper": SaltAndPepper(amount=(0.1, 0.1), p=1)})
    out = noise(gray(20), params, seed=0)
    changed = out != 128
    assert np.isin(out[changed], [0, 255]).all()
    assert 0.07 < changed.mean() < 0.13


def test_corruptions_apply_independently_of_each_other():
    # Two corruptions at p 0.5 each leave 1/4 of the images clean; seeded alike, they would leave 1/2.
    params = OFF_NOISE.model_copy(update={"gaussian": GaussianNoise(std=(0.1, 0.1), p=0.5),
                                          "salt_and_pepper": SaltAndPepper(amount=(0.1, 0.1), p=0.5)})
    out = noise(gray(400), params, seed=0)
    clean = (out == 128).all(axis=(1, 2, 3)).mean()
    assert 0.17 < clean < 0.33


def test_mix_one_applies_exactly_one_corruption_per_image():
    # On mid-grey, salt-and-pepper makes only 0/255 pixels and this Gaussian noise (5 sigma away) none.
    both = OFF_NOISE.model_copy(update={"gaussian": GaussianNoise(std=(0.1, 0.1), p=1),
                                        "salt_and_pepper": SaltAndPepper(amount=(0.1, 0.1), p=1)})
    for mix, expect_both in (("one", False), ("each", True)):
        out = noise(gray(100), both.model_copy(update={"mix": mix}), seed=0).reshape(100, -1)
        extreme = np.isin(out, [0, 255]).any(1)
        moderate = ((out != 128) & ~np.isin(out, [0, 255])).any(1)
        assert (extreme & moderate).all() == expect_both
        if not expect_both:
            assert not (extreme & moderate).any() and extreme.any() and moderate.any()
            assert (extreme | moderate).all()


def test_noise_is_seeded_per_image():
    images = smooth_images(30, channels=3)
    first = noise(images, NoiseParams(), seed=7)
    assert first.shape == images.shape and first.dtype == np.uint8
    assert first.tobytes() == noise(images, NoiseParams(), seed=7).tobytes()
    assert not np.array_equal(first, noise(images, NoiseParams(), seed=8))
    # Image i depends on (seed, i) only: a prefix of the batch gets the same bytes.
    assert np.array_equal(noise(images[:10], NoiseParams(), seed=7), first[:10])


# degrade

@pytest.mark.parametrize("factor, channels", [(2, 1), (4, 3)])
def test_degrade_shrinks_by_the_factor(factor, channels):
    images = smooth_images(8, size=32, channels=channels)
    out = degrade(images, DegradeParams(), factor=factor, seed=0)
    assert out.shape == (8, 32 // factor, 32 // factor, channels) and out.dtype == np.uint8


def test_degrade_handles_non_square_images():
    out = degrade(np.zeros((2, 28, 32, 3), np.uint8), DegradeParams(), factor=4, seed=0)
    assert out.shape == (2, 7, 8, 3)


def test_degrade_without_extras_is_a_plain_downscale():
    images = smooth_images(10)
    params = OFF_DEGRADE.model_copy(update={"interpolations": ["area"]})
    expected = [cv2.resize(image, (14, 14), interpolation=cv2.INTER_AREA)[..., None] for image in images]
    assert np.array_equal(degrade(images, params, factor=2, seed=0), np.stack(expected))


def test_degrade_loses_detail_that_upsampling_back_does_not_restore():
    images = smooth_images(20, size=28)
    detailed = np.clip(images.astype(int) + np.random.default_rng(1).integers(-40, 40, images.shape), 0, 255)
    detailed = detailed.astype(np.uint8)
    low = degrade(detailed, DegradeParams(), factor=2, seed=0)
    back = np.stack([cv2.resize(image, (28, 28), interpolation=cv2.INTER_CUBIC) for image in low])[..., None]
    assert mse(back, detailed) > 100


def test_degrade_picks_among_the_interpolations_per_image():
    # x4, since area and bilinear agree exactly at x2 (both average each 2x2 block).
    images = np.repeat(smooth_images(1, size=32), 60, axis=0)
    out = degrade(images, OFF_DEGRADE, factor=4, seed=0)
    assert len({image.tobytes() for image in out}) == 3


def test_degrade_is_seeded():
    images = smooth_images(20)
    first = degrade(images, DegradeParams(), factor=2, seed=1)
    assert first.tobytes() == degrade(images, DegradeParams(), factor=2, seed=1).tobytes()
    assert not np.array_equal(first, degrade(images, DegradeParams(), factor=2, seed=2))


@pytest.mark.parametrize("factor", [3, 0])
def test_degrade_refuses_a_factor_that_does_not_divide_the_size(factor):
    with pytest.raises(ParamsError, match="divisor"):
        degrade(smooth_images(2, size=28), DegradeParams(), factor=factor, seed=0)


# inputs and params

@pytest.mark.parametrize("bad", [np.zeros((2, 28, 28), np.uint8), np.zeros((2, 28, 28, 1), np.float32),
                                 np.zeros((2, 28, 28, 2), np.uint8)])
def test_transforms_refuse_anything_but_uint8_nhwc_with_1_or_3_channels(bad):
    with pytest.raises(DataError, match="uint8"):
        noise(bad, NoiseParams(), seed=0)


def test_empty_batches_keep_their_shape():
    empty = np.zeros((0, 28, 28, 3), np.uint8)
    assert noise(empty, NoiseParams(), 0).shape == (0, 28, 28, 3)
    assert degrade(empty, DegradeParams(), 4, 0).shape == (0, 7, 7, 3)


def test_negative_seed_is_refused():
    with pytest.raises(ParamsError, match="seed"):
        noise(smooth_images(1), NoiseParams(), seed=-1)


@pytest.mark.parametrize("raw, message", [
    ({"blur": {"sigma": [1.0, 0.5]}}, "low <= high"),
    ({"gaussian": {"std": [0.1, 2.0]}}, r"within \[0.0, 1.0\]"),
    ({"jpeg": {"quality": [0, 50]}}, r"within \[1, 100\]"),
    ({"jpeg": {"p": 1.5}}, "less than or equal to 1"),
    ({"gaussian": {"sigma": [0.1, 0.2]}}, "Extra inputs"),
    ({"mix": "some"}, "'each' or 'one'"),
])
def test_noise_params_name_the_bad_value(raw, message):
    with pytest.raises(ValidationError, match=message):
        NoiseParams.model_validate(raw)


def test_params_read_yaml_lists_and_are_frozen():
    params = DegradeParams.model_validate({"blur": {"sigma": [0.5, 1.0], "p": 1}, "interpolations": ["area"]})
    assert params.blur.sigma == (0.5, 1.0)
    with pytest.raises(ValidationError):
        params.blur.p = 0.0
    with pytest.raises(ValidationError, match="at least 1"):
        DegradeParams(interpolations=[])
