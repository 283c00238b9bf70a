"""The training recipe shared by the single-loss models (autoencoders, upscaler, classifiers)."""

from typing import Literal

from pydantic import Field, model_validator

from components.config.base import Section


class FitParams(Section):
    """Steps, batch and optimiser of one training run, and how often it logs and checkpoints.

    Raising `steps` resumes a finished run from its last checkpoint; changing anything else that
    shapes training starts again from step 0 (with a schedule other than constant, `steps` shapes the
    learning rate, so a change of steps starts again too).

    schedule: constant (`lr` throughout); cosine (from `lr` down to 0 over the steps, after a linear warm-up
    over the first `warmup` share of them); onecycle (up from lr/25 to `lr` over the `warmup` share, then
    down to lr/1e4 along a cosine: Smith's one-cycle policy, the default of fast small-image recipes).
    optimizer: adam (weight_decay as an L2 term) or adamw (decoupled weight decay, Loshchilov & Hutter).
    precision: auto (bf16 autocast on CUDA and on a CPU with bf16 in hardware, fp32 elsewhere), fp32 or bf16
    (components/device.py). It shapes the weights: a checkpoint of the other precision is not resumed.
    """

    steps: int = Field(1000, ge=1)
    batch_size: int = Field(64, ge=1)
    optimizer: Literal["adam", "adamw"] = "adam"
    lr: float = Field(1e-3, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(0.0, ge=0)
    schedule: Literal["constant", "cosine", "onecycle"] = "constant"
    warmup: float = Field(0.0, ge=0, lt=1)               # share of the steps spent warming up
    ema_decay: float | None = Field(None, ge=0, lt=1)   # null: no EMA of the weights
    checkpoint_every: int = Field(250, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    log_every: int = Field(50, ge=1)
    precision: Literal["auto", "fp32", "bf16"] = "auto"

    @model_validator(mode="after")
    def _checkpoints_on_log_steps(self) -> "FitParams":
        if self.checkpoint_every % self.log_every:
            raise ValueError(f"checkpoint_every ({self.checkpoint_every}) must be a multiple of log_every "
                             f"({self.log_every}), so a resumed run logs the same rows")
        return self

    def not_shaping(self) -> set[str]:
        """The settings that leave the weights alone: a checkpoint written under other values still resumes.
        `steps` is one of them only under a constant learning rate."""
        return NOT_SHAPING if self.schedule == "constant" else NOT_SHAPING - {"steps"}


# Settings that never shape the weights.
NOT_SHAPING = {"steps", "checkpoint_every", "keep_checkpoints", "log_every"}


class DistributedFitParams(FitParams):
    """FitParams of a trainer that can also train in several processes at once (torchrun, DDP:
    components/stages/processes.py): `nproc`, one per GPU, or several on the CPU; 1, this process. The batch
    is split evenly over them, and they end within float rounding of one process's weights; a checkpoint
    resumes only under the process count that wrote it (components/ranks.py)."""

    nproc: int = Field(1, ge=1, le=64)

    @model_validator(mode="after")
    def _batch_splits_over_processes(self) -> "DistributedFitParams":
        if self.batch_size % self.nproc:
            raise ValueError(f"batch_size ({self.batch_size}) must be a multiple of nproc ({self.nproc}): each "
                             "process takes an equal slice of a batch")
        return self
