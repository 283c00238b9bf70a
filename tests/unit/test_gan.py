"""The GAN trainer on scikit-learn's 8x8 digits (three classes): it learns, resumes to the same
weights, logs without duplicates, and stops on divergence keeping the last good checkpoint."""

import csv

import numpy as np
import pytest
import torch

from components.config.generator import GeneratorParams, TrainGeneratorParams
from components.generation.sample import generate_class_range
from components.models import cgan
from components.training import checkpoint
from components.training.rundir import RunDir
from components.errors import DivergenceError
from components.training.gan import DivergenceWatch, train_gan

CLASSES = ["zero", "one", "seven"]
ARCH = GeneratorParams(size=8, latent_dim=16, width=16, embed_dim=8)
CPU = torch.device("cpu")
pytestmark = pytest.mark.usefixtures("one_thread")  # small nets: a second thread only waits (conftest.py)


def short(**changes) -> TrainGeneratorParams:
    base = dict(steps=12, batch_size=16, log_every=2, checkpoint_every=4, keep_checkpoints=5, grid_columns=3)
    return TrainGeneratorParams(**{**base, **changes})


def train(digits, run_dir, params: TrainGeneratorParams, arch: GeneratorParams = ARCH, seed: int = 0) -> dict:
    images, labels = digits
    return train_gan(images, labels, CLASSES, arch, params, seed, CPU, run_dir)


def weights(run_dir) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "generator.pt", weights_only=True)["state_dict"]


def full_state(run_dir, step: int) -> dict:
    return checkpoint.load(run_dir / "checkpoints" / checkpoint.name(step))


