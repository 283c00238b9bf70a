"""Params of the plain autoencoders (components/models/autoencoder.py): the outlier scorer
(train_scorer:), the denoiser (train_denoiser:) and applying it to the generated samples (denoise:).
Defaults train each in about a minute on 900 Fashion-MNIST images on a 2-core CPU."""

from pydantic import Field

from components.config.base import Section
from components.config.training import DistributedFitParams
from components.config.transforms import NoiseParams


class TrainScorerParams(DistributedFitParams):
    """The outlier scorer: an autoencoder trained on the real train images; its reconstruction
    error on an image is that image's outlier score (high: unlike the training images)."""

    steps: int = Field(800, ge=1)
    checkpoint_every: int = Field(400, ge=1)
    width: int = Field(16, ge=4, le=512)    # channels at full resolution, doubled at each level
    levels: int = Field(2, ge=1, le=6)      # stride-2 stages of the encoder (mirrored by the decoder)
    latent_dim: int = Field(16, ge=1)       # dense units of the bottleneck: fewer, the more it must generalise


class TrainDenoiserParams(DistributedFitParams):
    """The denoising autoencoder: learns to map real train images corrupted by `noise` back to the
    clean ones. `variants` noisy copies of every train image are made once, before training."""

    steps: int = Field(1500, ge=1)
    checkpoint_every: int = Field(500, ge=1)
    width: int = Field(16, ge=4, le=512)    # channels at full resolution, doubled at each level
    levels: int = Field(2, ge=1, le=6)      # stride-2 stages of the encoder, U-Net skips across each
    noise: NoiseParams = NoiseParams()
    variants: int = Field(16, ge=1, le=1000)


class DenoiseParams(Section):
    """Applying the denoiser to the generated samples: output = (1 - strength) * input +
    strength * denoised; 0 (the default: README, Evaluation) leaves the images byte for byte as they are and
    trains no denoiser, 1 is the denoiser's output."""

    strength: float = Field(0.0, ge=0, le=1)
    batch_size: int = Field(256, ge=1)
    grid_columns: int = Field(8, ge=1)     # before/after pairs per class in before_after.png
