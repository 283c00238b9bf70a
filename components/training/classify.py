"""Training the image classifier (judge and downstream classifier) on the shared loop (fit.py).

A run's batches come from a ShareSampler (components/data/sampling.py): the real images, drawn uniformly or
with equal weight per class (oversampling), plus, for a run with synthetic images, a fixed number of those
per batch. The loss is cross-entropy on the real part (label smoothing, optional class weights) plus
`synthetic.weight` x cross-entropy on the synthetic part, against their labels or soft labels (a
distribution per image, from the judge). Class weights with a synthetic part are computed over what a batch
holds on average, real and synthetic together (mixture_weights), so every class weighs the same in the loss;
or (synthetic.weighting "real") over the real part alone, the synthetic part unweighted.
The classic augmentation (shift, flip, erased square) runs in torch on the whole batch, on the device.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from components import paths
from components.config.classifier import ClassifierParams
from components.config.training import FitParams
from components.config.transforms import ClassicParams
from components.data.manifest import DatasetInfo
from components.data.sampling import ShareSampler, class_balancing
from components.errors import DataError
from components.models.augment import classic
from components.models import classifier
from components.models.classifier import Classifier, build
from components.training.fit import DeviceImages, fit

METRICS = ("loss", "accuracy")
Balance = Literal["none", "weighted", "oversampled"]


@dataclass(frozen=True)
class SyntheticPart:
    """The synthetic images of a downstream run and how they enter it: `per_batch` of them join each batch
    for the first `steps` steps; `targets` are their labels (N,) or soft labels (N, classes); `labels` their
    conditioning labels (class weighting counts them), the targets when None. `weighting`: how a class-weighted
    run weighs them (mixture: with the real images, so every class weighs the same; real: the real part alone
    is weighted)."""

    images: np.ndarray
    targets: np.ndarray
    per_batch: int
    weight: float
    steps: int
    labels: np.ndarray | None = None
    weighting: Literal["mixture", "real"] = "mixture"

    @property
    def classes(self) -> np.ndarray:
        if self.labels is not None:
            return np.asarray(self.labels, dtype=np.int64)
        if np.ndim(self.targets) != 1:
            raise DataError("class weights over soft-labelled synthetic images need their conditioning labels")
        return np.asarray(self.targets, dtype=np.int64)

    def fingerprint(self) -> dict:
        # weighting only when it is not mixture, under which the earlier runs trained: they still resume
        return {"data": digest(self.images, self.targets), "per_batch": self.per_batch, "weight": self.weight,
                "steps": self.steps, **({"weighting": self.weighting} if self.weighting != "mixture" else {})}


def train_classifier(images: np.ndarray, labels: np.ndarray, num_classes: int, model_params: ClassifierParams,
                     fit_params: FitParams, seed: int, device: torch.device, run_dir: Path, name: str,
                     balance: Balance = "none", augment: ClassicParams | None = None,
                     synthetic: SyntheticPart | None = None, label_smoothing: float = 0.0,
                     finals: tuple[str, ...] = (), donors: tuple[Path, ...] = ()) -> tuple[Classifier, dict]:
    """Train a classifier on uint8 (N, H, W, C) real images (and `synthetic`); returns it (eval mode) and
    fit's summary. `balance`: weighted (class-weighted cross-entropy) or oversampled (every class drawn as
    often). Every random draw is seeded by `seed`: a resumed run trains to the same weights. `donors`: run
    folders that may already hold this run (fit)."""
    labels = np.array(labels, dtype=np.int64)  # a writable copy (pandas hands out read-only arrays)
    check_labels(labels, num_classes)
    # channels_last only on CUDA: torch 2.13's CPU kernels crash (SIGSEGV in backward) on channels_last
    # batches of odd size with 2 threads; tests/unit/test_classifier.py checks it.
    memory = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    model = build(model_params, num_classes, images.shape[-1], seed).to(memory_format=memory)
    real = DeviceImages(images, labels, device)
    weights, both_parts = class_weights(labels, num_classes, balance, synthetic)
    weight = None if weights is None else torch.as_tensor(weights, dtype=torch.float32, device=device)
    fake = soft = fake_class = None
    if synthetic is not None:
        fake = DeviceImages(synthetic.images, np.zeros(len(synthetic.images), np.int64), device)
        soft = torch.as_tensor(np.array(synthetic.targets), device=device)
        if both_parts:
            fake_class = torch.as_tensor(np.array(synthetic.classes), device=device)
    sampler = ShareSampler(np.arange(len(labels)), np.arange(0 if synthetic is None else len(synthetic.images)),
                           fit_params.batch_size, 0 if synthetic is None else synthetic.per_batch, fit_params.steps,
                           seed, class_balancing(labels) if balance == "oversampled" else None)

    def batch_metrics(m: torch.nn.Module, rng: torch.Generator, step: int) -> torch.Tensor:
        real_index, fake_index = sampler.draw(step)
        x, y = real.take(torch.from_numpy(real_index).to(device))
        mixed = fake is not None and step < synthetic.steps
        if mixed:
            index = torch.from_numpy(fake_index).to(device)
            x = torch.cat([x, fake.take(index)[0]])
        if augment is not None:
            x = classic(x, augment, rng)
        # clone, not contiguous: one-channel batches have strides that pass for both layouts, and the CPU
        # kernels would take them as channels_last
        logits = m(x.clone(memory_format=memory)).float()
        own = logits[:len(y)]
        if fake_class is not None:
            # mixture weights: each part's mean of weighted losses (the weights already hold the share)
            loss = weighted_mean_ce(own, y, weight[y], label_smoothing)
        else:
            loss = F.cross_entropy(own, y, weight=weight, label_smoothing=label_smoothing)
        if mixed:
            target = soft[index]
            smoothing = 0.0 if target.is_floating_point() else label_smoothing
            rows = None if fake_class is None else weight[fake_class[index]]
            loss = loss + synthetic.weight * weighted_mean_ce(logits[len(y):], target, rows, smoothing)
        return torch.stack([loss, (own.argmax(1) == y).float().mean()])

    fingerprint = {
        "model": "classifier", "arch": model_params.model_dump(mode="json"), "classes": num_classes,
        "data": real.digest, "balance": balance, "label_smoothing": label_smoothing,
        "augment": None if augment is None else augment.model_dump(mode="json"),
        "synthetic": None if synthetic is None else synthetic.fingerprint(),
    }
    return fit(model, batch_metrics, METRICS, fit_params, seed, device, run_dir, fingerprint, finals, name,
               donors=donors)


def weighted_mean_ce(logits: torch.Tensor, target: torch.Tensor, rows: torch.Tensor | None,
                     smoothing: float) -> torch.Tensor:
    """Cross-entropy averaged over the batch, each row weighted by `rows` (None: plain mean)."""
    if rows is None:
        return F.cross_entropy(logits, target, label_smoothing=smoothing)
    return (rows * F.cross_entropy(logits, target, reduction="none", label_smoothing=smoothing)).mean()


def check_labels(labels: np.ndarray, num_classes: int) -> None:
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"labels must lie in [0, {num_classes}), got [{labels.min()}, {labels.max()}]")


def class_weights(labels: np.ndarray, num_classes: int, balance: Balance,
                  synthetic: SyntheticPart | None) -> tuple[np.ndarray | None, bool]:
    """The class weights of a run's loss (None: unweighted), and whether they weigh the synthetic part too
    (mixture weights, over both parts) or the real part alone (synthetic.weighting "real")."""
    if balance != "weighted":
        return None, False
    if synthetic is None or synthetic.weighting == "real":
        return balancing_weights(labels, num_classes), False
    weights = mixture_weights(labels, synthetic.classes, synthetic.weight, num_classes)
    return weights, weights is not None


def balancing_weights(labels: np.ndarray, num_classes: int) -> np.ndarray | None:
    """Weights n / (K n_k) that give every class the same total weight; None when the classes are already
    balanced (the weighted loss would be the plain one)."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    if (counts == counts[0]).all():
        return None
    weights = np.where(counts > 0, counts.sum() / (num_classes * np.maximum(counts, 1)), 0.0)
    return weights


