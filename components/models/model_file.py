"""Model files (generator.pt, judge.pt, ...): what every model's `export` writes and its `load` reads back.

A file is a dict: `kind` (which model wrote it), the fields needed to rebuild the model, `step`, and the
weights on the CPU. Reading checks the kind, so a file of another model is refused by name.
"""

import pickle
from collections.abc import Callable, Collection
from pathlib import Path

import torch
from torch import nn

from components.errors import DataError


def fields(model: nn.Module, kind: str, step: int, **rebuild: object) -> dict:
    """The file's contents: the kind, the fields `rebuild` needs, the step and the weights (on the CPU)."""
    return {"kind": kind, **rebuild, "step": step,
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}


def load_dict(path: Path, missing: str, fix: str) -> dict:
    """torch.load of `path` (plain tensors and containers only, on the CPU) with errors that say what to do:
    `missing` when there is no file, `fix` when it is not a whole torch file (truncated, or another format)."""
    try:
        return torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path}: {missing}") from None
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        # torch's own message for a foreign pickle advises weights_only=False: not what to do here.
        raise DataError(f"{path}: not a readable torch file (truncated, or another format: "
                        f"{type(exc).__name__}); {fix}") from None


def read(path: Path, kinds: str | Collection[str], missing: str) -> dict:
    """The fields saved at `path`; `missing` ("no trained X; run ...") names the fix when there is no file."""
    path = Path(path)
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    saved = load_dict(path, missing, "delete it and run the stage that writes it again")
    if not isinstance(saved, dict) or saved.get("kind") not in kinds:
        kind = saved.get("kind") if isinstance(saved, dict) else None
        raise DataError(f"{path}: holds a model of kind {kind!r}, not a {' or '.join(map(repr, kinds))} one")
    return saved


def rebuild(saved: dict, build: Callable[[], nn.Module], device: torch.device) -> nn.Module:
    """The model `build` makes, with the saved weights, in eval mode and frozen, on `device`. Building draws
    initial weights; the global random state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        model = build()
    model.load_state_dict(saved["state_dict"])
    return model.to(device).eval().requires_grad_(False)
