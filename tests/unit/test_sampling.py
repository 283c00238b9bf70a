"""Batches with a synthetic share: the asked share in every batch, the same real images whatever the share
(equal real exposure), oversampling that evens the classes, resumable draws, and clear refusals."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from components.data.sampling import ShareSampler, class_balancing, synthetic_per_batch
from components.errors import DataError, ParamsError
from components.training.classify import SyntheticPart, balancing_weights, class_weights, mixture_weights


@pytest.mark.parametrize("share, extra", [(0.1, 7), (0.25, 21), (0.5, 64), (0.0, 0)])
def test_synthetic_images_join_the_real_batch_in_the_asked_share(share, extra):
    assert synthetic_per_batch(64, share) == extra
    if share:
        assert extra / (64 + extra) == pytest.approx(share, abs=0.01)


def test_every_batch_holds_the_asked_share():
    real, synthetic = np.arange(100), np.arange(100, 400)
    sampler = ShareSampler.with_share(real, synthetic, batch_size=40, share=0.25, steps=50, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 50
    for indices in batches:
        assert len(indices) == 40
        assert sum(i >= 100 for i in indices) == 10
    seen = set().union(*batches)
    assert len(seen & set(synthetic.tolist())) > 200  # 500 draws with replacement reach ~240 of 300


def test_real_images_are_the_same_with_or_without_synthetic_ones():
    real, synthetic = np.arange(90), np.arange(90, 540)
    alone = ShareSampler(real, synthetic[:0], 64, 0, steps=30, seed=5)
    mixed = ShareSampler(real, synthetic, 64, 21, steps=30, seed=5)
    for step in range(30):
        assert np.array_equal(alone.draw(step)[0], mixed.draw(step)[0])
    counts = np.bincount(np.concatenate([mixed.draw(s)[0] for s in range(30)]), minlength=90)
    assert counts.sum() == 30 * 64  # each real image is seen exactly as often as in the real-only run
    assert not np.array_equal(alone.draw(0)[0], ShareSampler(real, synthetic, 64, 21, 30, seed=6).draw(0)[0])


def test_draws_depend_on_the_step_alone():
    sampler = ShareSampler(np.arange(50), np.arange(50, 80), 8, 4, steps=100, seed=1)
    late = sampler.draw(73)
    list(sampler)
    assert all(np.array_equal(a, b) for a, b in zip(late, sampler.draw(73)))


def test_oversampling_draws_every_class_as_often():
    labels = np.array([0] * 90 + [1] * 9 + [2] * 90)
    weights = class_balancing(labels)
    assert weights.sum() == pytest.approx(1.0)
    sampler = ShareSampler(np.arange(len(labels)), np.arange(0), 64, 0, steps=300, seed=0, real_weights=weights)
    drawn = labels[np.concatenate([sampler.draw(s)[0] for s in range(300)])]
    shares = np.bincount(drawn) / len(drawn)
    assert shares == pytest.approx([1 / 3] * 3, abs=0.02)


def test_for_dataset_reads_the_manifest_and_feeds_a_dataloader():
    manifest = pd.DataFrame({"source": ["real"] * 6 + ["synthetic"] * 4, "label": [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]})
    dataset = TensorDataset(torch.arange(10))
    sampler = ShareSampler.for_dataset(manifest, batch_size=8, share=0.5, steps=5, seed=0)
    for (batch,) in DataLoader(dataset, batch_sampler=sampler):
        assert len(batch) == 8 and (batch >= 6).sum() == 4


@pytest.mark.parametrize("kwargs, error, message", [
    ({"share": 1.5}, ParamsError, r"\[0, 1\]"),
    ({"batch_size": 0}, ParamsError, "batch_size"),
    ({"synthetic": np.arange(0)}, DataError, "no synthetic images"),
    ({"real": np.arange(0)}, DataError, "no real images"),
    ({"steps": 0}, ParamsError, "steps"),
])
def test_bad_settings_are_refused(kwargs, error, message):
    args = {"real": np.arange(10), "synthetic": np.arange(10, 20), "batch_size": 8, "share": 0.25, "steps": 3,
            "seed": 0, **kwargs}
    with pytest.raises(error, match=message):
        ShareSampler.with_share(**args)


def test_mixture_weights_give_every_class_the_same_part_of_the_loss():
    """9 real images of class 2 against 90 of classes 0 and 1, synthetic images of class 2 only, at loss
    weight 0.5: class k's part of the loss is (p_k + 0.5 q_k) w_k, the same for every class, the total kept."""
    real = np.repeat([0, 1, 2], [90, 90, 9])
    synthetic = np.full(81, 2)
    weights = mixture_weights(real, synthetic, 0.5, 4)
    p, q = np.bincount(real, minlength=4) / len(real), np.bincount(synthetic, minlength=4) / len(synthetic)
    parts = (p + 0.5 * q) * weights
    assert parts[:3] == pytest.approx([0.5, 0.5, 0.5]) and weights[3] == 0  # class 3: absent, no weight
    assert parts.sum() == pytest.approx(1.5)
    # Synthetic weight 0: the real-only class weights; balanced batches: no weights at all.
    assert mixture_weights(real, synthetic, 0.0, 3) == pytest.approx(balancing_weights(real, 3))
    assert mixture_weights(np.repeat([0, 1], 5), np.repeat([1, 0], 3), 1.0, 2) is None


def test_weighted_synthetic_runs_weigh_both_parts_or_the_real_part_alone():
    """evaluate.synthetic_weighting: mixture weights over real and synthetic images, applied to both parts; or
    the real part weighted as in real_weighted (the rare real images keep their weight), the synthetic part not."""
    real, synthetic = np.repeat([0, 1, 2], [90, 90, 9]), np.full(81, 2)
    part = SyntheticPart(np.zeros((81, 4, 4, 1), np.uint8), synthetic, 21, 0.5, 100)
    weights, both = class_weights(real, 3, "weighted", part)
    assert both and weights == pytest.approx(mixture_weights(real, synthetic, 0.5, 3))
    weights, both = class_weights(real, 3, "weighted", SyntheticPart(**{**vars(part), "weighting": "real"}))
    assert not both and weights == pytest.approx(balancing_weights(real, 3)) and weights[2] > 9 * weights[0]
    assert class_weights(real, 3, "none", part) == (None, False)
    assert class_weights(real, 3, "oversampled", None) == (None, False)
