"""Load a trained generator of either kind: generator.pt records which model wrote it."""

from pathlib import Path

import torch

from components.errors import DataError
from components.models import cgan, cvae

# The kind saved in generator.pt -> the loader of its model file (both return (module, saved fields)).
LOADERS = {cgan.KIND: cgan.load, cvae.KIND: cvae.load}


def load(path: Path, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """The generator saved at `path` (eval mode, on `device`; it samples with forward(z, labels)) and
    the file's fields (kind, arch, class_names, ...)."""
    path = Path(path)
    try:
        kind = torch.load(path, map_location="cpu", weights_only=True).get("kind")
    except FileNotFoundError:
        raise DataError(f"{path}: no trained generator; run the train_generator stage first") from None
    if kind not in LOADERS:
        raise DataError(f"{path}: holds a model of kind {kind!r}; genaug knows {sorted(LOADERS)}. "
                        "Re-run train_generator")
    return LOADERS[kind](path, device)
