"""Fixtures shared by the unit tests: `one_thread`, which a module of small nets opts into with
`pytestmark = pytest.mark.usefixtures("one_thread")`, and `digits`, three classes of scikit-learn's digits that
the generators' tests train on."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

DIGITS = [0, 1, 7]


@pytest.fixture(scope="module")
def one_thread():
    # Tensors this small gain nothing from threads, and a second thread waiting on a core that another job
    # holds (a 2-core box) stalled every forward pass ~0.3 s: the tests ran ~20x slower. Module scope, so
    # that the module's own fixtures that train models run on one thread too (pytest sets up a module's
    # usefixtures before the fixtures its tests ask for). Opt-in, not autouse: the other modules keep
    # torch's default threads.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """The 8x8 digits 0, 1 and 7 as uint8 (N, 8, 8, 1) images and their labels 0, 1, 2."""
    data = load_digits()
    keep = np.isin(data.target, DIGITS)
    images = np.round(data.images[keep] * (255 / 16)).astype(np.uint8)[..., None]
    return images, np.searchsorted(DIGITS, data.target[keep]).astype(np.int64)
