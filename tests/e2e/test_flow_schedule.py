"""The flow's stage scheduling (flows/augment.py: run_stages) on a real Prefect flow run (a temporary server):
a stage starts only after the stages it depends on ended, independent stages overlap, never more than
max_parallel at once, nor more than a global concurrency limit's slots (a missing limit is an error), and a
failed stage fails the flow after the running ones finish."""

import threading
import time

import pytest
from prefect import flow, task
from prefect.testing.utilities import prefect_test_harness

from flows.augment import occupying, run_stages

pytestmark = pytest.mark.e2e  # starts a Prefect server: with the end-to-end tests

# a diamond with a wide middle: prepare -> (t1, t2, t3) -> last
PREDECESSORS = {"prepare": set(), "t1": {"prepare"}, "t2": {"prepare"}, "t3": {"prepare"},
                "last": {"t1", "t2", "t3"}}
ORDER = ["prepare", "t1", "t2", "t3", "last"]
spans: dict[str, tuple[float, float]] = {}
sharing: dict[str, bool] = {}
lock = threading.Lock()


@task
def fake_stage(cwd, stage: str, limit: str | None = None, shared_cores: bool = False) -> None:
    with occupying(limit):  # as run_stage holds it while the stage works
        start = time.monotonic()
        time.sleep(0.5)
        if stage == cwd:  # cwd names the stage to fail
            raise RuntimeError(f"stage {stage} failed")
        with lock:
            spans[stage] = (start, time.monotonic())
            sharing[stage] = shared_cores


@flow
def schedule(max_parallel: int, failing: str = "", limit: str | None = None) -> None:
    run_stages(failing, ORDER, PREDECESSORS, max_parallel, stage_task=fake_stage, limit=limit)


def most_at_once() -> int:
    events = sorted([(s, 1) for s, _ in spans.values()] + [(e, -1) for _, e in spans.values()])
    running = best = 0
    for _, step in events:
        running += step
        best = max(best, running)
    return best


@pytest.fixture(scope="module")
def server():
    with prefect_test_harness():
        yield


def test_stages_wait_for_their_predecessors_and_overlap_up_to_max_parallel(server):
    """...and a stage is told it shares the cores (its threads then wait passively) when another may run beside
    it: not prepare (all wait for it) nor the last stage."""
    for max_parallel in (2, 1):
        spans.clear()
        schedule(max_parallel)
        assert set(spans) == set(ORDER)
        for stage, before in PREDECESSORS.items():
            assert all(spans[p][1] <= spans[stage][0] for p in before), stage
        assert most_at_once() == max_parallel
        assert {s for s, shared in sharing.items() if shared} == ({"t1", "t2", "t3"} if max_parallel > 1 else set())


def test_a_failed_stage_fails_the_flow_and_starts_nothing_after_it(server):
    spans.clear()
    with pytest.raises(RuntimeError, match="stage t1 failed"):
        schedule(3, failing="t1")
    assert "last" not in spans and {"t2", "t3"} <= set(spans)  # the running ones finished


def test_a_global_concurrency_limit_caps_stages_across_the_flow_and_must_exist(server):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    spans.clear()
    with pytest.raises(Exception, match="genaug-gpu"):  # strict: not created yet
        schedule(3, limit="genaug-gpu")
    assert not spans
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name="genaug-gpu", limit=1))
    schedule(3, limit="genaug-gpu")
    assert set(spans) == set(ORDER) and most_at_once() == 1  # max_parallel 3, one slot
