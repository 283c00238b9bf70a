"""The Prefect driver of the pipeline: each dvc.yaml stage is a task (skipped when DVC finds it up to
date), submitted once the stages it depends on are done, so that independent stages (the trainers) run at
once, at most `max_parallel` of them; then the dataset card and metrics become artifacts, then the dataset is
versioned (unless the release gate refuses it: the flow then completes with the refusal as an artifact).
dvc.lock ends as `dvc repro` writes it.

    python -m flows.augment                      # run once, locally
    prefect deploy && prefect deployment run augment/default   # on a work pool (see prefect.yaml)
"""

import os
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.futures import as_completed
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.concurrency.sync import concurrency
from prefect.states import Completed

from components import paths, pipeline
from components.config import load_params
from components.errors import GateRefused
from components.stages import version
from components.workspace import hold


# A stage that fails is tried once more (a killed worker process, a full disk freed meanwhile); the tests set
# GENAUG_STAGE_RETRIES=0 so that a stage failing once fails them.
STAGE_RETRIES = int(os.environ.get("GENAUG_STAGE_RETRIES", "1"))


@task(retries=STAGE_RETRIES, retry_delay_seconds=5)
def run_stage(cwd: Path, stage: str, limit: str | None = None, shared_cores: bool = False):
    logger = get_run_logger()
    with occupying(limit):  # DVC's check of an up-to-date stage takes a moment of the slot, no more
        ran = pipeline.repro_stage(cwd, stage, on_line=logger.info, shared_cores=shared_cores)
    if not ran:
        logger.info("stage %s is up to date: skipped", stage)
        return Completed(message="skipped: up to date")
    return Completed(message="ran")


def occupying(limit: str | None):
    """One slot of the Prefect global concurrency limit `limit` while a stage works (none: no limit). Strict:
    a limit that does not exist fails the stage, rather than letting every flow on the box run unlimited."""
    return concurrency(limit, occupy=1, strict=True) if limit else nullcontext()


@task
def publish(cwd: Path) -> None:
    card = cwd / paths.AUGMENTED / paths.CARD
    if card.exists():
        create_markdown_artifact(key="dataset-card", markdown=card.read_text(),
                                 description="data/augmented: counts per class and source")
    report = cwd / paths.EVALUATE_PLOTS / "report.md"
    if report.exists():
        grid = report.with_name("samples.png")
        extra = pipeline.image_markdown(grid, "Samples per class: real, then synthetic") if grid.exists() else ""
        create_markdown_artifact(key="evaluation", markdown=report.read_text() + "\n" + extra,
                                 description="evaluate: downstream arms, lift, generative metrics, samples")
    rows = pipeline.metrics_rows(cwd)
    if rows:
        create_table_artifact(key="metrics", table=rows, description="metrics/*.json of this run")
    images, tables = pipeline.plot_files(cwd)
    for image in images:
        name = image.relative_to(cwd).as_posix()
        create_markdown_artifact(key=pipeline.artifact_key(name), markdown=pipeline.image_markdown(image, name),
                                 description=name)
    for table in tables:
        name = table.relative_to(cwd).as_posix()
        create_table_artifact(key=pipeline.artifact_key(name), table=pipeline.csv_rows(table),
                              description=f"{name}: the training curves (dvc plots show draws them)")


@task
def version_dataset(cwd: Path, tag: str | None) -> dict:
    """The version made, or the release gate's refusal: the pipeline's verdict, published, not a failure."""
    try:
        return version.run(load_params(cwd / paths.PARAMS), tag=tag, cwd=cwd)
    except GateRefused as refused:
        get_run_logger().warning("%s", refused)
        create_markdown_artifact(key="release-gate", markdown=f"# Release gate\n\n{refused}\n",
                                 description="version: no new dataset version")
        return {"tag": None, "created": False, "refused": str(refused)}


