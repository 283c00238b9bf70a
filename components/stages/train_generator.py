"""train_generator: train the conditional generator (generator.kind: cgan or cvae) on the prepared train
split, into data/models/generator.

The output folder persists between runs (dvc.yaml: persist: true): a killed run resumes from its
last checkpoint, and raising train_generator.steps continues a finished one.
"""

from components import paths
from components.config import Params
from components.data.atomic import write_json
from components.data.manifest import DatasetInfo, read_split
from components.device import describe, resolve_device
from components.training.cvae import train_cvae
from components.training.gan import train_gan


def run(params: Params) -> dict:
    info = DatasetInfo.read(paths.PREPARED)
    images, labels = read_split(paths.PREPARED, "train")
    device = resolve_device(params.device)
    g = params.generator
    steps = params.train_generator.steps if g.kind == "cgan" else params.train_generator.cvae.steps
    print(f"train_generator: {g.kind} at {g.size}x{g.size} on {len(labels)} images of "
          f"{len(info.class_names)} classes, {steps} steps on {describe(device)}")
    if g.kind == "cgan":
        summary = train_gan(images, labels, len(info.class_names), info.class_names, g, params.train_generator,
                            params.seed, device, paths.GENERATOR)
    else:
        summary = train_cvae(images, labels, info.class_names, g, params.train_generator, params.seed, device,
                             paths.GENERATOR)
    write_json(paths.metrics_file("train_generator"), summary)
    return summary
