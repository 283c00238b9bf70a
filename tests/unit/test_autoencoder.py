"""The plain autoencoder and the outlier scorer: shapes for any side and channel count, save/load, scores
higher for corrupted than for clean images, and the train_scorer stage feeding assemble's card (top
outliers per split, their grid, nothing dropped unless asked)."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_digits

from components import paths
from components.config import validate
from components.config.autoencoder import TrainScorerParams
from components.data.manifest import read_manifest
from components.data.sources import sklearn_digits_path
from components.errors import DataError
from components.models import autoencoder
from components.stages import assemble, prepare, train_scorer
from components.training.autoencoder import train_scorer as fit_scorer

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")



@pytest.mark.parametrize("latent_dim", [8, None])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [4, 7, 8, 14, 28])
def test_shapes_for_any_side(size, channels, latent_dim):
    model = autoencoder.build(channels, size, seed=0, width=8, levels=2, latent_dim=latent_dim)
    images = torch.rand(3, channels, size, size) * 2 - 1
    out = model(images)
    assert out.shape == images.shape
    if latent_dim:
        assert out.min() >= -1 and out.max() <= 1


def test_the_denoiser_is_fully_convolutional_and_the_scorer_is_not():
    denoiser = autoencoder.build(1, 14, seed=0, width=8, levels=2)
    assert denoiser(torch.zeros(2, 1, 30, 20)).shape == (2, 1, 30, 20)
    scorer = autoencoder.build(1, 14, seed=0, width=8, levels=2, latent_dim=4)
    with pytest.raises(DataError, match="trained on 14x14 images, got 28x28"):
        scorer(torch.zeros(2, 1, 28, 28))


def test_an_untrained_denoiser_starts_near_the_identity():
    """Residual output: the net learns a correction, so it starts close to passing its input through."""
    model = autoencoder.build(1, 14, seed=0, width=8, levels=2)
    images = torch.rand(4, 1, 14, 14) * 2 - 1
    assert (model(images) - images).abs().mean() < 0.5


def test_build_is_seeded_export_and_load_round_trip(tmp_path):
    before = torch.get_rng_state()
    a = autoencoder.build(1, 8, seed=4, width=8, levels=2, latent_dim=4)
    assert torch.equal(before, torch.get_rng_state())
    b = autoencoder.build(1, 8, seed=4, width=8, levels=2, latent_dim=4)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    torch.save(autoencoder.export(a, "scorer", step=3), tmp_path / "scorer.pt")
    loaded, saved = autoencoder.load(tmp_path / "scorer.pt", "scorer", CPU)
    assert saved["step"] == 3 and saved["arch"] == {"width": 8, "levels": 2, "latent_dim": 4}
    images = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 1), dtype=np.uint8)
    assert np.array_equal(autoencoder.score(loaded, images, 2, CPU), autoencoder.score(a, images, 2, CPU))
    # another batch size changes the result by rounding only
    assert np.allclose(autoencoder.score(a, images, 5, CPU), autoencoder.score(a, images, 2, CPU))
    with pytest.raises(DataError, match="not a 'denoiser' one"):
        autoencoder.load(tmp_path / "scorer.pt", "denoiser", CPU)
    with pytest.raises(DataError, match="run the train_scorer stage first"):
        autoencoder.load(tmp_path / "missing.pt", "scorer", CPU)


def test_score_is_higher_for_corrupted_than_clean_images(tmp_path):
    data = load_digits()
    images = np.round(data.images * (255 / 16)).astype(np.uint8)[..., None]
    train, held_out = images[:1200], images[1200:1400]
    tp = TrainScorerParams(steps=300, batch_size=32, lr=3e-3, width=8, latent_dim=8, log_every=50,
                           checkpoint_every=150)
    model, summary = fit_scorer(train, held_out[:5], tp, seed=0, device=CPU, run_dir=tmp_path)
    assert summary["steps"] == 300 and (tmp_path / "scorer.pt").exists() and (tmp_path / "reconstructions.png").exists()

    rng = np.random.default_rng(1)
    corrupted = {
        "salt and pepper": np.where(rng.random(held_out.shape) < 0.15, rng.choice([0, 255], held_out.shape),
                                    held_out).astype(np.uint8),
        "inverted": 255 - held_out,
        "noise": rng.integers(0, 256, held_out.shape, dtype=np.uint8),
        "shifted": np.roll(held_out, 3, axis=2),
    }
    clean = autoencoder.score(model, held_out, 64, CPU)
    for name, images in corrupted.items():
        scores = autoencoder.score(model, images, 64, CPU)
        # the share of (corrupted, clean) pairs ranked the right way round (AUROC)
        auc = (scores[:, None] > clean[None, :]).mean()
        assert auc > 0.9, f"{name}: corrupted images outscore clean ones in only {auc:.0%} of pairs"


@pytest.fixture
def scored(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = validate({
        "device": "cpu",
        "classic": {"hflip": False}, "prepare": {"source": {"kind": "sklearn-digits", "path": str(sklearn_digits_path())}, "size": 8,
                    "per_class": 20, "classes": ["0", "1", "7"]},
        "generator": {"size": 8},
        "upscale": {"factor": 1},
        "train_scorer": {"steps": 20, "batch_size": 16, "log_every": 5, "checkpoint_every": 10, "width": 8,
                         "latent_dim": 4},
        "assemble": {"outliers": 3},
    })
    prepare.run(params)
    summary = train_scorer.run(params)
    return params, summary


def test_train_scorer_scores_every_real_image(scored):
    params, summary = scored
    scores = pd.read_parquet(paths.SCORES)
    manifest = read_manifest(paths.PREPARED)
    assert scores["id"].tolist() == manifest["id"].tolist() and scores["outlier_score"].notna().all()
    assert set(summary["outlier_score"]) == {"train", "val", "test"} and summary["steps"] == 20
    assert (paths.SCORER / "scorer.pt").exists() and (paths.SCORER / "metrics.csv").exists()


def test_the_card_lists_the_top_outliers_and_drops_none_by_default(scored):
    params, _ = scored
    summary = assemble.run(params, synthetic=None)
    assert summary["train_images"]["real"] == 54  # 20 per class minus 2 for val, nothing dropped
    manifest = read_manifest(paths.AUGMENTED)
    scores = pd.read_parquet(paths.SCORES).set_index("id")["outlier_score"]
    assert np.allclose(manifest["outlier_score"], manifest["id"].map(scores))
    card = (paths.AUGMENTED / paths.CARD).read_text()
    top_train = scores[manifest.loc[manifest["split"] == "train", "id"]].sort_values(ascending=False)
    assert f"| train | 1 | `{top_train.index[0]}` |" in card and "| train | 4 |" not in card
    assert "None was dropped" in card
    assert (paths.AUGMENTED / paths.OUTLIERS).exists()


def test_drop_real_outliers_removes_the_highest_train_scores(scored):
    params, _ = scored
    scores = pd.read_parquet(paths.SCORES)
    worst = scores[scores["split"] == "train"].nlargest(2, "outlier_score")["id"].tolist()
    params = params.model_copy(update={"assemble": params.assemble.model_copy(update={"drop_real_outliers": 2})})
    summary = assemble.run(params, synthetic=None)
    assert summary["train_images"]["real"] == 52
    kept = read_manifest(paths.AUGMENTED)["id"]
    assert not kept.isin(worst).any()
    card = (paths.AUGMENTED / paths.CARD).read_text()
    assert "**2 real train image(s) with the highest scores were dropped**" in card


def test_dropping_needs_the_scores(scored):
    params, _ = scored
    (paths.SCORES).unlink()
    summary = assemble.run(params, synthetic=None)  # without scores: the card says so, nothing dropped
    assert summary["train_images"]["real"] == 54
    assert "No outlier scores" in (paths.AUGMENTED / paths.CARD).read_text()
    params = params.model_copy(update={"assemble": params.assemble.model_copy(update={"drop_real_outliers": 1})})
    with pytest.raises(DataError, match="run the train_scorer stage first"):
        assemble.run(params, synthetic=None)
