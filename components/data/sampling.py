"""Which images each training step takes: batches with a fixed share of synthetic images.

ShareSampler draws, for step t, `real_per_batch` real rows and `synthetic_per_batch` synthetic rows, each
from its own random stream seeded by (seed, stream, t), with replacement. So:
- the real rows of a run do not depend on the synthetic part: an arm with synthetic images sees exactly the
  real images, in the same batches, that the real-only arm with the same seed sees (equal real exposure);
- any step can be drawn without the ones before it: a resumed run draws the same batches;
- the draws are numpy's, on the host: the same on every device.

`balance_real` draws the real rows with equal weight per class (the rare images repeated: oversampling).
Evaluate uses it for its downstream runs; consumers of a dataset version use it as a DataLoader's
batch_sampler (`ShareSampler.for_dataset`, or `with_share` from a total batch size and a share).
"""

from collections.abc import Iterator

import numpy as np
import pandas as pd
from torch.utils.data import Sampler

from components.errors import DataError, ParamsError

REAL, SYNTHETIC = 0, 1  # the two streams


def synthetic_per_batch(real_per_batch: int, share: float) -> int:
    """How many synthetic images join `real_per_batch` real ones so that they are `share` of the batch."""
    if not 0 <= share < 1:
        raise ParamsError(f"a synthetic share must lie in [0, 1), got {share}")
    return round(real_per_batch * share / (1 - share))


def class_balancing(labels: np.ndarray) -> np.ndarray:
    """Per-row draw probabilities that give every class present the same total (oversampling)."""
    labels = np.asarray(labels)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    weights = 1.0 / counts[inverse]
    return weights / weights.sum()


class ShareSampler(Sampler[list[int]]):
    """`steps` batches of indices: `real_per_batch` of `real` then `synthetic_per_batch` of `synthetic`
    (indices into the caller's dataset, e.g. positions of an ImageDataset's rows)."""

    def __init__(self, real: np.ndarray, synthetic: np.ndarray, real_per_batch: int, synthetic_per_batch: int,
                 steps: int, seed: int, real_weights: np.ndarray | None = None):
        self.real = np.asarray(real, dtype=np.int64)
        self.synthetic = np.asarray(synthetic, dtype=np.int64)
        if not len(self.real) and real_per_batch:
            raise DataError("the sampler has no real images to draw from")
        if not len(self.synthetic) and synthetic_per_batch:
            raise DataError("the sampler has no synthetic images to draw from; use a synthetic share of 0")
        if real_per_batch < 0 or synthetic_per_batch < 0 or real_per_batch + synthetic_per_batch == 0 or steps < 1:
            raise ParamsError(f"a sampler needs images per batch and steps >= 1, got {real_per_batch} real + "
                              f"{synthetic_per_batch} synthetic, {steps} steps")
        if real_weights is not None and len(real_weights) != len(self.real):
            raise DataError(f"{len(real_weights)} real weights for {len(self.real)} real images")
        self.real_per_batch, self.synthetic_per_batch = real_per_batch, synthetic_per_batch
        self.steps, self.seed, self.real_weights = steps, seed, real_weights

    @classmethod
    def with_share(cls, real: np.ndarray, synthetic: np.ndarray, batch_size: int, share: float, steps: int,
                   seed: int, balance_real: bool = False, real_labels: np.ndarray | None = None) -> "ShareSampler":
        """Batches of `batch_size` of which round(share x batch_size) are synthetic."""
        if batch_size < 1:
            raise ParamsError(f"batch_size must be >= 1, got {batch_size}")
        count = round(batch_size * share) if 0 <= share <= 1 else -1
        if count < 0:
            raise ParamsError(f"a synthetic share must lie in [0, 1], got {share}")
        weights = class_balancing(real_labels) if balance_real else None
        return cls(real, synthetic, batch_size - count, count, steps, seed, weights)

    @classmethod
    def for_dataset(cls, manifest: pd.DataFrame, batch_size: int, share: float, steps: int, seed: int = 0,
                    balance_real: bool = False) -> "ShareSampler":
        """A batch sampler over the rows of a dataset's manifest (ImageDataset.manifest: row i is item i)."""
        source = manifest["source"].to_numpy()
        real = np.flatnonzero(source == "real")
        return cls.with_share(real, np.flatnonzero(source == "synthetic"), batch_size, share, steps, seed,
                              balance_real, manifest["label"].to_numpy()[real])

    def draw(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """The real and the synthetic indices of step `step` (from 0)."""
        rng = np.random.default_rng([self.seed, REAL, step])
        if self.real_weights is None:
            real = self.real[rng.integers(len(self.real), size=self.real_per_batch)] if self.real_per_batch else \
                self.real[:0]
        else:
            real = self.real[rng.choice(len(self.real), size=self.real_per_batch, p=self.real_weights)]
        if not self.synthetic_per_batch:
            return real, self.synthetic[:0]
        rng = np.random.default_rng([self.seed, SYNTHETIC, step])
        return real, self.synthetic[rng.integers(len(self.synthetic), size=self.synthetic_per_batch)]

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.steps):
            real, synthetic = self.draw(step)
            yield np.concatenate([real, synthetic]).tolist()

    def __len__(self) -> int:
        return self.steps
