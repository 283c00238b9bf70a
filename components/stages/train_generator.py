"""train_generator: train the conditional generator (generator.kind: cgan, cvae or diffusion,
components/training/generators.py) on the prepared train split, into data/models/generator.

The output folder persists between runs (dvc.yaml: persist: true): a killed run resumes from its
last checkpoint, and raising train_generator.steps continues a finished one.

With train_generator.nproc N > 1 the stage starts itself N times under torchrun and DDP trains one model
(components/stages/processes.py).
"""

import torch

from components import paths, ranks
from components.config import Params
from components.data.atomic import write_json
from components.data.manifest import DatasetInfo, read_split
from components.device import describe
from components.errors import ParamsError
from components.stages import processes
from components.training.generators import KINDS


def run(params: Params) -> dict:
    nproc = params.train_generator.nproc
    if nproc > 1 and params.train_generator.compile:
        raise ParamsError(f"train_generator.nproc: {nproc} and train_generator.compile: true do not go together "
                          "(DDP trains the uncompiled models); set one of them back")
    return processes.run("train_generator", params, nproc, train)


def train(params: Params, device: torch.device) -> dict:
    info = DatasetInfo.read(paths.PREPARED)
    images, labels = read_split(paths.PREPARED, "train")
    g = params.generator
    kind = KINDS[g.kind]
    recipe = kind.recipe(params.train_generator)
    if ranks.is_main():
        print(f"train_generator: {g.kind} at {g.size}x{g.size} on {len(labels)} images of "
              f"{len(info.class_names)} classes, {recipe.steps} steps on {describe(device, recipe.precision)}"
              + ranks.count_text())
    summary = kind.train(images, labels, info.class_names, g, params.train_generator, params.seed, device,
                         paths.GENERATOR)
    if ranks.is_main():
        write_json(paths.metrics_file("train_generator"), summary)
    return summary

