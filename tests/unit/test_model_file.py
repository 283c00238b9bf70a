"""Model files and checkpoints that cannot be read: a clear error naming the file and the fix, not torch's."""

import pytest
import torch

from components.config.classifier import ClassifierParams
from components.errors import DataError
from components.models import classifier
from components.training import generators
from components.training import checkpoint

CPU = torch.device("cpu")


def judge_file(tmp_path):
    model = classifier.build(ClassifierParams(width=8, stages=2), 3, 1, seed=0)
    path = tmp_path / "judge.pt"
    torch.save(classifier.export(model, ClassifierParams(width=8, stages=2), ["a", "b", "c"], 12, step=1), path)
    return path


def test_a_truncated_model_file_names_itself_and_the_fix(tmp_path):
    path = judge_file(tmp_path)
    assert classifier.load(path, CPU)[1]["step"] == 1
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match=r"judge.pt: not a readable torch file .*run the stage that writes it"):
        classifier.load(path, CPU)


def test_a_file_of_another_format_is_refused_without_torch_s_advice(tmp_path):
    path = tmp_path / "generator.pt"
    path.write_bytes(b"not a model at all")
    with pytest.raises(DataError, match="generator.pt: not a readable torch file") as refused:
        generators.load(path, CPU)
    assert "weights_only" not in str(refused.value)


def test_a_truncated_checkpoint_says_to_resume_from_an_earlier_one(tmp_path):
    path = tmp_path / checkpoint.name(100)
    checkpoint.save(path, {"step": 100, "weights": torch.zeros(1000)})
    assert checkpoint.load(path)["step"] == 100
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match="not a readable torch file .*resume from an earlier one"):
        checkpoint.load(path)
    with pytest.raises(DataError, match="no such checkpoint"):
        checkpoint.load(tmp_path / checkpoint.name(200))
