"""Params of the data stages: prepare (sources, budget, split, storage), assemble and version."""

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from components.config.base import Section

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


def each_once(classes: list[str] | None) -> list[str] | None:
    repeated = sorted({c for c in classes or [] if classes.count(c) > 1})
    if repeated:
        raise ValueError(f"names {repeated} more than once; list each class once")
    return classes


class FashionMnistSource(Section):
    """The Fashion-MNIST IDX files (Debian package dataset-fashion-mnist by default)."""

    kind: Literal["fashion-mnist"]
    path: Path = Path("/usr/share/datasets/fashion-mnist")


class IdxSource(Section):
    """Any MNIST-format folder: train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-*."""

    kind: Literal["idx"]
    path: Path
    class_names: list[str] | None = None


class ImageFolderSource(Section):
    """One sub-folder per class holding PNG/JPEG files, grayscale or RGB."""

    kind: Literal["imagefolder"]
    path: Path
    extensions: list[str] = [".png", ".jpg", ".jpeg"]


class ManifestSource(Section):
    """A CSV or Parquet table of image paths and labels; paths are relative to `path`."""

    kind: Literal["manifest"]
    path: Path
    file: str = "manifest.csv"
    path_column: str = "path"
    label_column: str = "label"
    classes: list[str] | None = None

    _each_once = field_validator("classes")(each_once)


class SklearnDigitsSource(Section):
    """scikit-learn's bundled 8x8 digits; `path` is its digits.csv.gz, so DVC can track it."""

    kind: Literal["sklearn-digits"]
    path: Path


Source = Annotated[
    FashionMnistSource | IdxSource | ImageFolderSource | ManifestSource | SklearnDigitsSource,
    Field(discriminator="kind"),
]


class Imbalance(Section):
    """Keep only `factor` of the budget for `classes`: rare classes on purpose."""

    classes: list[str] = []
    factor: float = Field(0.1, gt=0, le=1)

    _each_once = field_validator("classes")(each_once)


class PrepareParams(Section):
    source: Source
    per_class: int | None = Field(None, ge=1)
    fraction: float | None = Field(None, gt=0, le=1)
    classes: list[str] | None = None
    imbalance: Imbalance = Imbalance()
    size: int = Field(28, ge=4, le=1024)
    channels: Literal[1, 3] = 1
    val_fraction: float = Field(0.1, ge=0, lt=1)
    test_fraction: float = Field(0.2, gt=0, lt=1)
    on_bad_file: Literal["skip", "fail"] = "skip"
    shard_size: int = Field(10_000, ge=1)

    @field_validator("classes")
    @classmethod
    def _two_classes_each_once(cls, classes: list[str] | None) -> list[str] | None:
        if classes is not None and len(classes) < 2:
            raise ValueError("keeps fewer than 2 classes, but a classifier (the judge, evaluate's arms) tells at "
                             "least 2 apart; list 2 or more, or null for every class of the source")
        return each_once(classes)

    @model_validator(mode="after")
    def _one_budget(self) -> "PrepareParams":
        if self.per_class is not None and self.fraction is not None:
            raise ValueError(
                "set one label budget, not both: prepare.per_class (N images per class) "
                "or prepare.fraction (a share of each class); set the other to null"
            )
        return self


class AssembleParams(Section):
    shard_size: int = Field(10_000, ge=1)
    outliers: int = Field(10, ge=0)             # real images of highest outlier score listed per split in the card
    drop_real_outliers: int = Field(0, ge=0)    # drop this many real train images, the highest scores first


class GateParams(Section):
    """The release gate: a new version is tagged only if the best synthetic arm of evaluate beats the
    best non-synthetic arm by at least `min_lift` on `metric` (means over the seeds)."""

    enabled: bool = True
    min_lift: float = Field(0.0, ge=-1, le=1)   # 0: the synthetic data must not make things worse
    metric: Literal["balanced_accuracy", "accuracy"] = "balanced_accuracy"


class VersionParams(Section):
    tag_prefix: str = Field("dataset-v", pattern=r"^[A-Za-z0-9._/-]+$")
    remote: str | None = None
    push: bool = True
    # a git remote (e.g. origin) to push a new version's tag to: what makes a version made in a clone (the
    # `clone` deployment of prefect.yaml) reach the repository; null: the tag stays in this workspace
    git_remote: str | None = Field(None, pattern=r"^[A-Za-z0-9._/-]+$")
    gate: GateParams = GateParams()
