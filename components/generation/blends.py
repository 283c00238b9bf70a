"""Pixel blends of a class's real train images: the plainest stand-in for a generator's samples, for evaluate's
`real_blend_classic` arm, which asks whether the generator beats an interpolation that needs no generator.

A blend is (1 - s) x one train image of a class + s x another of the same class, s uniform in [0, MAX_SHARE): as
far as the cVAE's interpolated prior moves a latent towards a second train image. Blends go through the filter's
label and duplicate checks with the filter's params (filtering.check: the judge names their class, with
min_confidence if set; no nearer a real train image than the duplicate threshold; not the realism check, which
needs the outlier scorer), as many a class as asked, made in rounds until a class has its count or MAX_ROUNDS have
passed (then it keeps fewer): `checked_candidates`, which takes any maker of candidates. Every draw is seeded by
the seed and the class: the same params give the same blends.
"""

import math
from typing import Callable

import numpy as np
import pandas as pd
import torch

from components.config.quality import FilterParams
from components.generation import filtering
from components.generation.judging import judge_images
from components.models import classifier

MAX_SHARE = 0.5
MAX_ROUNDS = 10


def blend_pairs(images: np.ndarray, members: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` uint8 blends, each of two different images among `images[members]` (at least two)."""
    first = rng.integers(len(members), size=count)
    second = (first + rng.integers(1, len(members), size=count)) % len(members)
    share = rng.uniform(0.0, MAX_SHARE, size=count).reshape(-1, *([1] * (images.ndim - 1)))
    mixed = (1 - share) * images[members[first]] + share * images[members[second]]
    return np.rint(mixed).astype(np.uint8)


def checked_blends(images: np.ndarray, labels: np.ndarray, per_class: dict[int, int], judge: classifier.Classifier,
                   f: FilterParams, seed: int, device: torch.device) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Blends of the uint8 (N, H, W, C) train images of each class in `per_class`, as many as it says, that pass
    the checks (checked_candidates). A class with fewer than two train images gets none."""
    def make(label: int, count: int, rng: np.random.Generator) -> np.ndarray:
        members = np.flatnonzero(labels == label)
        return blend_pairs(images, members, count, rng) if len(members) >= 2 else images[:0]

    return checked_candidates(make, images, per_class, judge, f, seed, device)


def checked_candidates(make: Callable[[int, int, np.random.Generator], np.ndarray], images: np.ndarray,
                       per_class: dict[int, int], judge: classifier.Classifier, f: FilterParams, seed: int,
                       device: torch.device) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Candidates of each class in `per_class`, as many as it says, that pass the filter's label and duplicate
    checks against the uint8 (N, H, W, C) real train `images`: (images, labels, the judge's probabilities, a
    report of what was made, rejected and kept per class, and the duplicate threshold). `make(label, count, rng)`
    gives `count` uint8 candidates of the class (none where it can make none), drawing from `rng`, which is seeded
    by the seed and the class."""
    real_features = classifier.embed(judge, images, f.batch_size, device)
    duplicate = filtering.duplicate_threshold(real_features, f.duplicate_ratio)
    kept_images, kept_labels, kept_probs = [], [], []
    report = {"made": 0, "rejected": {"label": 0, "duplicate": 0}, "kept": {}, "duplicate_threshold": duplicate}
    for label, count in sorted(per_class.items()):
        rng, kept = np.random.default_rng([seed, label]), 0
        for _ in range(MAX_ROUNDS):
            if kept == count:
                break
            candidates = make(label, 2 * (count - kept), rng)
            if not len(candidates):
                break
            probs, nearest = judge_images(candidates, judge, real_features, f.batch_size, device)
            scores = pd.DataFrame({"label": label, "judge_label": probs.argmax(1), "judge_confidence": probs[:, label],
                                   "outlier_score": 0.0, "nn_distance": nearest})
            verdict = filtering.check(scores, f.label_check, f.min_confidence, math.inf, duplicate).to_numpy()
            take = np.flatnonzero(verdict == filtering.ACCEPTED)[:count - kept]
            report["made"] += len(candidates)
            for reason in report["rejected"]:
                report["rejected"][reason] += int((verdict == reason).sum())
            kept_images.append(candidates[take])
            kept_probs.append(probs[take].astype(np.float32))
            kept += len(take)
        kept_labels.append(np.full(kept, label, np.int64))
        report["kept"][int(label)] = kept
    return (np.concatenate(kept_images) if kept_images else np.empty((0, *images.shape[1:]), np.uint8),
            np.concatenate(kept_labels) if kept_labels else np.empty(0, np.int64),
            np.concatenate(kept_probs) if kept_probs else np.empty((0, 0), np.float32), report)
