"""The generator kinds (generator.kind), registered in one place: each kind's model module (its KIND, the
fields `export` saves in generator.pt and `from_saved` rebuilds from), its trainer, and where its train
settings live in train_generator. The train_generator stage trains through `KINDS`; generate, the filter's
top-up and consumers load any kind's generator.pt through `load`.

A new kind: a model file in components/models/ (KIND, export, from_saved; the model samples with
forward(z, labels) and has size, channels, num_classes, latent_dim), a trainer on the shared loop
(training/fit.py), its name in config/generator.py's `kind` Literal (and its recipe there), and one entry
here. tests/unit/test_cvae.py checks that the Literal and KINDS agree.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch

from components.config.generator import TrainGeneratorParams
from components.models import cgan, cvae, diffusion, model_file
from components.training.cvae import train_cvae
from components.training.diffusion import train_diffusion
from components.training.gan import train_gan


@dataclass(frozen=True)
class Kind:
    model: ModuleType  # KIND, export(...), from_saved(saved, device)
    # train(images, labels, class_names, generator_params, train_generator_params, seed, device, run_dir) -> summary
    train: Callable[..., dict]
    recipe: Callable[[TrainGeneratorParams], object]  # the kind's train settings (steps, batch_size, ...)


KINDS: dict[str, Kind] = {
    cgan.KIND: Kind(cgan, train_gan, lambda tp: tp),
    cvae.KIND: Kind(cvae, train_cvae, lambda tp: tp.cvae),
    diffusion.KIND: Kind(diffusion, train_diffusion, lambda tp: tp.diffusion),
}
MISSING = "no trained generator; run the train_generator stage first"


def load(path: Path, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """The generator saved at `path`, whichever kind (eval mode, on `device`; it samples with
    forward(z, labels)), and the file's fields (kind, arch, class_names, ...)."""
    saved = model_file.read(path, KINDS, MISSING)  # read once, whichever kind it holds
    return KINDS[saved["kind"]].model.from_saved(saved, device)
