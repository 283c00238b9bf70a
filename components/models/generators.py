"""Load a trained generator of either kind: generator.pt records which model wrote it."""

from pathlib import Path

import torch

from components.models import cgan, cvae, model_file

# The kind saved in generator.pt -> what rebuilds its model from the file's fields (module, fields).
FROM_SAVED = {cgan.KIND: cgan.from_saved, cvae.KIND: cvae.from_saved}


def load(path: Path, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """The generator saved at `path` (eval mode, on `device`; it samples with forward(z, labels)) and
    the file's fields (kind, arch, class_names, ...)."""
    saved = model_file.read(path, FROM_SAVED, cgan.MISSING)  # read once, whichever kind it holds
    return FROM_SAVED[saved["kind"]](saved, device)
