"""A training run's folder and its bookkeeping, shared by every trainer:

  checkpoints/step-NNNNNNN.pt  the last few full states (models, optimisers, step, RNG states)
  metrics.csv                  one row per log interval, continued without duplicates on resume
  samples/step-NNNNNNN.png     a picture per checkpoint, when the trainer draws one
  <final files>                written by the trainer only when training finished

A checkpoint is resumed only when its fingerprint (everything that shapes the weights) matches. Under torchrun
every rank reads the folder, rank 0 alone writes it.
"""

import csv
import functools
import logging
import shutil
from pathlib import Path
from typing import Any, Protocol

import torch

from components import ranks
from components.data.atomic import atomic_file
from components.training import checkpoint

log = logging.getLogger("genaug")

CHECKPOINTS, SAMPLES, METRICS_CSV = "checkpoints", "samples", "metrics.csv"


def main_only(method):
    """A RunDir method that writes: under torchrun rank 0 alone runs it, the other ranks skip it."""
    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        if ranks.is_main():
            return method(self, *args, **kwargs)
    return guarded


class Stateful(Protocol):
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> Any: ...


class RunDir:
    def __init__(self, root: Path, columns: tuple[str, ...], finals: tuple[str, ...]):
        self.root = Path(root)
        self.columns = ("step", *columns)
        self.finals = finals

    @property
    def metrics_csv(self) -> Path:
        return self.root / METRICS_CSV

    def sample_path(self, step: int) -> Path:
        return self.root / SAMPLES / f"step-{step:07d}.png"

    def resume(self, fingerprint: str, steps: int, states: dict[str, Stateful], rng: torch.Generator) -> int:
        """Restore the latest checkpoint if it belongs to this run; returns its step (0: a fresh run)."""
        path = checkpoint.latest(self.root / CHECKPOINTS)
        if path is None:
            self.clear()
            return 0
        saved = checkpoint.load(path)
        if saved.get("fingerprint") != fingerprint or saved["step"] > steps:
            why = "params, seed or data changed" if saved.get("fingerprint") != fingerprint else f"it is past steps={steps}"
            log.warning("%s: not resuming (%s); training from step 0", path, why)
            self.clear()
            return 0
        for key, obj in states.items():
            obj.load_state_dict(saved[key])
        checkpoint.restore_rng(saved["rng"], rng)
        self.truncate_metrics(saved["step"])
        log.info("resuming from %s (step %d)", path, saved["step"])
        return saved["step"]

    @main_only
    def adopt(self, fingerprint: str, steps: int, donors: tuple[Path, ...]) -> None:
        """Take the run of a donor folder (another trainer's run folder) when it is this very run - the same
        fingerprint - and further on than this folder's own: its last checkpoint and its metrics are copied
        here, and resume() continues from them instead of training those steps again."""
        own = self.matching_step(checkpoint.latest(self.root / CHECKPOINTS), fingerprint, steps)
        for donor in donors:
            path = checkpoint.latest(Path(donor) / CHECKPOINTS)
            step = self.matching_step(path, fingerprint, steps)
            if step > own:
                self.clear()
                # the metrics first: the checkpoint is what marks the run as taken
                for source, target in ((Path(donor) / METRICS_CSV, self.metrics_csv),
                                       (path, self.root / CHECKPOINTS / path.name)):
                    if source.exists():
                        with atomic_file(target) as tmp:
                            shutil.copyfile(source, tmp)
                log.info("%s: the same run as %s (same fingerprint): its step %d is taken, not trained again",
                         self.root, donor, step)
                return

    @staticmethod
    def matching_step(path: Path | None, fingerprint: str, steps: int) -> int:
        """The step of checkpoint `path` if it belongs to this run (0 if not)."""
        if path is None:
            return 0
        saved = checkpoint.load(path)
        return saved["step"] if saved.get("fingerprint") == fingerprint and saved["step"] <= steps else 0

    @main_only
    def save_checkpoint(self, step: int, fingerprint: str, states: dict[str, Stateful], rng: torch.Generator,
                        keep: int) -> None:
        saved = {key: obj.state_dict() for key, obj in states.items()}
        saved.update(step=step, fingerprint=fingerprint, rng=checkpoint.rng_states(rng))
        checkpoint.save(self.root / CHECKPOINTS / checkpoint.name(step), saved)
        checkpoint.prune(self.root / CHECKPOINTS, keep)

    def latest_checkpoint(self) -> Path | None:
        return checkpoint.latest(self.root / CHECKPOINTS)

    @main_only
    def clear(self) -> None:
        """Remove what an earlier, different run left here."""
        shutil.rmtree(self.root / CHECKPOINTS, ignore_errors=True)
        shutil.rmtree(self.root / SAMPLES, ignore_errors=True)
        for name in (METRICS_CSV, *self.finals):
            (self.root / name).unlink(missing_ok=True)

    @main_only
    def remove_finals(self) -> None:
        """A run that starts (or resumes) has no final files until it finishes."""
        for name in self.finals:
            (self.root / name).unlink(missing_ok=True)

    @main_only
    def log(self, step: int, values: dict[str, float]) -> None:
        """Append one row to metrics.csv (the header first when the file is new)."""
        new = not self.metrics_csv.exists()
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.metrics_csv, "a", newline="") as fh:
            writer = csv.writer(fh)
            if new:
                writer.writerow(self.columns)
            writer.writerow([step, *(f"{values[k]:.6g}" for k in self.columns[1:])])

    @main_only
    def truncate_metrics(self, step: int) -> None:
        """Drop rows logged after `step` (a killed run logs past its last checkpoint)."""
        if not self.metrics_csv.exists():
            return
        with open(self.metrics_csv, newline="") as fh:
            rows = list(csv.reader(fh))
        kept = [rows[0]] + [row for row in rows[1:] if int(row[0]) <= step]
        with atomic_file(self.metrics_csv) as tmp, open(tmp, "w", newline="") as fh:
            csv.writer(fh).writerows(kept)

    def last_logged(self) -> dict[str, float]:
        if not self.metrics_csv.exists():
            return {}
        with open(self.metrics_csv, newline="") as fh:
            rows = list(csv.DictReader(fh))
        return {k: float(v) for k, v in rows[-1].items() if k != "step"} if rows else {}
