"""evaluate's downstream runs: the arms' recipes, the sets an assembled dataset gives them, and one run trained
and scored (a piece of work for components/fanout.py: here, or on a Dask worker). The stage
(components/stages/evaluate.py) decides which runs to train and summarises them."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from components import paths
from components.config import Params
from components.config.quality import EvaluateParams
from components.data.manifest import read_manifest
from components.data.sampling import synthetic_per_batch
from components.data.shards import gather_images
from components.errors import DataError
from components.metrics.classification import scores
from components.metrics.report import SPLITS
from components.models import classifier
from components.training.classify import Balance, SyntheticPart, train_classifier

SOFT_LABELS = "judge_probs"  # the manifest column of the judge's class probabilities (filter writes it)



@dataclass(frozen=True)
class Recipe:
    """What a downstream run trains on, and how: the real train images (`synthetic`: plus a synthetic part in
    every batch: the samples, or with `blends` pixel blends of the real train images, a baseline), or
    (`synthetic_only`: CAS) the synthetic images alone with their conditioning labels."""

    synthetic: bool
    balance: Balance
    classic: bool
    synthetic_only: bool = False
    blends: bool = False


RECIPES = {
    "real": Recipe(synthetic=False, balance="none", classic=False),
    "real_weighted": Recipe(synthetic=False, balance="weighted", classic=False),
    "real_oversampled": Recipe(synthetic=False, balance="oversampled", classic=False),
    "real_classic": Recipe(synthetic=False, balance="none", classic=True),
    "real_weighted_classic": Recipe(synthetic=False, balance="weighted", classic=True),
    "real_oversampled_classic": Recipe(synthetic=False, balance="oversampled", classic=True),
    "real_synthetic": Recipe(synthetic=True, balance="none", classic=False),
    "real_synthetic_classic": Recipe(synthetic=True, balance="none", classic=True),
    "real_weighted_synthetic": Recipe(synthetic=True, balance="weighted", classic=False),
    "real_weighted_synthetic_classic": Recipe(synthetic=True, balance="weighted", classic=True),
    # a baseline, not a synthetic arm: the synthetic part's recipe on blends of the real images (no generator)
    "real_blend_classic": Recipe(synthetic=True, balance="none", classic=True, blends=True),
}
NAMES = {recipe: arm for arm, recipe in RECIPES.items()}
# Classification accuracy score: the recipe with the classic augmentation on the synthetic images alone
CAS = Recipe(synthetic=False, balance="none", classic=True, synthetic_only=True)


@dataclass
class Images:
    images: np.ndarray
    labels: np.ndarray
    soft: np.ndarray | None = None   # (N, classes) class probabilities, where the manifest has them

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def select(cls, root: Path, rows: pd.DataFrame) -> "Images":
        if rows.empty:
            return cls(np.empty((0, 1, 1, 1), np.uint8), np.empty(0, np.int64))
        soft = np.stack(rows[SOFT_LABELS].to_numpy()).astype(np.float32) if SOFT_LABELS in rows.columns else None
        return cls(gather_images(root, rows), rows["label"].to_numpy(dtype=np.int64), soft)

    def of_class(self, label: int) -> np.ndarray:
        return self.images[self.labels == label]


@dataclass
class Sets:
    real: Images       # real train images
    synthetic: Images  # synthetic train images (may be empty)
    val: Images        # real val images (may be empty)
    test: Images       # real test images
    blends: Images | None = None  # pixel blends of the real train images (components/generation/blends.py)


@dataclass(frozen=True)
class Context:
    """What every downstream run of one evaluate shares."""

    params: Params
    sets: Sets
    num_classes: int
    device: torch.device

    @property
    def p(self) -> EvaluateParams:
        return self.params.evaluate


def read_sets(root: Path) -> Sets:
    """The real and synthetic train images, and the real val and test images, of an assembled dataset."""
    manifest = read_manifest(root)
    real = manifest[manifest["source"] == "real"]
    test = real[real["split"] == "test"]
    if test.empty:
        raise DataError(f"{root}: no real test images; evaluate tests on the test split (re-run prepare with "
                        "prepare.test_fraction > 0, or a source with an official test set)")
    train = real[real["split"] == "train"]
    if train.empty:
        raise DataError(f"{root}: no real train images to train the downstream classifier on")
    synthetic = manifest[(manifest["split"] == "train") & (manifest["source"] == "synthetic")]
    return Sets(Images.select(root, train), Images.select(root, synthetic),
                Images.select(root, real[real["split"] == "val"]), Images.select(root, test))


@dataclass(frozen=True)
class Run:
    """One downstream run: a recipe, a seed, its folder's name under data/evaluation/runs, and the synthetic
    share (which only a synthetic recipe uses)."""

    recipe: Recipe
    seed: int
    name: str
    share: float

    @property
    def key(self) -> tuple:
        return self.recipe, self.seed, self.share if self.recipe.synthetic else None


def train_run(run: Run, ctx: Context, folder: Path, donors: tuple[Path, ...] = ()) -> dict:
    """The test and val scores of one downstream run (train_model)."""
    model = train_model(run, ctx, folder, donors)
    return {split: split_scores(model, getattr(ctx.sets, split), ctx) for split in SPLITS}


def train_model(run: Run, ctx: Context, folder: Path, donors: tuple[Path, ...] = ()) -> classifier.Classifier:
    """The classifier of one downstream run, trained in folder/<name>-seed<seed> (resumed, or just read back when
    finished; taken from a donor run folder that holds the same run: the judge's)."""
    p = ctx.p
    images = ctx.sets.synthetic if run.recipe.synthetic_only else ctx.sets.real
    model, _ = train_classifier(
        images.images, images.labels, ctx.num_classes, p.classifier, p.fit, run.seed, ctx.device,
        folder / f"{run.name}-seed{run.seed}", f"evaluate {run.name} seed {run.seed}", balance=run.recipe.balance,
        augment=ctx.params.classic if run.recipe.classic else None,
        synthetic=synthetic_part(ctx, run.share, run.recipe.blends) if run.recipe.synthetic else None,
        label_smoothing=p.fit.label_smoothing, donors=donors)
    return model


def synthetic_part(ctx: Context, share: float, blends: bool = False) -> SyntheticPart:
    """What joins each batch of a synthetic recipe: the samples, or (`blends`) the blends, in the same way."""
    p, synthetic = ctx.p, ctx.sets.blends if blends else ctx.sets.synthetic
    if synthetic is None:
        raise ValueError("a blend run needs the blends in its context (evaluate makes them)")
    return SyntheticPart(images=synthetic.images, targets=synthetic_targets(p, synthetic),
                         per_batch=synthetic_per_batch(p.fit.batch_size, share), weight=p.synthetic_weight,
                         steps=round(p.fit.steps * (1 - p.real_only_final)), labels=synthetic.labels,
                         weighting=p.synthetic_weighting)


def synthetic_targets(p: EvaluateParams, synthetic: Images) -> np.ndarray:
    """The conditioning labels, or the judge's probabilities sharpened (temperature < 1) or softened (> 1):
    p^(1/T), normalised, is softmax(logits / T)."""
    if p.synthetic_labels == "hard":
        return synthetic.labels
    if synthetic.soft is None:
        raise DataError(f"{paths.AUGMENTED}: the manifest has no {SOFT_LABELS} column, which "
                        "evaluate.synthetic_labels: judge needs; re-run the filter and assemble stages (dvc repro)")
    powered = np.power(synthetic.soft.astype(np.float64), 1.0 / p.label_temperature)
    return (powered / powered.sum(1, keepdims=True)).astype(np.float32)


def split_scores(model: classifier.Classifier, images: Images, ctx: Context) -> dict | None:
    if not len(images):
        return None
    predicted = classifier.predict_proba(model, images.images, ctx.p.batch_size, ctx.device).argmax(1)
    return scores(images.labels, predicted, ctx.num_classes)
