"""Params of the quality stages: the judge (train_judge:) and the downstream evaluation (evaluate:).

Both train the classifier of components/models/classifier.py on the shared loop (FitParams). evaluate's
recipe is fixed across its arms: every arm trains the same net for the same number of steps, so the arms
differ only in their training data (real, real + synthetic) and in class weighting or classic augmentation.
Defaults run the whole evaluate stage on 900 real + 4500 synthetic Fashion-MNIST images in ~2-3 min on a
2-core CPU.
"""

import math
from typing import Literal

from pydantic import Field, field_validator

from components.config.base import Section
from components.config.classifier import ClassifierParams
from components.config.training import FitParams
from components.config.transforms import ClassicParams

# The arms evaluate compares. real_weighted: class-weighted cross-entropy; *_classic: the classic
# albumentations augmentation (evaluate.classic) on every batch.
Arm = Literal["real", "real_weighted", "real_classic", "real_synthetic", "real_synthetic_classic"]
ARMS: tuple[str, ...] = Arm.__args__
SYNTHETIC_ARMS = frozenset({"real_synthetic", "real_synthetic_classic"})


class TrainJudgeParams(FitParams):
    """The judge: the classifier trained on the real train split (its penultimate features serve the
    generative metrics). Defaults train on 900 28x28 images in ~15 s on a 2-core CPU."""

    steps: int = Field(500, ge=1)
    lr: float = Field(2e-3, gt=0)
    checkpoint_every: int = Field(100, ge=1)
    model: ClassifierParams = ClassifierParams()


class FilterParams(Section):
    """Which synthetic samples the filter keeps (components/generation/filtering.py), and the top-up
    rounds that generate more for a class the checks left under its quota."""

    min_confidence: float | None = Field(0.5, ge=0, le=1)  # the judge's probability of the label; null: off
    realism_quantile: float | None = Field(0.95, gt=0, le=1)  # of the real held-out outlier scores; null: off
    duplicate_ratio: float | None = Field(0.2, ge=0)  # x the median real-to-real neighbour distance; null: off
    max_per_class: int | None = Field(None, ge=0)     # keep at most this many a class; null: the quota
    top_up_rounds: int = Field(2, ge=0, le=20)        # rounds of extra samples for classes under quota
    top_up_max: float = Field(4.0, gt=0)              # extra candidates a round, at most this x the quota
    batch_size: int = Field(256, ge=1)
    grid_columns: int = Field(8, ge=1)                # accepted, then rejected samples per class in filter.png


class DownstreamFitParams(FitParams):
    """The fixed budget of every downstream run (each arm, each seed, and the CAS classifier)."""

    steps: int = Field(300, ge=1)
    lr: float = Field(2e-3, gt=0)
    ema_decay: float | None = Field(0.99, ge=0, lt=1)   # tested: the EMA weights (steadier than the last step's)
    checkpoint_every: int = Field(150, ge=1)
    keep_checkpoints: int = Field(1, ge=1)


class KidParams(Section):
    """KID: `subsets` random subsets of `subset_size` per set, cut to the smaller set (a small class
    still gets a value, with a larger spread)."""

    subset_size: int = Field(1000, ge=2)
    subsets: int = Field(50, ge=1)


class EvaluateParams(Section):
    arms: list[Arm] = Field(list(ARMS), min_length=1)
    seeds: list[int] = Field([0, 1, 2], min_length=1)   # one downstream run per arm and seed
    classifier: ClassifierParams = ClassifierParams()
    fit: DownstreamFitParams = DownstreamFitParams()
    classic: ClassicParams = ClassicParams()
    cas: bool = True                      # classification accuracy score: train on synthetic only
    kid: KidParams = KidParams()
    pr_k: int = Field(3, ge=1)            # k of the k-NN manifolds of precision/recall
    batch_size: int = Field(512, ge=1)    # images per forward pass when testing and embedding
    grid_columns: int = Field(8, ge=1)    # real and synthetic samples per class in plots/evaluate/samples.png
    # The synthetic:real sweep ([] = off): for each r, the real_synthetic recipe on the real train images plus,
    # per class, r x its real train count of synthetic ones. r = 0 (real only) is always in the sweep.
    ratios: list[float] = []

    @field_validator("arms", "seeds", "ratios")
    @classmethod
    def _unique(cls, values: list) -> list:
        if len(set(values)) != len(values):
            raise ValueError("must not repeat a value")
        return values

    @field_validator("seeds")
    @classmethod
    def _non_negative(cls, seeds: list[int]) -> list[int]:
        if any(s < 0 for s in seeds):
            raise ValueError("seeds must be >= 0")
        return seeds

    @field_validator("ratios")
    @classmethod
    def _positive(cls, ratios: list[float]) -> list[float]:
        if not all(0 < r < math.inf for r in ratios):
            raise ValueError("ratios must be > 0 and finite (ratio 0, real only, is always in the sweep)")
        return ratios
