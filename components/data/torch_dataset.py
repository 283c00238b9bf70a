"""A dataset version as a torch Dataset: float tensors (C, H, W) in [0, 1] and integer labels."""

from collections.abc import Callable

import torch
from torch.utils.data import Dataset

from components.data.versions import DatasetVersion


class ImageDataset(Dataset):
    """The images of one split (and chosen sources) of a dataset version, held in memory."""

    def __init__(self, dataset: DatasetVersion, split: str | None = "train",
                 sources: tuple[str, ...] = ("real", "synthetic"),
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None):
        rows = dataset.rows(split, sources)
        self.manifest = rows.reset_index(drop=True)
        self.images = torch.from_numpy(dataset.images(rows)).permute(0, 3, 1, 2).contiguous()
        self.labels = torch.tensor(rows["label"].to_numpy())
        self.class_names = dataset.info.class_names
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index].float() / 255.0
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])
