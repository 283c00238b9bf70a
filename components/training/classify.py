"""Training the image classifier (judge and downstream classifier) on the shared loop (fit.py):
cross-entropy, optionally class-weighted, optionally on classic-augmented batches."""

import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from components.config.classifier import ClassifierParams
from components.config.training import FitParams
from components.config.transforms import ClassicParams
from components.data.transforms import classic
from components.models.classifier import Classifier, build, to_input
from components.training.fit import DeviceImages, fit

METRICS = ("loss", "accuracy")


def train_classifier(images: np.ndarray, labels: np.ndarray, num_classes: int, model_params: ClassifierParams,
                     fit_params: FitParams, seed: int, device: torch.device, run_dir: Path, name: str,
                     class_weights: np.ndarray | None = None, augment: ClassicParams | None = None,
                     finals: tuple[str, ...] = ()) -> tuple[Classifier, dict]:
    """Train a classifier on uint8 (N, H, W, C) images; returns it (eval mode) and fit's summary.

    `class_weights` (one per class) weight the cross-entropy; `augment` applies the classic augmentation
    to every batch, seeded by (seed, step), so a resumed run draws the same batches."""
    model = build(model_params, num_classes, images.shape[-1], seed)
    labels = np.array(labels, dtype=np.int64)  # a writable copy (pandas hands out read-only arrays)
    data = DeviceImages(images, labels, device)
    weight = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32, device=device)

    def batch_metrics(m: torch.nn.Module, rng: torch.Generator, step: int) -> torch.Tensor:
        x, y, index = data.batch(fit_params.batch_size, rng)
        if augment is not None:
            raw = data.images[index].permute(0, 2, 3, 1).cpu().numpy()
            x = to_input(classic(raw, augment, batch_seed(seed, step)), device)
        logits = m(x).float()
        loss = F.cross_entropy(logits, y, weight=weight)
        return torch.stack([loss, (logits.argmax(1) == y).float().mean()])

    fingerprint = {
        "model": "classifier", "arch": model_params.model_dump(mode="json"), "classes": num_classes,
        "data": digest(images, labels),
        "class_weights": None if class_weights is None else [round(float(w), 6) for w in class_weights],
        "augment": None if augment is None else augment.model_dump(mode="json"),
    }
    return fit(model, batch_metrics, METRICS, fit_params, seed, device, run_dir, fingerprint, finals, name)


def balancing_weights(labels: np.ndarray, num_classes: int) -> np.ndarray | None:
    """Weights n / (K n_k) that give every class the same total weight; None when the classes are already
    balanced (the weighted loss would be the plain one)."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    if (counts == counts[0]).all():
        return None
    weights = np.where(counts > 0, counts.sum() / (num_classes * np.maximum(counts, 1)), 0.0)
    return weights


def batch_seed(seed: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, step]).generate_state(1)[0])


def digest(images: np.ndarray, labels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(images).tobytes()
                          + np.asarray(labels, dtype=np.int64).tobytes()).hexdigest()
