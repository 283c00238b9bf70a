"""The shared single-loss training loop: it learns, resumes to the same weights, and stops on NaN."""

import numpy as np
import pytest
import torch

from components.config.training import FitParams
from components.errors import DivergenceError
from components.training.fit import DeviceImages, fit
from components.training.rundir import CHECKPOINTS, METRICS_CSV

CPU = torch.device("cpu")


def regression(seed: int = 0):
    """A linear model learning y = 3x - 1 from a fixed sample."""
    torch.manual_seed(seed)
    model = torch.nn.Linear(1, 1)
    x = torch.linspace(-1, 1, 64)[:, None]
    y = 3 * x - 1

    def batch_metrics(m, rng, step):
        index = torch.randint(len(x), (16,), generator=rng)
        loss = torch.nn.functional.mse_loss(m(x[index]), y[index])
        return torch.stack([loss, m.weight[0, 0]])

    return model, batch_metrics


def run(tmp_path, steps: int, model=None, batch_metrics=None, **extra):
    if model is None:
        model, batch_metrics = regression()
    params = FitParams(steps=steps, batch_size=16, lr=0.05, checkpoint_every=10, log_every=5, **extra)
    return fit(model, batch_metrics, ("loss", "weight"), params, seed=0, device=CPU, run_dir=tmp_path,
               fingerprint={"model": "linear"}, finals=("final.pt",), name="test")


def test_fit_learns_and_logs(tmp_path):
    model, summary = run(tmp_path, 200)
    assert abs(model.weight.item() - 3) < 0.1 and abs(model.bias.item() + 1) < 0.1
    assert summary["steps"] == 200 and summary["final"]["loss"] < 0.01
    rows = (tmp_path / METRICS_CSV).read_text().splitlines()
    assert rows[0] == "step,loss,weight" and len(rows) == 1 + 40


def test_interrupted_run_resumes_to_the_same_weights(tmp_path):
    straight, _ = run(tmp_path / "a", 40, ema_decay=0.9)
    run(tmp_path / "b", 20, ema_decay=0.9)            # "killed" after step 20's checkpoint
    resumed, summary = run(tmp_path / "b", 40, ema_decay=0.9)
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    steps = [line.split(",")[0] for line in (tmp_path / "b" / METRICS_CSV).read_text().splitlines()[1:]]
    assert steps == [str(s) for s in range(5, 45, 5)]  # no duplicated rows


def test_changed_params_start_a_fresh_run(tmp_path, caplog):
    run(tmp_path, 20)
    run(tmp_path, 30, weight_decay=0.1)
    assert "not resuming (params, seed or data changed)" in caplog.text
    steps = [line.split(",")[0] for line in (tmp_path / METRICS_CSV).read_text().splitlines()[1:]]
    assert steps == [str(s) for s in range(5, 35, 5)]


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    model, good = regression()

    def explodes(m, rng, step):
        values = good(m, rng, step)
        return values * torch.nan if step >= 12 else values

    with pytest.raises(DivergenceError, match="step-0000010.pt"):
        run(tmp_path, 100, model=model, batch_metrics=explodes)
    assert [p.name for p in (tmp_path / CHECKPOINTS).iterdir()] == ["step-0000010.pt"]
    assert not (tmp_path / "final.pt").exists()


def test_device_images_scale_and_sample():
    images = np.stack([np.full((2, 2, 1), v, np.uint8) for v in (0, 255)])
    data = DeviceImages(images, np.array([0, 1]), CPU)
    x, y, index = data.batch(8, torch.Generator().manual_seed(0))
    assert x.shape == (8, 1, 2, 2)
    assert torch.equal(x[:, 0, 0, 0], torch.where(y == 0, -1.0, 1.0))
    assert torch.equal(y, index)


@pytest.mark.parametrize("precision, dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_the_precision_is_the_one_training_runs_at(tmp_path, precision, dtype):
    model, _ = regression()
    seen = set()

    def batch_metrics(m, rng, step):
        out = m(torch.linspace(-1, 1, 16)[:, None])
        seen.add(out.dtype)
        return torch.stack([out.float().square().mean(), m.weight[0, 0]])

    _, summary = run(tmp_path, 10, model, batch_metrics, precision=precision)
    assert seen == {dtype} and summary["precision"] == precision
    assert model.weight.dtype == torch.float32  # autocast: the weights stay fp32


def test_a_checkpoint_of_the_other_precision_is_not_resumed(tmp_path, caplog):
    run(tmp_path, 20, precision="fp32")
    run(tmp_path, 30, precision="bf16")
    assert "not resuming (params, seed or data changed)" in caplog.text


def test_auto_resumes_a_run_of_the_precision_it_picks(tmp_path, caplog):
    from components.device import resolve_precision
    run(tmp_path, 20, precision="auto")
    run(tmp_path, 30, precision=resolve_precision(CPU, "auto"))
    assert "not resuming" not in caplog.text
    steps = [line.split(",")[0] for line in (tmp_path / METRICS_CSV).read_text().splitlines()[1:]]
    assert steps == [str(s) for s in range(5, 35, 5)]
