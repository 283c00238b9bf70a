"""Load a trained generator of either kind: generator.pt records which model wrote it."""

from pathlib import Path

import torch

from components.models import cgan, cvae, model_file

# The kind saved in generator.pt -> the loader of its model file (both return (module, saved fields)).
LOADERS = {cgan.KIND: cgan.load, cvae.KIND: cvae.load}


def load(path: Path, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """The generator saved at `path` (eval mode, on `device`; it samples with forward(z, labels)) and
    the file's fields (kind, arch, class_names, ...)."""
    kind = model_file.read(path, LOADERS, "no trained generator; run the train_generator stage first")["kind"]
    return LOADERS[kind](path, device)
