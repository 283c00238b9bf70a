"""Params of the generator stages: the model (generator:), its training (train_generator:) and
sampling from it (generate:). Defaults fit Fashion-MNIST on a 2-core CPU in a few minutes: a 14x14
generator, whose samples the upscaler brings to 28x28 (components/config/upscale.py)."""

from typing import Literal

from pydantic import Field, field_validator, model_validator

from components.config.base import Section
from components.config.training import FitParams


class GeneratorParams(Section):
    """The generator's architecture; generate rebuilds the model from these (saved beside the weights).

    kind cgan: the conditional GAN (components/models/cgan.py); cvae: the conditional VAE
    (components/models/cvae.py), whose decoder is built like the cGAN's generator from the same keys;
    diffusion: a class-conditional diffusion model (components/models/diffusion.py), whose U-Net is set in its
    recipe, train_generator.diffusion (it reads `size` alone here, which must then be a multiple of 4).
    """

    kind: Literal["cgan", "cvae", "diffusion"] = "cvae"
    size: int = Field(28, le=1024)      # side of the square images it trains on and samples
    latent_dim: int = Field(64, ge=1)
    width: int = Field(64, ge=4)        # channels at full resolution, doubled at each coarser one
    embed_dim: int = Field(32, ge=1)    # size of the generator's class embedding, concatenated to the noise
    max_width: int = Field(512, ge=4)   # cap on the channels of the coarsest layers (for 64px and up)

    @field_validator("size")
    @classmethod
    def _even(cls, size: int) -> int:
        if not valid_size(size):
            raise ValueError("must be even and at least 8 (e.g. 14, 16, 28, 32, 64)")
        return size


def valid_size(size: int) -> bool:
    """The sides the generators build (components/models/cgan.py: sides)."""
    return 8 <= size <= 1024 and size % 2 == 0


class TrainAugment(Section):
    """Label-keeping augmentation of the cVAE's train batches, the image it encodes and the one it must
    reconstruct alike: a pad-and-crop shift of up to `shift` pixels each way and, when `hflip`, a mirror of
    half the images (as `classic:` does, without its erased square, which the decoder would learn to draw).
    Its decoder then draws unseen images better, but its samples were worse (README: Evaluation)."""

    shift: int = Field(0, ge=0, le=64)
    hflip: bool = False

    @property
    def on(self) -> bool:
        return bool(self.shift or self.hflip)


class CvaeParams(FitParams):
    """The cVAE's training (generator.kind: cvae), on the shared loop (components/training/fit.py).

    loss = reconstruction + beta * w * KL, where w climbs linearly from 0 to 1 over the first
    kl_warmup_steps steps (so the decoder learns to use the code before the prior pulls it in).
    likelihood bernoulli: pixels in [0, 1] scored by binary cross-entropy (sharp on mostly black or
    white images such as Fashion-MNIST); gaussian: squared error, with the noise scale set to its
    optimum per batch (sigma-VAE, Rybkin et al. 2021), so no weight to tune against the KL.
    prior standard: generate decodes N(0, I) latents; aggregate: the mixture of the train images'
    posteriors q(z | x, y) of the class (each sample's latent from one train image's posterior, picked
    by its seed), the prior the decoder was trained on (VampPrior-like; encoded once after training and
    saved in generator.pt); interpolated: a point anywhere between two of the class's posterior means
    (both picked by the seed) plus the first one's posterior noise, so samples fill the class between
    its train images instead of clustering around each (k-NN recall 0.2 -> 0.44: README, Generators);
    gaussian: per class, the Gaussian with the mean and covariance of that mixture of posteriors, its spread
    times `prior_spread` (for the cVAE trained with `augment`, whose latents between two train images decode
    badly: README, Evaluation). The prior is drawn after training: changing it re-encodes, it never retrains.
    """

    steps: int = Field(2000, ge=1)
    lr: float = Field(1e-3, gt=0)
    ema_decay: float | None = Field(0.999, ge=0, lt=1)
    checkpoint_every: int = Field(500, ge=1)
    beta: float = Field(1.0, ge=0)
    kl_warmup_steps: int = Field(500, ge=0)             # 0: the full beta from the first step
    likelihood: Literal["bernoulli", "gaussian"] = "gaussian"
    prior: Literal["standard", "aggregate", "interpolated", "gaussian"] = "interpolated"
    prior_spread: float = Field(1.25, gt=0)
    augment: TrainAugment = TrainAugment()

    def not_shaping(self) -> set[str]:
        # augment off is the recipe from before the key existed: those runs' checkpoints still resume
        return super().not_shaping() | {"prior", "prior_spread"} | (set() if self.augment.on else {"augment"})


