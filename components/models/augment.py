"""Augmentation of image batches in torch, on their device: DiffAugment for the GAN's discriminator and
the classic augmentation of the classifiers (shift, horizontal flip, one erased square). Every random draw
comes from the torch.Generator passed in (on the images' device), so a run is reproducible and resumable.

Images are (N, C, H, W) in [-1, 1].
- DiffAugment (Zhao et al. 2020): differentiable augmentations applied to real and fake images alike before
  the discriminator, so that D cannot memorise a small training set; the policies of the paper's reference
  code (a shifted or erased pixel becomes 0, mid-grey).
- classic: the standard small-image recipe (pad-and-crop shift, flip, cutout), with black fill (-1), the
  background of Fashion-MNIST-like data. Done on the batch where it trains, not per image on the CPU.
- shift_flip: classic without the erased square, for the generators' own train batches (their recipe's augment).
"""

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

from components import ranks
from components.config.generator import TrainAugment
from components.config.transforms import ClassicParams, Erase


class Rows(NamedTuple):
    """The rows `index` of a batch of `total` images (every draw is made for all `total`, then indexed)."""

    index: torch.Tensor
    total: int


def drawn(x: torch.Tensor, rows: "Rows | None", draw) -> torch.Tensor:
    """draw(n) for the images of x: n = len(x), or the whole batch's draws at `rows`."""
    return draw(len(x)) if rows is None else draw(rows.total)[rows.index]


def augment(x: torch.Tensor, policy: Sequence[str], generator: torch.Generator,
            rows: Rows | None = None) -> torch.Tensor:
    """DiffAugment: the policies in order (any of translation, cutout, color). `rows`: x is these rows of a
    larger batch (a process's slice under DDP), and gets the draws the whole batch would give those rows."""
    for name in policy:
        x = POLICIES[name](x, generator, rows=rows)
    return x


def classic(x: torch.Tensor, params: ClassicParams, generator: torch.Generator,
            rows: Rows | None = None) -> torch.Tensor:
    """The classic augmentation of `params`: shift by up to `shift` pixels each way, mirror half the images
    (when `hflip`), erase one square of `erase.size` x the side in a share `erase.p` of them. `rows`: as
    augment's."""
    if params.shift:
        x = shift(x, generator, params.shift, params.shift, fill=-1.0, rows=rows)
    if params.hflip:
        flip = uniform(x, generator, rows=rows) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    if params.erase.p > 0:
        x = cutout(x, generator, params.erase.size, fill=-1.0, p=params.erase.p, rows=rows)
    return x


def uniform(x: torch.Tensor, generator: torch.Generator, *shape: int, rows: Rows | None = None) -> torch.Tensor:
    return drawn(x, rows, lambda n: torch.rand(n, *shape, generator=generator, device=x.device, dtype=x.dtype))


def integers(x: torch.Tensor, generator: torch.Generator, low: int, high: int, rows: Rows | None) -> torch.Tensor:
    """(N, 1, 1) integers in [low, high), one per image."""
    return drawn(x, rows, lambda n: torch.randint(low, high, (n, 1, 1), generator=generator, device=x.device))


def color(x: torch.Tensor, generator: torch.Generator, rows: Rows | None = None) -> torch.Tensor:
    """Brightness +-0.5, saturation x[0, 2], contrast x[0.5, 1.5] (saturation is a no-op on grey)."""
    x = x + (uniform(x, generator, 1, 1, 1, rows=rows) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (uniform(x, generator, 1, 1, 1, rows=rows) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (uniform(x, generator, 1, 1, 1, rows=rows) + 0.5) + mean


def translation(x: torch.Tensor, generator: torch.Generator, ratio: float = 0.125,
                rows: Rows | None = None) -> torch.Tensor:
    """Shift each image by up to `ratio` of its side, filling with zeros (mid-grey)."""
    _, _, h, w = x.shape
    return shift(x, generator, int(h * ratio + 0.5), int(w * ratio + 0.5), fill=0.0, rows=rows)


def shift(x: torch.Tensor, generator: torch.Generator, sh: int, sw: int, fill: float,
          rows: Rows | None = None) -> torch.Tensor:
    """Shift each image by a whole number of pixels drawn from [-sh, sh] x [-sw, sw]; what comes in is `fill`."""
    n, _, h, w = x.shape
    dy = integers(x, generator, -sh, sh + 1, rows)
    dx = integers(x, generator, -sw, sw + 1, rows)
    batch, gy, gx = torch.meshgrid(torch.arange(n, device=x.device), torch.arange(h, device=x.device),
                                   torch.arange(w, device=x.device), indexing="ij")
    gy = torch.clamp(gy + dy + 1, 0, h + 1)
    gx = torch.clamp(gx + dx + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1], value=fill).permute(0, 2, 3, 1)
    return padded[batch, gy, gx].permute(0, 3, 1, 2).contiguous()


def cutout(x: torch.Tensor, generator: torch.Generator, ratio: float = 0.5, fill: float = 0.0,
           p: float = 1.0, rows: Rows | None = None) -> torch.Tensor:
    """Set a square of `ratio` of the side at a random place to `fill`, in each image with probability `p`
    (the square may reach past the border, where it is cut)."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = integers(x, generator, 0, h + (1 - ch % 2), rows)
    ox = integers(x, generator, 0, w + (1 - cw % 2), rows)
    batch, gy, gx = torch.meshgrid(torch.arange(n, device=x.device), torch.arange(ch, device=x.device),
                                   torch.arange(cw, device=x.device), indexing="ij")
    gy = torch.clamp(gy + oy - ch // 2, 0, h - 1)
    gx = torch.clamp(gx + ox - cw // 2, 0, w - 1)
    mask = torch.ones(n, h, w, dtype=x.dtype, device=x.device)
    mask[batch, gy, gx] = 0
    if p < 1:
        skip = uniform(x, generator, rows=rows) >= p
        mask = torch.where(skip.view(-1, 1, 1), torch.ones_like(mask), mask)
    mask = mask.unsqueeze(1)
    return x * mask + fill * (1 - mask) if fill else x * mask


POLICIES = {"color": color, "translation": translation, "cutout": cutout}


def shift_flip(x: torch.Tensor, augment: TrainAugment, rng: torch.Generator, batch_size: int) -> torch.Tensor:
    """A generator's train batch (this process's rows of `batch_size`) shifted and mirrored as its recipe's
    `augment` says (the classic augmentation without its erased square, which a generator would learn to draw),
    with the draws the whole batch would give those rows; unchanged when it is off."""
    if not augment.on:
        return x
    mine = ranks.my_slice(torch.arange(batch_size, device=x.device))
    return classic(x, ClassicParams(shift=augment.shift, hflip=augment.hflip, erase=Erase(p=0)), rng,
                   None if ranks.world() == 1 else Rows(mine, batch_size))