@flow(name="augment", log_prints=True)
def augment(overrides: dict[str, Any] | None = None, make_version: bool = True,
            tag: str | None = None, repo_dir: str = ".", max_parallel: int | None = None,
            concurrency_limit: str | None = None) -> dict | None:
    """Run the pipeline; `overrides` maps dotted params keys to values, written into params.yaml;
    `max_parallel`: stages at once (default: the machine's CPU cores, at most 4); `concurrency_limit`: a Prefect
    global concurrency limit that every working stage holds a slot of (shared by all flows on a GPU box: create
    it first, `prefect gcl create genaug-gpu --limit 1`; one that does not exist fails the stage)."""
    cwd = Path(repo_dir).resolve()
    with hold(cwd, "the Prefect flow augment"):  # the stages it starts inherit the lock
        pipeline.apply_overrides(cwd, overrides)
        order, before = pipeline.stage_order(cwd), pipeline.lock_stages(cwd)
        try:
            run_stages(cwd, order, pipeline.stage_predecessors(cwd), stages_at_once(cwd, max_parallel),
                       limit=concurrency_limit)
        finally:
            pipeline.restore_lock_order(cwd, before, order)
        publish(cwd)
        return version_dataset(cwd, tag) if make_version else None


def run_stages(cwd: Path, order: list[str], predecessors: dict[str, set[str]], max_parallel: int,
               stage_task=run_stage, limit: str | None = None) -> None:
    """Submit `stage_task` for each stage (in `order`) once its predecessors are done, keeping at most
    `max_parallel` running, each holding a slot of the global concurrency limit `limit` while it works, and told
    whether it shares the cores (another stage is running, or one still to start does not wait for it); a failed
    stage stops new submissions, lets the running ones finish, and fails the flow."""
    pending, submitted, running, done = list(order), {}, {}, set()
    waits_for = {stage: upstream(stage, predecessors) for stage in order}
    while pending or running:
        for stage in [s for s in pending if predecessors[s] <= done][:max_parallel - len(running)]:
            pending.remove(stage)
            task_run = stage_task.with_options(name=stage, task_run_name=stage)
            shared = max_parallel > 1 and (bool(running) or any(stage not in waits_for[p] for p in pending))
            # wait_for: already done, but it draws the DAG's edges in the Prefect UI
            submitted[stage] = running[stage] = task_run.submit(
                cwd, stage, limit, shared, wait_for=[submitted[p] for p in predecessors[stage] if p in submitted])
        if not running:
            raise RuntimeError(f"stages {pending} wait on stages that never run: {predecessors}")
        finished = next(as_completed(list(running.values())))
        stage = next(s for s, future in running.items() if future is finished)
        del running[stage]
        try:
            finished.result()  # raises the stage's error
        except Exception:
            for future in running.values():
                future.wait()
            raise
        done.add(stage)


def upstream(stage: str, predecessors: dict[str, set[str]]) -> set[str]:
    """Every stage `stage` waits for, directly or through others."""
    found, todo = set(), list(predecessors[stage])
    while todo:
        other = todo.pop()
        if other not in found:
            found.add(other)
            todo.extend(predecessors[other])
    return found


def stages_at_once(cwd: Path, max_parallel: int | None) -> int:
    """`max_parallel`, or default_parallel(), lowered where stages training in bf16 would share the CPU's cores
    (pipeline.stages_at_once says why, in the flow's log)."""
    import torch

    requested = max_parallel or default_parallel()
    count, why = pipeline.stages_at_once(requested, pipeline.bf16_cpu_trainers(cwd), os.cpu_count() or 1,
                                         torch.get_num_threads())
    if why:
        get_run_logger().warning(why)
    return count


def default_parallel() -> int:
    """Stages at once by default: on a CPU-only machine, as many as its cores hold at torch's threads per stage
    (1 where torch takes every core, as it does by default); with CUDA, up to 4 (the GPU does the work).
    Fewer threads per stage would run more at once, but torch's CPU results change with the thread count, so
    the outputs (and dvc.lock) would no longer be those of `dvc repro`."""
    import torch

    if torch.cuda.is_available():
        return max(1, min(os.cpu_count() or 1, 4))
    return max(1, (os.cpu_count() or 1) // torch.get_num_threads())


if __name__ == "__main__":
    augment()
