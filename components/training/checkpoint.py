"""Checkpoints: a dict of state_dicts, step and RNG states, written atomically and read back with
`torch.load(weights_only=True)` (plain tensors and containers, never pickled modules)."""

import hashlib
import io
import re
from pathlib import Path

import torch

from components.data.atomic import atomic_file
from components.models import model_file

PATTERN = re.compile(r"^step-(\d{7,})\.pt$")


def name(step: int) -> str:
    return f"step-{step:07d}.pt"


def save(path: Path, state: dict) -> None:
    """Write `state` to `path` through a temporary file: a kill leaves the old file or the new one. Serialised in
    memory first: torch.save straight to a file on a full disk fails with a RuntimeError ("unexpected pos"),
    where a plain write fails with ENOSPC, which atomic_file reports as a full disk."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_file(Path(path)) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def load(path: Path) -> dict:
    return model_file.load_dict(path, "no such checkpoint", "delete it to resume from an earlier one")


def step_of(path: Path) -> int:
    return int(PATTERN.match(Path(path).name).group(1))


def listed(directory: Path) -> list[Path]:
    """The checkpoints in `directory`, oldest step first."""
    if not Path(directory).is_dir():
        return []
    return sorted((p for p in Path(directory).iterdir() if PATTERN.match(p.name)), key=step_of)


def latest(directory: Path) -> Path | None:
    found = listed(directory)
    return found[-1] if found else None


def prune(directory: Path, keep: int) -> None:
    """Delete all but the `keep` most recent checkpoints."""
    for path in listed(directory)[:-keep]:
        path.unlink(missing_ok=True)


def rng_states(*generators: torch.Generator) -> dict:
    """The states of the trainers' own generators. Training draws all its randomness from these; the
    global torch RNG is left out on purpose: torch seeds it at random in every process, so saving it
    would make two identical runs write different checkpoints (and DVC see different outputs)."""
    return {"generators": [g.get_state() for g in generators]}


def restore_rng(states: dict, *generators: torch.Generator) -> None:
    for generator, state in zip(generators, states["generators"], strict=True):
        generator.set_state(state)


def file_hash(path: Path) -> str:
    """sha256 of a file's bytes, for provenance (which weights made a sample)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
