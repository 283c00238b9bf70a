"""A training stage in several processes: with its `nproc` N > 1 the stage starts itself N times under torchrun
(--standalone, on this machine: one process per GPU, or N on the CPU with gloo) and DDP trains one model: each
process takes its slice of every batch (components/ranks.py); rank 0 writes the checkpoints and the outputs.
With N = 1 the stage trains in its own process, as it always has; where its params leave it nothing to
train, nothing_to_train writes what stands for the model."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
import yaml

from components import paths, ranks
from components.config import Params
from components.data.atomic import write_json, write_text
from components.device import resolve_device
from components.errors import GenaugError


def run(stage: str, params: Params, nproc: int, train: Callable[[Params, torch.device], dict]) -> dict:
    """train(params, device) here, or in `nproc` processes under torchrun (rank 0's summary back)."""
    if nproc > 1 and not ranks.launched():
        return launch(stage, params, nproc)
    device = ranks.join(resolve_device(params.device))
    try:
        return train(params, device)
    finally:
        ranks.leave()


def nothing_to_train(stage: str, folder: Path, note: str, why: str, summary: dict) -> dict:
    """A trainer whose model its params leave unused: its model folder holds only a `note` saying `why` (what
    an earlier run left is removed, so the output is the same whatever ran before), and its metrics
    `summary`, which say that no model is used."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    write_text(folder / note, why + "\n")
    write_json(paths.metrics_file(stage), summary)
    print(f"{stage}: {why}")
    return summary


def launch(stage: str, params: Params, nproc: int) -> dict:
    """`stage` in `nproc` processes under torchrun, with these params; returns rank 0's summary."""
    with tempfile.TemporaryDirectory(prefix="genaug-ranks-") as folder:
        settings = Path(folder) / "params.yaml"
        settings.write_text(yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False))
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                   "-m", "components", stage, "--params", str(settings)]
        print(f"{stage}: {nproc} processes: {' '.join(command[1:])}", flush=True)
        # gloo on the loopback interface: the processes are all on this machine
        result = subprocess.run(command, env={"GLOO_SOCKET_IFNAME": "lo", **os.environ})
    if result.returncode != 0:
        raise GenaugError(f"{stage}: the {nproc} training processes failed (exit {result.returncode}); "
                          "their errors are above. The last checkpoint is kept: the next run resumes from it")
    return json.loads(paths.metrics_file(stage).read_text())
