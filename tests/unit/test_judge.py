"""The judge: trained on the real train split, saved as judge.pt, loaded back to the same predictions."""

import json

import numpy as np
import pytest
import torch

from components import paths
from components.errors import DataError
from components.models import classifier
from components.stages import prepare, train_judge
from tests.quality_data import FASHION_MNIST, small_params

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="needs the Fashion-MNIST package")]
CPU = torch.device("cpu")


def test_train_judge_saves_a_model_that_loads_and_scores(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = small_params(train_judge={"steps": 60})
    prepare.run(params)
    summary = train_judge.run(params)
    assert summary["steps"] == 60 and summary["val"]["images"] == 3
    metrics = json.loads(paths.metrics_file("train_judge").read_text())
    assert 0 <= metrics["val"]["accuracy"] <= 1 and "final" in metrics

    judge, saved = classifier.load(paths.JUDGE / paths.JUDGE_FILE, CPU)
    assert saved["class_names"] == ["T-shirt/top", "Pullover", "Coat"] and saved["size"] == 28
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28, 1), dtype=np.uint8)
    assert classifier.embed(judge, images, 2, CPU).shape == (5, judge.num_features)

    # Same params, a second run: it resumes the finished run and writes the same weights.
    before = (paths.JUDGE / paths.JUDGE_FILE).read_bytes()
    train_judge.run(params)
    assert (paths.JUDGE / paths.JUDGE_FILE).read_bytes() == before


def test_load_refuses_other_models(tmp_path):
    torch.save({"kind": "cgan"}, tmp_path / "x.pt")
    with pytest.raises(DataError, match="not a 'classifier'"):
        classifier.load(tmp_path / "x.pt", CPU)
    with pytest.raises(DataError, match="run the stage that trains it"):
        classifier.load(tmp_path / "missing.pt", CPU)
