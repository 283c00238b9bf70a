"""The image classifier: a small ResNet-style CNN, used as the judge (its penultimate layer gives the
features for the domain Fréchet distance and precision/recall) and as evaluate's downstream
classifier; and the functions that use it (build, predict_proba, embed, export, load).

Images come in as the shards hold them, uint8 (N, H, W, C) with C = 1 or 3 and any side >= 8, and are
scaled to [-1, 1] like everywhere else in genaug. Training lives in components/training.
"""

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from components.config.classifier import ClassifierParams
from components.errors import DataError
from components.models import model_file
from components.pixels import check_images, to_input

MIN_SIZE = 8
KIND = "classifier"


class Block(nn.Module):
    """Two 3x3 convolutions and a shortcut (a strided 1x1 projection where the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.norm1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(c_out)
        # Each block starts as the identity (zero scale on its last norm): deep or shallow, the
        # untrained net passes its input through, which trains faster (Goyal et al. 2017).
        nn.init.zeros_(self.norm2.weight)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(h)) + self.shortcut(x))


class Classifier(nn.Module):
    """images (N, C, H, W) in [-1, 1] -> logits (N, num_classes); `features` gives the pooled
    penultimate layer (N, num_features), the input of the final linear layer."""

    def __init__(self, params: ClassifierParams, num_classes: int, channels: int):
        super().__init__()
        self.channels, self.num_classes = channels, num_classes
        widths = [params.width * 2 ** i for i in range(params.stages)]
        layers: list[nn.Module] = [nn.Conv2d(channels, widths[0], 3, 1, 1, bias=False),
                                   nn.BatchNorm2d(widths[0]), nn.ReLU()]
        c_in = widths[0]
        for stage, width in enumerate(widths):
            for index in range(params.blocks):
                layers.append(Block(c_in, width, stride=2 if stage > 0 and index == 0 else 1))
                c_in = width
        self.body = nn.Sequential(*layers)
        # torchmetrics reads this when given a feature extractor (else it probes one with a 299x299 RGB
        # image). Its FID/KID call forward, the logits here: give them a module whose forward is
        # `features`, or use `embed` with components.metrics.distances.
        self.num_features = widths[-1]
        self.head = nn.Linear(self.num_features, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build(params: ClassifierParams, num_classes: int, channels: int, seed: int) -> Classifier:
    """The untrained net, on the CPU, initialised from `seed` alone (the global RNG is left as it was)."""
    if num_classes < 2 or channels not in (1, 3):
        raise DataError(f"a classifier needs at least 2 classes and 1 or 3 channels, "
                        f"got {num_classes} classes and {channels} channels")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Classifier(params, num_classes, channels)


def export(model: Classifier, params: ClassifierParams, class_names: list[str], size: int, step: int) -> dict:
    """What judge.pt holds: the weights and all that is needed to rebuild the model."""
    if len(class_names) != model.num_classes:
        raise DataError(f"{len(class_names)} class names for a classifier of {model.num_classes} classes")
    return model_file.fields(model, KIND, step, arch=params.model_dump(mode="json"), class_names=list(class_names),
                             channels=model.channels, size=size)


def load(path: Path, device: torch.device) -> tuple[Classifier, dict]:
    """Rebuild the classifier saved by `export`; returns it (eval mode, on `device`) and the file's fields."""
    saved = model_file.read(path, KIND, "no trained classifier; run the stage that trains it (train_judge) first")
    params = ClassifierParams.model_validate(saved["arch"])
    return model_file.rebuild(saved, lambda: Classifier(params, len(saved["class_names"]), saved["channels"]),
                              device), saved



@torch.no_grad()
def predict_proba(model: Classifier, images: np.ndarray, batch_size: int, device: torch.device) -> np.ndarray:
    """Class probabilities (N, num_classes) float32, in eval mode, `batch_size` images at a time."""
    return run(model, images, batch_size, device, lambda x: model(x).float().softmax(dim=1), model.num_classes)


@torch.no_grad()
def embed(model: Classifier, images: np.ndarray, batch_size: int, device: torch.device) -> np.ndarray:
    """Penultimate-layer features (N, num_features) float32, in eval mode, `batch_size` images at a time."""
    return run(model, images, batch_size, device, lambda x: model.features(x).float(), model.num_features)


@torch.no_grad()
def proba_from_features(model: Classifier, features: np.ndarray, device: torch.device) -> np.ndarray:
    """Class probabilities (N, num_classes) float32 from `embed`'s features: predict_proba without running
    the body a second time when both are wanted."""
    return model.head(torch.from_numpy(features).to(device)).float().softmax(dim=1).cpu().numpy()


def run(model: Classifier, images: np.ndarray, batch_size: int, device: torch.device,
        head: Callable[[torch.Tensor], torch.Tensor], width: int) -> np.ndarray:
    """`head` over the images batch by batch in eval mode, collected on the host; the model's mode is restored."""
    check_images(images, "the classifier", model.channels, MIN_SIZE)
    if batch_size < 1:
        raise DataError(f"batch_size must be >= 1, got {batch_size}")
    out = np.empty((len(images), width), np.float32)
    was_training = model.training
    model.eval()
    try:
        for start, batch in batches(images, batch_size):
            out[start:start + len(batch)] = head(to_input(batch, device)).cpu().numpy()
    finally:
        model.train(was_training)
    return out


def batches(images: np.ndarray, batch_size: int) -> Iterator[tuple[int, np.ndarray]]:
    for start in range(0, len(images), batch_size):
        yield start, images[start:start + batch_size]

