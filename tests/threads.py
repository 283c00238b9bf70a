"""One torch thread for a test module of small nets: import `one_thread` into the module (an autouse fixture)."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Tensors this small gain nothing from threads, and a second thread waiting on a core that another job
    # holds (a 2-core box) stalled every forward pass ~0.3 s: the tests ran ~20x slower. Module scope, so
    # that the module's own fixtures that train models run on one thread too.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
