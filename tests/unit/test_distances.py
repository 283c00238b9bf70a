"""Distances between feature sets: Fréchet distance, KID, precision/recall and the real-vs-real floor."""

import numpy as np
import pytest
import scipy.linalg
import torch
from torchmetrics.image.kid import poly_mmd

from components.errors import DataError
from components.metrics import distances
from components.metrics.distances import (
    frechet_distance, kernel_inception_distance, polynomial_mmd, precision_recall, real_floor)


def gaussian(n: int, dim: int, seed: int, mean: float | np.ndarray = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)) + mean


def with_moments(n: int, mean: np.ndarray, cov: np.ndarray, seed: int) -> np.ndarray:
    """n samples whose sample mean and (N-1) covariance are exactly `mean` and `cov`."""
    x = gaussian(n, len(mean), seed)
    x -= x.mean(0)
    x = x @ np.linalg.inv(np.linalg.cholesky(np.cov(x, rowvar=False))).T
    return x @ np.linalg.cholesky(cov).T + mean


def closed_form_fd(mu1, cov1, mu2, cov2) -> float:
    """The textbook formula with scipy's general matrix square root: an independent computation."""
    root = scipy.linalg.sqrtm(cov1 @ cov2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(cov1 + cov2 - 2 * root))


def random_cov(dim: int, seed: int) -> np.ndarray:
    m = np.random.default_rng(seed).normal(size=(dim, dim))
    return m @ m.T / dim + 0.1 * np.eye(dim)


# Fréchet distance

def test_fd_of_a_set_with_itself_is_zero():
    a = gaussian(500, 16, seed=0) * 3 + 2
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def test_fd_of_gaussians_with_known_moments_matches_the_closed_form():
    mu1, mu2 = np.arange(6.0), np.arange(6.0)[::-1]
    cov1, cov2 = random_cov(6, seed=1), random_cov(6, seed=2)
    fd = frechet_distance(with_moments(400, mu1, cov1, 3), with_moments(300, mu2, cov2, 4))
    assert fd == pytest.approx(closed_form_fd(mu1, cov1, mu2, cov2), rel=1e-9)


def test_fd_of_diagonal_gaussians_is_the_sum_of_mean_and_std_gaps():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    var1, var2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    fd = frechet_distance(with_moments(200, mu1, np.diag(var1), 0), with_moments(200, mu2, np.diag(var2), 1))
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(var1) - np.sqrt(var2)) ** 2).sum()
    assert fd == pytest.approx(expected, rel=1e-9)  # 1+0+4 + 1+0+4


def test_fd_of_a_shifted_copy_is_the_squared_shift():
    a = gaussian(300, 8, seed=0)
    shift = np.linspace(-1, 1, 8)
    assert frechet_distance(a, a + shift) == pytest.approx((shift ** 2).sum(), rel=1e-9)


def test_fd_works_with_fewer_samples_than_dimensions():
    a, b = gaussian(20, 64, seed=0), gaussian(20, 64, seed=1)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    same, far = frechet_distance(a, b), frechet_distance(a, b + 3)
    assert np.isfinite(same) and 0 < same < far
    assert far - same == pytest.approx(64 * 9, rel=0.05)


def test_fd_of_one_dimensional_features():
    a = gaussian(100, 1, seed=0)
    # means m and 2m + 1, stds s and 2s: (m + 1)^2 + (2s - s)^2
    expected = (a.mean() + 1) ** 2 + np.var(a, ddof=1)
    assert frechet_distance(a, 2 * a + 1) == pytest.approx(expected, rel=1e-9)


# KID

def test_kid_of_one_distribution_is_near_zero_and_far_sets_score_high():
    a, b = gaussian(400, 16, seed=0), gaussian(400, 16, seed=1)
    mean, std = kernel_inception_distance(a, b, subset_size=200, subsets=20, seed=0)
    assert abs(mean) < 0.02 and std >= 0
    far, _ = kernel_inception_distance(a, b + 2, subset_size=200, subsets=20, seed=0)
    assert far > 1.0 > 50 * abs(mean)


def test_kid_estimator_agrees_with_torchmetrics():
    x, y = gaussian(50, 8, seed=0), gaussian(50, 8, seed=1, mean=0.5)
    expected = poly_mmd(torch.from_numpy(x), torch.from_numpy(y)).item()
    assert polynomial_mmd(x, y) == pytest.approx(expected, rel=1e-10)


def test_kid_clamps_the_subset_to_the_smaller_set_and_is_seeded():
    small, large = gaussian(7, 4, seed=0), gaussian(500, 4, seed=1, mean=1.0)
    first = kernel_inception_distance(small, large, subset_size=1000, subsets=10, seed=3)
    assert np.isfinite(first).all()
    assert first == kernel_inception_distance(small, large, subset_size=1000, subsets=10, seed=3)
    assert first != kernel_inception_distance(small, large, subset_size=1000, subsets=10, seed=4)


# precision / recall

def test_precision_and_recall_of_a_set_with_itself_are_one():
    a = gaussian(300, 10, seed=0)
    assert precision_recall(a, a, k=3) == (1.0, 1.0)


def test_precision_and_recall_of_far_apart_sets_are_zero():
    assert precision_recall(gaussian(200, 10, seed=0), gaussian(200, 10, seed=1, mean=50.0)) == (0.0, 0.0)


def test_fakes_covering_one_of_two_modes_are_precise_but_recall_half():
    mode_a, mode_b = gaussian(200, 5, seed=0), gaussian(200, 5, seed=1, mean=30.0)
    real = np.concatenate([mode_a, mode_b])
    fake = gaussian(200, 5, seed=2)  # only mode a
    precision, recall = precision_recall(real, fake, k=3)
    assert precision > 0.9
    assert 0.4 < recall < 0.55


def test_precision_recall_do_not_depend_on_the_block_size(monkeypatch):
    real, fake = gaussian(150, 6, seed=0), gaussian(120, 6, seed=1, mean=0.7)
    whole = precision_recall(real, fake, k=5)
    monkeypatch.setattr(distances, "BLOCK_ELEMENTS", 1000)  # blocks of a few rows
    assert precision_recall(real, fake, k=5) == whole
    assert 0 < whole[0] < 1 and 0 < whole[1] < 1


# real floor

def test_real_floor_is_small_against_a_shifted_set_and_seeded():
    real = gaussian(600, 8, seed=0)
    floor = real_floor(real, seed=0)
    assert 0 < floor < frechet_distance(real[:300], real[300:] + 1) / 4
    assert floor == real_floor(real, seed=0) != real_floor(real, seed=1)


# bad input

@pytest.mark.parametrize("call, message", [
    (lambda: frechet_distance(np.zeros((5, 3)), np.zeros((5, 4))), "differ in dimension"),
    (lambda: frechet_distance(np.zeros((1, 3)), np.zeros((5, 3))), "at least 2"),
    (lambda: frechet_distance(np.zeros(5), np.zeros(5)), r"\(N, D\)"),
    (lambda: frechet_distance(np.full((5, 2), np.nan), np.zeros((5, 2))), "NaN"),
    (lambda: precision_recall(np.zeros((3, 2)), np.zeros((9, 2)), k=3), "real feature set has 3"),
    (lambda: kernel_inception_distance(np.zeros((5, 2)), np.zeros((5, 2)), subset_size=1), "subset_size"),
    (lambda: real_floor(np.zeros((3, 2))), "at least 4"),
])
def test_bad_feature_sets_raise_a_named_error(call, message):
    with pytest.raises(DataError, match=message):
        call()
