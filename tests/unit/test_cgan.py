"""The cGAN model file: shapes for every size and channel count, label conditioning, seeded build,
save/load, losses, and DiffAugment."""

import pytest
import torch
from pydantic import ValidationError

from components.config.generator import GeneratorParams
from components.models import cgan
from components.pixels import to_uint8
from components.models.augment import augment

TINY = dict(latent_dim=8, width=8, embed_dim=4, max_width=32)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [8, 12, 14, 28, 32, 64])
def test_shapes_and_range(size, channels):
    G, D = cgan.build(GeneratorParams(size=size, **TINY), num_classes=3, channels=channels, seed=0)
    z, labels = torch.randn(5, 8), torch.tensor([0, 1, 2, 0, 1])
    images = G(z, labels)
    assert images.shape == (5, channels, size, size)
    assert images.min() >= -1 and images.max() <= 1
    assert D(images, labels).shape == (5,)


def test_resolutions_follow_the_size():
    assert [cgan.num_upsamples(s) for s in (8, 12, 28, 32, 64, 96)] == [1, 1, 2, 3, 4, 4]
    assert cgan.widths(GeneratorParams(size=64, width=32, max_width=128)) == [128, 128, 64, 32]


def test_half_of_28_gets_the_depth_of_28():
    # 14 halves exactly only once (to 7): it starts at 4 and reaches 7 with a 3x3 transposed conv.
    assert cgan.sides(14) == [4, 7, 14] and cgan.sides(28) == [7, 14, 28]
    assert cgan.widths(GeneratorParams(size=14)) == cgan.widths(GeneratorParams(size=28)) == [128, 64]
    G, D = cgan.build(GeneratorParams(size=14, **TINY), num_classes=2, channels=1, seed=0)
    assert [m.kernel_size for m in G.body if isinstance(m, torch.nn.ConvTranspose2d)] == [(3, 3), (4, 4)]
    assert G.start == 4 and D(G(torch.randn(2, 8), torch.tensor([0, 1])), torch.tensor([0, 1])).shape == (2,)


@pytest.mark.parametrize("size", [6, 15, 0])
def test_size_must_be_even_and_at_least_8(size):
    with pytest.raises(ValidationError, match="even and at least 8"):
        GeneratorParams(size=size)


def test_label_conditions_both_networks():
    G, D = cgan.build(GeneratorParams(size=28, **TINY), num_classes=4, channels=1, seed=0)
    z = torch.randn(1, 8).repeat(4, 1)
    images = G(z, torch.arange(4))
    assert all(not torch.allclose(images[0], images[k]) for k in range(1, 4))
    logits = D(images[:1].repeat(4, 1, 1, 1), torch.arange(4))
    assert len(set(logits.tolist())) == 4


def test_build_is_seeded_and_leaves_global_rng_alone():
    params = GeneratorParams(size=8, **TINY)
    before = torch.get_rng_state()
    G1, D1 = cgan.build(params, 3, 1, seed=5)
    assert torch.equal(before, torch.get_rng_state())
    G2, D2 = cgan.build(params, 3, 1, seed=5)
    G3, _ = cgan.build(params, 3, 1, seed=6)
    for a, b in zip([*G1.state_dict().values(), *D1.state_dict().values()],
                    [*G2.state_dict().values(), *D2.state_dict().values()]):
        assert torch.equal(a, b)
    assert not torch.equal(G1.project.weight, G3.project.weight)


def test_export_and_load_give_the_same_generator(tmp_path):
    params = GeneratorParams(size=12, **TINY)
    G, _ = cgan.build(params, 3, 3, seed=1)
    torch.save(cgan.export(G, params, ["a", "b", "c"], step=7), tmp_path / "g.pt")
    back, saved = cgan.load(tmp_path / "g.pt", torch.device("cpu"))
    assert saved["class_names"] == ["a", "b", "c"] and saved["step"] == 7
    z, labels = torch.randn(4, 8), torch.tensor([0, 1, 2, 1])
    assert torch.equal(cgan.sample(G, labels, z), cgan.sample(back, labels, z))
    pixels = to_uint8(cgan.sample(back, labels, z))
    assert pixels.shape == (4, 12, 12, 3) and pixels.dtype.name == "uint8"


def test_losses():
    good_real, good_fake = torch.full((4,), 2.0), torch.full((4,), -2.0)
    assert cgan.d_loss("hinge", good_real, good_fake).item() == 0
    assert cgan.d_loss("hinge", torch.zeros(4), torch.zeros(4)).item() == 2
    assert cgan.d_loss("hinge", torch.full((4,), 0.9), good_fake, smoothing=0.1).item() == pytest.approx(0)
    assert cgan.g_loss("hinge", good_fake).item() == 2
    ns_good = cgan.d_loss("non-saturating", good_real, good_fake)
    assert ns_good < cgan.d_loss("non-saturating", good_fake, good_real)
    assert cgan.g_loss("non-saturating", good_real) < cgan.g_loss("non-saturating", good_fake)


@pytest.mark.parametrize("policy", [["translation"], ["cutout"], ["color"], ["translation", "cutout", "color"]])
def test_diffaugment_is_differentiable_and_seeded(policy):
    x = (torch.rand(6, 3, 12, 12) * 2 - 1).requires_grad_()
    out = augment(x, policy, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    again = augment(x.detach(), policy, torch.Generator().manual_seed(0))
    other = augment(x.detach(), policy, torch.Generator().manual_seed(1))
    assert torch.equal(out.detach(), again) and not torch.equal(again, other)
    assert torch.equal(augment(x.detach(), [], torch.Generator()), x.detach())
