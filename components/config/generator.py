"""Params of the generator stages: the model (generator:), its training (train_generator:) and
sampling from it (generate:). Defaults fit Fashion-MNIST 28x28 on a 2-core CPU in a few minutes."""

from typing import Literal

from pydantic import Field, field_validator, model_validator

from components.config.base import Section


class GeneratorParams(Section):
    """The generator's architecture; generate rebuilds the model from these (saved beside the weights)."""

    kind: Literal["cgan"] = "cgan"
    size: int = Field(28, le=1024)      # side of the square images it trains on and samples
    latent_dim: int = Field(64, ge=1)
    width: int = Field(64, ge=4)        # channels at full resolution, doubled at each coarser one
    embed_dim: int = Field(32, ge=1)    # size of the generator's class embedding, concatenated to the noise
    max_width: int = Field(512, ge=4)   # cap on the channels of the coarsest layers (for 64px and up)

    @field_validator("size")
    @classmethod
    def _multiple_of_4(cls, size: int) -> int:
        if size < 8 or size % 4:
            raise ValueError("must be a multiple of 4 and at least 8 (e.g. 28, 32, 64)")
        return size


class TrainGeneratorParams(Section):
    """The GAN training loop. Changing `steps` upwards resumes from the last checkpoint (same weights
    as a straight run); changing anything else that shapes training starts again from step 0."""

    steps: int = Field(3000, ge=1)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(2e-4, gt=0)                        # generator learning rate
    lr_ratio: float = Field(2.0, gt=0)                   # discriminator lr / generator lr
    betas: tuple[float, float] = (0.0, 0.99)
    loss: Literal["hinge", "non-saturating"] = "hinge"
    label_smoothing: float = Field(0.0, ge=0, lt=1)      # one-sided: real targets (or hinge margin) 1 - this
    diffaugment: list[Literal["translation", "cutout", "color"]] = ["translation", "color"]
    ema_decay: float = Field(0.999, ge=0, lt=1)
    checkpoint_every: int = Field(500, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    log_every: int = Field(50, ge=1)
    grid_columns: int = Field(10, ge=1)                  # samples per class in each sample grid
    divergence_patience: int = Field(500, ge=1)          # steps with D right on every real and fake image
    compile: bool = False

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, betas: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= b < 1 for b in betas):
            raise ValueError("Adam betas must each lie in [0, 1)")
        return betas

    @model_validator(mode="after")
    def _checkpoints_on_log_steps(self) -> "TrainGeneratorParams":
        if self.checkpoint_every % self.log_every:
            raise ValueError(
                f"train_generator.checkpoint_every ({self.checkpoint_every}) must be a multiple of "
                f"train_generator.log_every ({self.log_every}), so a resumed run logs the same rows")
        return self


class GenerateParams(Section):
    """How many synthetic images per class (the quota), and how the work is cut into shards.

    mode per_class: `n` per class; fill_to: each class up to `target` images, real + synthetic;
    balance: each class up to the largest real class. Then at most `max_ratio` synthetic per real
    image of the class (null: no cap). A class with no real training image gets none: nothing
    taught the generator what it looks like.
    """

    mode: Literal["per_class", "fill_to", "balance"] = "per_class"
    n: int = Field(500, ge=0)
    target: int | None = Field(None, ge=0)
    max_ratio: float | None = Field(5.0, ge=0)
    shard_size: int = Field(2048, ge=1)
    batch_size: int = Field(256, ge=1)
    truncation: float | None = Field(None, gt=0)         # latent values drawn from N(0,1) cut to [-t, t]

    @model_validator(mode="after")
    def _target_for_fill_to(self) -> "GenerateParams":
        if self.mode == "fill_to" and self.target is None:
            raise ValueError("generate.mode fill_to needs generate.target (images per class, real + synthetic)")
        return self
