"""The classic augmentation of the classifiers, in torch on the batch: shift, flip and erase do what their
params say, image by image, seeded by the trainer's generator; DiffAugment still sees mid-grey fill."""

import pytest
import torch
from pydantic import ValidationError

from components.config.transforms import ClassicParams, Erase
from components.models.augment import augment, classic

OFF = ClassicParams(shift=0, hflip=False, erase=Erase(p=0))


def batch(n: int = 16, channels: int = 1, size: int = 28, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_everything_off_is_the_identity():
    x = batch()
    assert torch.equal(classic(x, OFF, torch.Generator().manual_seed(0)), x)


def test_shift_moves_each_image_by_whole_pixels_within_the_limit_and_fills_black():
    x = batch(64)
    out = classic(x, OFF.model_copy(update={"shift": 2}), torch.Generator().manual_seed(0))
    moved = 0
    for image, result in zip(x, out):
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if torch.equal(result, shifted(image, dy, dx))]
        assert len(found) == 1, "each output is its input shifted by one offset within 2 pixels"
        moved += found[0] != (0, 0)
    assert moved > 40  # 24 of the 25 offsets move the image


def shifted(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """`image` moved by (dy, dx) read positions: out[y, x] = image[y + dy, x + dx], black outside."""
    _, h, w = image.shape
    out = torch.full_like(image, -1.0)
    ys, xs = slice(max(0, -dy), min(h, h - dy)), slice(max(0, -dx), min(w, w - dx))
    out[:, ys, xs] = image[:, max(0, dy):min(h, h + dy), max(0, dx):min(w, w + dx)]
    return out


def test_flip_mirrors_about_half_of_the_images_and_only_when_asked():
    x = batch(200)
    out = classic(x, OFF.model_copy(update={"hflip": True}), torch.Generator().manual_seed(0))
    mirrored = [torch.equal(o, i.flip(2)) for o, i in zip(out, x)]
    unchanged = [torch.equal(o, i) for o, i in zip(out, x)]
    assert all(m or u for m, u in zip(mirrored, unchanged))
    assert 70 < sum(mirrored) < 130


@pytest.mark.parametrize("p", [0.5, 1.0])
def test_erase_blacks_out_one_square_of_the_given_side_in_a_share_of_the_images(p):
    x = torch.ones(400, 1, 28, 28)
    out = classic(x, OFF.model_copy(update={"erase": Erase(p=p, size=0.25)}), torch.Generator().manual_seed(0))
    black = (out == -1).sum(dim=(1, 2, 3))
    erased = black > 0
    assert erased.float().mean().item() == pytest.approx(p, abs=0.08)
    assert (black[erased] <= 7 * 7).all() and (black[erased] == 49).float().mean() > 0.3  # cut at the border
    assert ((out == 1) | (out == -1)).all()


@pytest.mark.parametrize("channels", [1, 3])
def test_classic_is_seeded_keeps_shape_and_treats_images_apart(channels):
    x = batch(32, channels)
    params = ClassicParams()
    first = classic(x, params, torch.Generator().manual_seed(3))
    assert first.shape == x.shape
    assert torch.equal(first, classic(x, params, torch.Generator().manual_seed(3)))
    assert not torch.equal(first, classic(x, params, torch.Generator().manual_seed(4)))
    # Image i's output depends on image i alone (its labels still apply).
    other = x.clone()
    other[7] = batch(1, channels, seed=9)[0]
    changed = (classic(other, params, torch.Generator().manual_seed(3)) != first).flatten(1).any(1)
    assert changed.nonzero().flatten().tolist() == [7]


def test_diffaugment_fills_with_mid_grey():
    x = torch.ones(64, 1, 16, 16)
    out = augment(x, ["translation", "cutout"], torch.Generator().manual_seed(0))
    assert set(out.unique().tolist()) == {0.0, 1.0}


@pytest.mark.parametrize("raw, message", [({"shift": -1}, "greater than or equal to 0"),
                                          ({"erase": {"size": 0}}, "greater than 0"),
                                          ({"erase": {"p": 2}}, "less than or equal to 1"),
                                          ({"hflip_p": 0.5}, "Extra inputs")])
def test_params_name_the_bad_value(raw, message):
    with pytest.raises(ValidationError, match=message):
        ClassicParams.model_validate(raw)