def assert_same_tensors(a, b) -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same_tensors(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same_tensors(x, y)
    else:
        assert a == b


def logged_steps(run_dir) -> list[int]:
    with open(run_dir / "metrics.csv", newline="") as fh:
        return [int(row["step"]) for row in csv.DictReader(fh)]


def test_training_moves_samples_towards_the_real_classes(digits, tmp_path):
    images, labels = digits
    params = TrainGeneratorParams(steps=400, batch_size=32, lr=1e-3, log_every=50, checkpoint_every=200,
                                  ema_decay=0.99, grid_columns=4, diffaugment=[])
    summary = train(digits, tmp_path, params)
    assert summary["steps"] == 400 and np.isfinite(list(summary["final"].values())).all()
    assert (tmp_path / "samples.png").exists() and (tmp_path / "samples" / "step-0000200.png").exists()

    untrained, D = cgan.build(ARCH, 3, 1, seed=0)
    trained, _ = cgan.load(tmp_path / "generator.pt", CPU)
    D.load_state_dict(full_state(tmp_path, 400)["discriminator"])
    real = images.reshape(len(images), -1).astype(np.float64)
    centroids = np.stack([real[labels == k].mean(0) for k in range(3)])

    def fakes(model, k):
        return generate_class_range(model, k, 0, 200, seed=1).reshape(200, -1).astype(np.float64)

    # 1. class means of the samples come closer to the real class means
    gap = {name: np.mean([np.linalg.norm(fakes(m, k).mean(0) - centroids[k]) for k in range(3)])
           for name, m in (("before", untrained), ("after", trained))}
    assert gap["after"] < 0.5 * gap["before"]
    # 2. a nearest-centroid classifier fitted on real digits reads the samples as their class
    hits = [np.mean(np.argmin(((fakes(trained, k)[:, None] - centroids[None]) ** 2).sum(-1), 1) == k)
            for k in range(3)]
    assert min(hits) > 0.8, hits  # chance: 1/3
    # 3. the generator's loss, under the trained discriminator, fell
    z, y = torch.randn(300, ARCH.latent_dim), torch.arange(300) % 3
    with torch.no_grad():
        loss = {name: cgan.g_loss("hinge", D(cgan.sample(m, y, z), y)).item()
                for name, m in (("before", untrained), ("after", trained))}
    assert loss["after"] < loss["before"]


def test_killed_run_resumes_to_the_same_weights(digits, tmp_path, monkeypatch, caplog):
    caplog.set_level("INFO", logger="genaug")
    straight = tmp_path / "straight"
    train(digits, straight, short(diffaugment=["translation", "cutout", "color"]))

    killed = tmp_path / "killed"
    real_log = RunDir.log

    def log_then_die(self, step, values):
        real_log(self, step, values)
        if step == 10:  # after the step-8 checkpoint: steps 9-10 are lost, their row is logged
            raise KeyboardInterrupt

    monkeypatch.setattr(RunDir, "log", log_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(digits, killed, short(diffaugment=["translation", "cutout", "color"]))
    assert not (killed / "generator.pt").exists()
    assert checkpoint.step_of(checkpoint.latest(killed / "checkpoints")) == 8
    monkeypatch.setattr(RunDir, "log", real_log)

    train(digits, killed, short(diffaugment=["translation", "cutout", "color"]))
    assert "(step 8)" in caplog.text
    assert_same_tensors(weights(killed), weights(straight))
    assert_same_tensors(full_state(killed, 12), full_state(straight, 12))  # G, D, EMA, Adam, RNG
    assert logged_steps(killed) == logged_steps(straight) == [2, 4, 6, 8, 10, 12]


def test_raising_steps_continues_a_finished_run(digits, tmp_path, caplog):
    caplog.set_level("INFO", logger="genaug")
    train(digits, tmp_path / "straight", short(steps=12))
    train(digits, tmp_path / "extended", short(steps=8))
    train(digits, tmp_path / "extended", short(steps=12))
    assert "(step 8)" in caplog.text
    assert_same_tensors(weights(tmp_path / "extended"), weights(tmp_path / "straight"))


def test_changed_params_start_afresh_and_old_checkpoints_go(digits, tmp_path, caplog):
    train(digits, tmp_path, short(steps=8, keep_checkpoints=2))
    assert [checkpoint.step_of(p) for p in checkpoint.listed(tmp_path / "checkpoints")] == [4, 8]
    train(digits, tmp_path, short(steps=4, lr=1e-3))
    assert "not resuming (params, seed or data changed)" in caplog.text
    assert [checkpoint.step_of(p) for p in checkpoint.listed(tmp_path / "checkpoints")] == [4]
    assert logged_steps(tmp_path) == [2, 4]


def test_nan_loss_stops_with_the_last_good_checkpoint(digits, tmp_path, monkeypatch):
    real_loss, calls = cgan.d_loss, []

    def poisoned(*args, **kwargs):
        calls.append(1)
        loss = real_loss(*args, **kwargs)
        return loss * float("nan") if len(calls) >= 6 else loss

    monkeypatch.setattr(cgan, "d_loss", poisoned)
    with pytest.raises(DivergenceError, match=r"diverged by step 6: a loss became NaN.*step-0000004\.pt \(step 4\)"):
        train(digits, tmp_path, short())
    assert not (tmp_path / "generator.pt").exists()
    assert checkpoint.step_of(checkpoint.latest(tmp_path / "checkpoints")) == 4
    state = full_state(tmp_path, 4)
    assert all(torch.isfinite(v).all() for v in state["generator"].values())


def test_watch_flags_a_discriminator_that_always_wins():
    watch = DivergenceWatch(patience=3, device=CPU)
    ok = torch.tensor([1.0, 1.0, 0.5, -0.5, 0.9, 0.8])
    perfect = torch.tensor([0.0, 3.0, 2.0, -2.0, 1.0, 1.0])
    for values in (perfect, perfect, ok, perfect, perfect):
        watch.update(values)
    assert watch.problem() is None  # never three in a row
    watch.update(perfect)
    assert "every real and fake image right for 3 steps" in watch.problem()
    watch.update(ok)
    watch.update(ok * float("inf"))
    assert "NaN or infinite" in watch.problem()


def test_bad_inputs_are_named(digits, tmp_path):
    images, labels = digits
    with pytest.raises(Exception, match="labels must lie in"):
        train_gan(images, labels + 5, CLASSES, ARCH, short(), 0, CPU, tmp_path)
    with pytest.raises(Exception, match="uint8"):
        train_gan(images.astype(np.float32), labels, CLASSES, ARCH, short(), 0, CPU, tmp_path)
