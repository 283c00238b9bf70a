"""Params of super-resolution: the cascade's factor (upscale:) and the SR net's training (train_upscaler:).

The generator trains and samples at generator.size; the upscale stage multiplies that by upscale.factor,
which must give prepare.size (checked on the Params root). factor 1 means no super-resolution: the
train_upscaler stage trains nothing and upscale passes the samples through.
"""

from typing import Literal

from pydantic import Field

from components.config.base import Section
from components.config.training import DistributedFitParams
from components.config.transforms import DegradeParams


class UpscaleParams(Section):
    factor: Literal[1, 2, 4] = 1        # 1: no super-resolution (generator.size = prepare.size)
    batch_size: int = Field(256, ge=1)  # images per forward pass: memory stays bounded whatever the count
    grid_columns: int = Field(4, ge=1)  # LR / SR pairs per class in data/upscaled/lr_sr.png


class TrainUpscalerParams(DistributedFitParams):
    """The SR net (components/models/upscaler.py) and its training on the real train images: each
    epoch, every image is degraded afresh (`degrade`, seeded by seed and epoch) into its low-resolution
    input; the original is the target. Defaults train x2 on 900 Fashion-MNIST images in about a minute
    on a 2-core CPU."""

    steps: int = Field(1500, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0)
    checkpoint_every: int = Field(500, ge=1)
    log_every: int = Field(25, ge=1)
    width: int = Field(32, ge=4, le=512)  # channels of the residual blocks
    blocks: int = Field(4, ge=1, le=32)   # residual blocks at the low resolution
    degrade: DegradeParams = DegradeParams()