def mixture_weights(real: np.ndarray, synthetic: np.ndarray, synthetic_weight: float,
                    num_classes: int) -> np.ndarray | None:
    """Class weights for a loss of mean(real part) + synthetic_weight x mean(synthetic part): with p_k and q_k
    the class shares of the real and synthetic images, class k holds p_k + synthetic_weight x q_k of the
    loss, so w_k = (1 + synthetic_weight) / (K (p_k + synthetic_weight q_k)) gives every class present the
    same part and keeps the total (with synthetic_weight 0: balancing_weights). None when the
    weights would all be 1."""
    p = np.bincount(real, minlength=num_classes) / max(len(real), 1)
    q = np.bincount(synthetic, minlength=num_classes) / max(len(synthetic), 1)
    mass = p + synthetic_weight * q
    present = mass > 0
    weights = np.where(present, (1 + synthetic_weight) / (present.sum() * np.where(present, mass, 1.0)), 0.0)
    if np.allclose(weights[present], 1.0, rtol=0, atol=1e-12):
        return None
    return weights


def digest(images: np.ndarray, labels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(images).tobytes()
                          + np.ascontiguousarray(labels).tobytes()).hexdigest()


def load_judge(info: DatasetInfo, device: torch.device, where: str) -> classifier.Classifier:
    """The trained judge, checked against the classes and channels of the images at `where`."""
    judge, saved = classifier.load(paths.JUDGE / paths.JUDGE_FILE, device)
    if saved["class_names"] != info.class_names or saved["channels"] != info.channels:
        raise DataError(f"{paths.JUDGE / paths.JUDGE_FILE}: the judge knows classes {saved['class_names']} with "
                        f"{saved['channels']} channel(s), but {where} has {info.class_names} with "
                        f"{info.channels}; re-run train_judge (dvc repro)")
    return judge
