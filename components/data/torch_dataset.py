"""A dataset version as a torch Dataset: float tensors (C, H, W) in [0, 1] and integer labels (or soft
labels), with the batch sampler evaluate trains with (a fixed synthetic share per batch)."""

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from components.data.sampling import ShareSampler
from components.data.versions import DatasetVersion
from components.errors import DataError

JUDGE_PROB, JUDGE_PROBS = "judge_confidence", "judge_probs"  # the filter's columns, per synthetic row


class ImageDataset(Dataset):
    """The images of one split (and chosen sources) of a dataset version, held in memory.

    min_judge_prob: keep only the synthetic images whose label the judge gives at least this probability
    (the manifest's judge_confidence; real images are always kept). soft_labels: items are (image, target)
    with target a float vector over the classes: the judge's probabilities for a synthetic image (its soft
    label), one-hot for a real one."""

    def __init__(self, dataset: DatasetVersion, split: str | None = "train",
                 sources: tuple[str, ...] = ("real", "synthetic"),
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 min_judge_prob: float | None = None, soft_labels: bool = False):
        rows = dataset.rows(split, sources)
        if min_judge_prob is not None or soft_labels:
            needed = JUDGE_PROB if min_judge_prob is not None else JUDGE_PROBS
            synthetic = rows["source"] == "synthetic"
            if synthetic.any() and needed not in rows.columns:
                raise DataError(f"{dataset.root}: the manifest has no {needed} column (made by the filter stage); "
                                "use a version made with the filter, or leave out min_judge_prob / soft_labels")
            if min_judge_prob is not None and synthetic.any():
                rows = rows[~synthetic | (rows[JUDGE_PROB] >= min_judge_prob)]
        self.manifest = rows.reset_index(drop=True)
        self.images = torch.from_numpy(dataset.images(rows)).permute(0, 3, 1, 2).contiguous()
        self.labels = torch.tensor(rows["label"].to_numpy())
        self.class_names = dataset.info.class_names
        self.transform = transform
        self.targets = self.soft_targets() if soft_labels else None

    def soft_targets(self) -> torch.Tensor:
        targets = torch.nn.functional.one_hot(self.labels, len(self.class_names)).float()
        synthetic = np.flatnonzero((self.manifest["source"] == "synthetic").to_numpy())
        if len(synthetic):
            probs = np.stack(self.manifest[JUDGE_PROBS].to_numpy()[synthetic]).astype(np.float32)
            targets[torch.from_numpy(synthetic)] = torch.from_numpy(probs)
        return targets

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int | torch.Tensor]:
        image = self.images[index].float() / 255.0
        if self.transform is not None:
            image = self.transform(image)
        return image, (int(self.labels[index]) if self.targets is None else self.targets[index])

    def share_sampler(self, batch_size: int, synthetic_share: float, steps: int, seed: int = 0,
                      balance_real: bool = False) -> ShareSampler:
        """A DataLoader batch_sampler: `steps` batches of `batch_size` items, round(synthetic_share x batch_size)
        of them synthetic (drawn with replacement; `balance_real` draws every real class as often)."""
        return ShareSampler.for_dataset(self.manifest, batch_size, synthetic_share, steps, seed, balance_real)
