"""train_generator: train the conditional generator (generator.kind: cgan or cvae, components/training/generators.py)
on the prepared train split, into data/models/generator.

The output folder persists between runs (dvc.yaml: persist: true): a killed run resumes from its
last checkpoint, and raising train_generator.steps continues a finished one.
"""

from components import paths
from components.config import Params
from components.data.atomic import write_json
from components.data.manifest import DatasetInfo, read_split
from components.device import describe, resolve_device
from components.training.generators import KINDS


def run(params: Params) -> dict:
    info = DatasetInfo.read(paths.PREPARED)
    images, labels = read_split(paths.PREPARED, "train")
    device = resolve_device(params.device)
    g = params.generator
    kind = KINDS[g.kind]
    steps = kind.recipe(params.train_generator).steps
    print(f"train_generator: {g.kind} at {g.size}x{g.size} on {len(labels)} images of "
          f"{len(info.class_names)} classes, {steps} steps on {describe(device)}")
    summary = kind.train(images, labels, info.class_names, g, params.train_generator, params.seed, device,
                         paths.GENERATOR)
    write_json(paths.metrics_file("train_generator"), summary)
    return summary
