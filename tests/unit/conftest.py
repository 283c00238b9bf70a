"""Fixtures shared by the unit tests: `one_thread`, which a module of small nets opts into with
`pytestmark = pytest.mark.usefixtures("one_thread")`."""

import pytest
import torch


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
