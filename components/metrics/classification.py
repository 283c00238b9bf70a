"""Scores of a classifier's predictions: accuracy, balanced accuracy (the mean per-class recall) and the
recall of each class."""

import numpy as np

from components.errors import DataError


def scores(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> dict:
    """{accuracy, balanced_accuracy, recall: [per class]}; a class absent from `labels` has recall NaN and
    is left out of the balanced accuracy."""
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    if labels.shape != predicted.shape or labels.ndim != 1 or len(labels) == 0:
        raise DataError(f"scores need two equal-length, non-empty label vectors, got {labels.shape} and "
                        f"{predicted.shape}")
    support = np.bincount(labels, minlength=num_classes)
    hits = np.bincount(labels[labels == predicted], minlength=num_classes)
    recall = np.where(support > 0, hits / np.maximum(support, 1), np.nan)
    return {"accuracy": float((labels == predicted).mean()),
            "balanced_accuracy": float(np.nanmean(recall)),
            "recall": recall.tolist()}