class DiffusionParams(FitParams):
    """The diffusion model's U-Net and training (generator.kind: diffusion), on the shared loop.

    The U-Net learns to predict the noise added to a train image at a random one of `timesteps` (cosine
    schedule), the class as an embedding added to the time's; `width` channels at full size, twice that at half
    and quarter size. Generate samples with DDIM in `sample_steps` steps (fewer: faster, coarser; it leaves the
    weights alone, so changing it never retrains). `augment` as the cVAE's, mirrored by default (set hflip false
    for digits, letters, anything whose mirror is another class).

    Classifier-free guidance (Ho and Salimans, 2022): with `label_dropout` > 0 the U-Net also learns the images
    without their class (that share of each batch gets a "no class" label), and generate mixes the two noise
    predictions, eps(no class) + guidance x (eps(class) - eps(no class)): `guidance` 1 is the class-conditional
    model alone, above 1 draws more typical samples of each class at twice the cost a step. Like `sample_steps`,
    `guidance` never retrains.
    """

    steps: int = Field(6000, ge=1)
    optimizer: Literal["adam", "adamw"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    schedule: Literal["constant", "cosine", "onecycle"] = "cosine"
    warmup: float = Field(0.025, ge=0, lt=1)
    ema_decay: float | None = Field(0.999, ge=0, lt=1)
    checkpoint_every: int = Field(500, ge=1)
    width: int = Field(32, ge=2)
    embedding: int = Field(128, ge=2)
    timesteps: int = Field(1000, ge=2)
    sample_steps: int = Field(25, ge=1)
    label_dropout: float = Field(0.0, ge=0, lt=1)
    guidance: float = Field(1.0, ge=0)
    augment: TrainAugment = TrainAugment(hflip=True)   # as measured on Fashion-MNIST (README); false for digits

    @field_validator("embedding")
    @classmethod
    def _even_embedding(cls, embedding: int) -> int:
        if embedding % 2:
            raise ValueError("must be even (half sines, half cosines of the timestep)")
        return embedding

    @model_validator(mode="after")
    def _steps_within_timesteps(self) -> "DiffusionParams":
        if self.sample_steps > self.timesteps:
            raise ValueError(f"sample_steps ({self.sample_steps}) must be at most timesteps ({self.timesteps})")
        if self.guidance != 1 and not self.label_dropout:
            raise ValueError(f"guidance {self.guidance} needs a model that also learnt the images without their "
                             "class: set label_dropout above 0 (e.g. 0.1; it retrains), or guidance to 1")
        return self

    def not_shaping(self) -> set[str]:
        # label_dropout 0 is the recipe from before the key existed: those runs' checkpoints still resume
        unused = set() if self.label_dropout else {"label_dropout"}
        return super().not_shaping() | {"sample_steps", "guidance"} | unused


class TrainGeneratorParams(Section):
    """The GAN training loop (the keys at this level) and, under `cvae:` and `diffusion:`, the cVAE's and the
    diffusion model's recipes: only the one of generator.kind is used. Changing `steps` upwards resumes from the
    last checkpoint (same weights as a straight run); changing anything else that shapes training starts again
    from step 0."""

    steps: int = Field(3000, ge=1)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(2e-4, gt=0)                        # generator learning rate
    lr_ratio: float = Field(2.0, gt=0)                   # discriminator lr / generator lr
    betas: tuple[float, float] = (0.0, 0.99)
    loss: Literal["hinge", "non-saturating"] = "hinge"
    label_smoothing: float = Field(0.0, ge=0, lt=1)      # one-sided: real targets (or hinge margin) 1 - this
    diffaugment: list[Literal["translation", "cutout", "color"]] = ["translation", "color"]
    lecam: float = Field(0.0, ge=0)                      # weight of the LeCam regulariser of D; 0: off
    ema_decay: float = Field(0.999, ge=0, lt=1)
    checkpoint_every: int = Field(500, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    log_every: int = Field(50, ge=1)
    grid_columns: int = Field(10, ge=1)                  # samples per class in each sample grid
    divergence_patience: int = Field(500, ge=1)          # steps with D right on every real and fake image
    compile: bool = False
    precision: Literal["auto", "fp32", "bf16"] = "auto"   # the GAN's; the cVAE's is cvae.precision (FitParams)
    # processes that train together (torchrun, DDP): one per GPU, or on the CPU; 1: this process
    nproc: int = Field(1, ge=1, le=64)
    cvae: CvaeParams = CvaeParams()
    diffusion: DiffusionParams = DiffusionParams()

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, betas: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= b < 1 for b in betas):
            raise ValueError("Adam betas must each lie in [0, 1)")
        return betas

    @model_validator(mode="after")
    def _batch_splits_over_processes(self) -> "TrainGeneratorParams":
        for key, size in (("batch_size", self.batch_size), ("cvae.batch_size", self.cvae.batch_size),
                          ("diffusion.batch_size", self.diffusion.batch_size)):
            if size % self.nproc:
                raise ValueError(f"train_generator.{key} ({size}) must be a multiple of train_generator.nproc "
                                 f"({self.nproc}): each process takes an equal slice of a batch")
        return self

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
    # Latents (after truncation) are multiplied by this: the spread of the prior the cVAE samples
    # from (below 1: more typical, less varied samples). It scales a cGAN's latents just the same.
    temperature: float = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _target_for_fill_to(self) -> "GenerateParams":
        if self.mode == "fill_to" and self.target is None:
            raise ValueError("generate.mode fill_to needs generate.target (images per class, real + synthetic)")
        return self
