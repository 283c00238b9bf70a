"""train_generator: train the conditional generator (generator.kind: cgan or cvae, components/training/generators.py)
on the prepared train split, into data/models/generator.

The output folder persists between runs (dvc.yaml: persist: true): a killed run resumes from its
last checkpoint, and raising train_generator.steps continues a finished one.

With train_generator.nproc N > 1 the stage starts itself N times under torchrun (--standalone, on
this machine: one process per GPU, or N on the CPU with gloo) and DDP trains one model: each process takes its
slice of every batch (components/ranks.py); rank 0 writes the checkpoints and the outputs.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import yaml

from components import paths, ranks
from components.config import Params
from components.data.atomic import write_json
from components.data.manifest import DatasetInfo, read_split
from components.device import describe, resolve_device
from components.errors import GenaugError, ParamsError
from components.training.generators import KINDS


def run(params: Params) -> dict:
    nproc = params.train_generator.nproc
    if nproc > 1 and params.train_generator.compile:
        raise ParamsError(f"train_generator.nproc: {nproc} and train_generator.compile: true do not go together "
                          "(DDP trains the uncompiled models); set one of them back")
    if nproc > 1 and not ranks.launched():
        return launch(params, nproc)
    device = ranks.join(resolve_device(params.device))
    try:
        return train(params, device)
    finally:
        ranks.leave()


def train(params: Params, device: torch.device) -> dict:
    info = DatasetInfo.read(paths.PREPARED)
    images, labels = read_split(paths.PREPARED, "train")
    g = params.generator
    kind = KINDS[g.kind]
    recipe = kind.recipe(params.train_generator)
    if ranks.is_main():
        print(f"train_generator: {g.kind} at {g.size}x{g.size} on {len(labels)} images of "
              f"{len(info.class_names)} classes, {recipe.steps} steps on {describe(device, recipe.precision)}"
              + (f", {ranks.world()} processes" if ranks.world() > 1 else ""))
    summary = kind.train(images, labels, info.class_names, g, params.train_generator, params.seed, device,
                         paths.GENERATOR)
    if ranks.is_main():
        write_json(paths.metrics_file("train_generator"), summary)
    return summary


def launch(params: Params, nproc: int) -> dict:
    """This stage in `nproc` processes under torchrun, with these params; returns rank 0's summary."""
    with tempfile.TemporaryDirectory(prefix="genaug-ranks-") as folder:
        settings = Path(folder) / "params.yaml"
        settings.write_text(yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False))
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                   "-m", "components", "train_generator", "--params", str(settings)]
        print(f"train_generator: {nproc} processes: {' '.join(command[1:])}", flush=True)
        # gloo on the loopback interface: the processes are all on this machine
        result = subprocess.run(command, env={"GLOO_SOCKET_IFNAME": "lo", **os.environ})
    if result.returncode != 0:
        raise GenaugError(f"train_generator: the {nproc} training processes failed (exit {result.returncode}); "
                          "their errors are above. The last checkpoint is kept: the next run resumes from it")
    return json.loads(paths.metrics_file("train_generator").read_text())
