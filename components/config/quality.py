"""Params of the quality stages: the judge (train_judge:) and the downstream evaluation (evaluate:).

Both train the classifier of components/models/classifier.py with one recipe (ClassifierFitParams: AdamW, a
one-cycle schedule, label smoothing) on the shared loop; the classic augmentation (the top-level `classic:`
section) is the judge's always and the *_classic arms'. evaluate's recipe is fixed across its arms: every arm
trains the same net for the same number of steps on the same real batches, so the arms differ only in what
they add to them (synthetic images), in how they balance the classes and in the augmentation.
"""

import math
from typing import Literal

from pydantic import Field, field_validator

from components.config.base import Section
from components.config.classifier import ClassifierParams
from components.config.training import FitParams

# The arms evaluate compares. weighted: class-weighted cross-entropy; oversampled: every class drawn as often
# (rare images repeated); *_classic: the classic augmentation on every batch; synthetic: each batch gets
# evaluate.synthetic_share of synthetic images on top of its real ones (weighted_synthetic: class weights over
# the real and synthetic images together); blend: the same share of pixel blends of two real train images of a
# class instead of the samples (no generator: a baseline the samples must beat, not a synthetic arm).
Arm = Literal["real", "real_weighted", "real_oversampled", "real_classic", "real_weighted_classic",
              "real_oversampled_classic", "real_synthetic", "real_synthetic_classic", "real_weighted_synthetic",
              "real_weighted_synthetic_classic", "real_blend_classic"]
ARMS: tuple[str, ...] = Arm.__args__
SYNTHETIC_ARMS = frozenset({"real_synthetic", "real_synthetic_classic", "real_weighted_synthetic",
                            "real_weighted_synthetic_classic"})
# The arms that decide the gate: `real` (no augmentation) is left out by default, as classic augmentation beats
# it (README, Evaluation), and its 3 runs would add about 4 minutes to `make pipeline` on 2 cores.
DEFAULT_ARMS = ["real_classic", "real_weighted_classic", "real_oversampled_classic", "real_synthetic_classic"]


class ClassifierFitParams(FitParams):
    """The recipe of every classifier run (judge, downstream arms, CAS): a standard small-image recipe.
    Defaults train the default net on 900 28x28 images in about 50 s on a 2-core CPU."""

    steps: int = Field(1500, ge=1)
    optimizer: Literal["adam", "adamw"] = "adamw"
    lr: float = Field(6e-3, gt=0)
    weight_decay: float = Field(0.05, ge=0)
    schedule: Literal["constant", "cosine", "onecycle"] = "onecycle"
    warmup: float = Field(0.25, ge=0, lt=1)
    label_smoothing: float = Field(0.1, ge=0, lt=1)    # on the real (and hard-labelled synthetic) images
    checkpoint_every: int = Field(500, ge=1)
    keep_checkpoints: int = Field(1, ge=1)


class TrainJudgeParams(ClassifierFitParams):
    """The judge: the classifier trained on the real train split with the classic augmentation (its
    penultimate features serve the generative metrics, its probabilities the filter and the soft labels)."""

    model: ClassifierParams = ClassifierParams()
    # weighted: class-weighted cross-entropy where the train classes are imbalanced (prepare.imbalance), so that
    # the label check and the soft labels do not lean towards the common classes; on balanced classes it is the
    # plain judge (the same weights), which evaluate's real_classic run then takes
    balance: Literal["none", "weighted"] = "none"

    def recipe(self) -> ClassifierFitParams:
        """The judge's training recipe without its net: what a downstream run's `evaluate.fit` holds, so that
        the judge and a downstream run of the same recipe, net, data and seed have one fingerprint (evaluate
        then takes the judge's run instead of training it again)."""
        return ClassifierFitParams(**{k: v for k, v in self if k not in ("model", "balance")})


class FilterParams(Section):
    """Which synthetic samples the filter keeps (components/generation/filtering.py), and the top-up
    rounds that generate more for a class the checks left under its quota."""

    label_check: bool = True     # reject a sample the judge calls another class
    min_confidence: float | None = Field(None, ge=0, le=1)  # also reject below this probability of the label; null: off
    realism_quantile: float | None = Field(0.95, gt=0, le=1)  # of the real held-out outlier scores; null: off
    duplicate_ratio: float | None = Field(0.2, ge=0)  # x the median real-to-real neighbour distance; null: off
    max_per_class: int | None = Field(None, ge=0)     # keep at most this many a class; null: the quota
    top_up_rounds: int = Field(2, ge=0, le=20)        # rounds of extra samples for classes under quota
    top_up_max: float = Field(4.0, gt=0)              # extra candidates a round, at most this x the quota
    batch_size: int = Field(256, ge=1)
    grid_columns: int = Field(8, ge=1)                # accepted, then rejected samples per class in filter.png


class KidParams(Section):
    """KID: `subsets` random subsets of `subset_size` per set, cut to the smaller set (a small class
    still gets a value, with a larger spread)."""

    subset_size: int = Field(1000, ge=2)
    subsets: int = Field(50, ge=1)


class EvaluateParams(Section):
    arms: list[Arm] = Field(DEFAULT_ARMS, min_length=1)
    seeds: list[int] = Field([0, 1, 2], min_length=1)   # one downstream run per arm and seed
    classifier: ClassifierParams = ClassifierParams()
    fit: ClassifierFitParams = ClassifierFitParams()   # the same for every run, whatever the arm's data
    # Synthetic arms: each batch holds fit.batch_size real images (the real arm's, the same ones) plus as many
    # synthetic ones as make this share of the batch.
    synthetic_share: float = Field(0.25, gt=0, lt=1)
    synthetic_weight: float = Field(1.0, gt=0)          # loss weight of the synthetic part of a batch
    # hard: a synthetic image's target is its conditioning label; judge: the judge's probabilities of the
    # classes at label_temperature (soft labels, knowledge distillation).
    synthetic_labels: Literal["hard", "judge"] = "judge"
    label_temperature: float = Field(2.0, gt=0)
    real_only_final: float = Field(0.0, ge=0, lt=1)     # share of the steps, at the end, without synthetic images
    # The class weights of the weighted synthetic arms: mixture (over real and synthetic images together, so
    # every class holds the same part of the loss) | real (the real part weighted as in real_weighted, the
    # synthetic part added unweighted: the rare real images keep their weight).
    synthetic_weighting: Literal["mixture", "real"] = "mixture"
    shares: list[float] = []    # the share sweep ([] = off): the synthetic arm at each share; 0 is always in it
    cas: bool = True                      # classification accuracy score: train on synthetic only
    kid: KidParams = KidParams()
    pr_k: int = Field(3, ge=1)            # k of the k-NN manifolds of precision/recall
    batch_size: int = Field(512, ge=1)    # images per forward pass when testing and embedding
    grid_columns: int = Field(8, ge=1)    # real and synthetic samples per class in plots/evaluate/samples.png

    @field_validator("arms", "seeds", "shares")
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

    @field_validator("shares")
    @classmethod
    def _shares(cls, shares: list[float]) -> list[float]:
        if not all(0 < s < 1 and math.isfinite(s) for s in shares):
            raise ValueError("shares must lie strictly between 0 and 1 (share 0, real only, is always in the sweep)")
        return shares
