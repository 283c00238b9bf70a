"""evaluate on a tiny dataset: the arms, their scores and lift, the synthetic:real ratio sweep, the generative
metrics and the plots; and the release gate, which refuses noise as synthetic data and accepts held-out real
images."""

import json

import numpy as np
import pandas as pd
import pytest

from components import paths
from components.config.data import GateParams
from components.errors import ParamsError, VersionError
from components.metrics.classification import scores
from components.stages import evaluate, prepare, train_judge
from components.stages.version import check_gate
from tests.quality_data import FASHION_MNIST, augmented_with, small_params
from tests.threads import one_thread  # noqa: F401 (an autouse fixture)


@pytest.fixture
def prepared(tmp_path, monkeypatch):
    """data/prepared and a judge in a tmp working folder."""
    if not FASHION_MNIST.is_dir():
        pytest.skip("needs the Fashion-MNIST package")
    monkeypatch.chdir(tmp_path)
    params = small_params()
    prepare.run(params)
    train_judge.run(params)
    return params


def test_scores_of_known_predictions():
    result = scores(np.array([0, 0, 0, 1]), np.array([0, 0, 1, 1]), num_classes=3)
    assert result["accuracy"] == 0.75
    assert result["recall"][:2] == [2 / 3, 1.0] and np.isnan(result["recall"][2])
    assert result["balanced_accuracy"] == pytest.approx(5 / 6)  # the absent class is left out


def test_evaluate_reports_every_arm_and_the_generative_metrics(prepared):
    params = small_params(evaluate={"arms": ["real", "real_weighted", "real_classic", "real_synthetic"],
                                    "seeds": [0], "fit": {"steps": 20, "checkpoint_every": 20, "log_every": 10}})
    augmented_with("heldout", 30, params)
    report = evaluate.run(params)

    metrics = json.loads(paths.metrics_file("evaluate").read_text())
    assert metrics == json.loads(json.dumps(report))
    assert list(report["arms"]) == ["real", "real_weighted", "real_classic", "real_synthetic"]
    real = metrics["arms"]["real"]
    assert 0 < real["balanced_accuracy"]["mean"] <= 1 and real["balanced_accuracy"]["std"] == 0
    assert set(real["recall"]) == {"T-shirt/top", "Pullover", "Coat"}
    # Balanced real classes: weighting changes nothing, so that arm shares the real arm's runs.
    assert metrics["arms"]["real_weighted"] == real
    assert any("class weighting changes nothing" in note for note in metrics["notes"])
    best = max(["real", "real_weighted", "real_classic"], key=lambda a: metrics["arms"][a]["accuracy"]["mean"])
    assert metrics["lift"]["baseline"]["accuracy"]["arm"] == best
    assert metrics["lift"]["real_synthetic"]["accuracy"] == pytest.approx(
        metrics["arms"]["real_synthetic"]["accuracy"]["mean"] - metrics["arms"][best]["accuracy"]["mean"], abs=2e-5)

    gen = metrics["generative"]
    assert gen["synthetic"] == 90 and gen["kid"]["subset_size"] == 90  # cut to the smaller set
    assert gen["fd"] >= 0 and gen["fd_floor"] >= 0 and 0 <= gen["precision"] <= 1 and 0 <= gen["recall"] <= 1
    assert set(gen["per_class"]) == {"T-shirt/top", "Pullover", "Coat"} and gen["per_class"]["Coat"]["synthetic"] == 30
    assert 0 <= gen["cas"]["accuracy"] <= 1

    arms = pd.read_csv(paths.EVALUATE_PLOTS / "arms.csv")
    assert arms["arm"].tolist() == list(report["arms"]) and arms["synthetic"].tolist() == [0, 0, 0, 1]
    assert len(pd.read_csv(paths.EVALUATE_PLOTS / "runs.csv")) == 4
    assert (paths.EVALUATE_PLOTS / "samples.png").exists()
    assert "| real_synthetic |" in (paths.EVALUATE_PLOTS / "report.md").read_text()

    # The same params again: byte-identical metrics (what DVC records), from the finished runs.
    before = paths.metrics_file("evaluate").read_bytes()
    evaluate.run(params)
    assert paths.metrics_file("evaluate").read_bytes() == before


def test_without_synthetic_samples_the_synthetic_arms_are_skipped(prepared):
    params = small_params(evaluate={"seeds": [0], "ratios": [1],
                                    "fit": {"steps": 10, "checkpoint_every": 10, "log_every": 10}})
    from components.stages import assemble

    assemble.run(params, synthetic=None)
    report = evaluate.run(params)
    assert list(report["arms"]) == ["real"] and report["lift"] == {} and "generative" not in report
    assert "real_synthetic: skipped, the dataset has no synthetic samples" in report["notes"]
    assert "ratios" not in report and not (paths.EVALUATE_PLOTS / "ratios.csv").exists()
    assert "ratios: the sweep is skipped, the dataset has no synthetic samples" in report["notes"]


@pytest.mark.parametrize("ratios, message", [([-0.5], "must be > 0"), ([0], "must be > 0"),
                                             ([float("inf")], "finite"), ([0.5, 1, 0.5], "must not repeat")])
def test_bad_ratios_are_refused(ratios, message):
    with pytest.raises(ParamsError, match=message) as err:
        small_params(evaluate={"ratios": ratios})
    assert "evaluate.ratios" in str(err.value)


def test_ratio_subset_takes_the_first_of_each_class_up_to_what_there_is():
    labels = np.array([2, 0, 1, 0, 2, 0, 0, 1, 2])
    synthetic = evaluate.Images(np.arange(len(labels)).reshape(-1, 1, 1, 1), labels)
    real_counts = np.array([4, 10, 3])

    # Wanted: floor of 2, 5, 1.5; class 1 has only 2. Kept in manifest order, the classes interleaved.
    half = evaluate.ratio_subset(synthetic, real_counts, 0.5)
    assert half.images.ravel().tolist() == [0, 1, 2, 3, 7] and half.labels.tolist() == [2, 0, 1, 0, 1]
    assert len(evaluate.ratio_subset(synthetic, real_counts, 0.29)) == 1 + 2 + 0  # floor of 1.16, 2.9, 0.87
    assert len(evaluate.ratio_subset(synthetic, real_counts, 0.1)) == 1
    assert len(evaluate.ratio_subset(synthetic, real_counts, 10)) == len(synthetic)
    many = evaluate.Images(np.zeros((40, 1, 1, 1), np.uint8), np.zeros(40, np.int64))
    assert len(evaluate.ratio_subset(many, np.array([100]), 0.29)) == 29  # 0.29 x 100 is 28.999... in floats


def test_ratio_sweep_writes_a_row_per_ratio_and_reuses_the_real_runs(prepared):
    params = small_params(evaluate={"arms": ["real"], "seeds": [0], "ratios": [1, 0.5], "cas": False,
                                    "fit": {"steps": 10, "checkpoint_every": 10, "log_every": 10}})
    augmented_with("noise", 8, params)  # 11 real train images a class: ratio 1 wants 11, gets 8
    report = evaluate.run(params)

    rows = pd.read_csv(paths.EVALUATE_PLOTS / "ratios.csv")
    assert rows.columns.tolist() == ["ratio", "synthetic", "accuracy", "accuracy_std", "balanced_accuracy",
                                     "balanced_accuracy_std"]
    assert rows["ratio"].tolist() == [0, 0.5, 1] and rows["synthetic"].tolist() == [0, 15, 24]
    assert report["ratios"][0]["balanced_accuracy"] == report["arms"]["real"]["balanced_accuracy"]
    assert json.loads(paths.metrics_file("evaluate").read_text())["ratios"] == report["ratios"]
    # Ratio 0 took the real arm's run: nothing was trained twice.
    runs = sorted(d.name for d in paths.EVALUATION_RUNS.iterdir())
    assert runs == ["ratio0.5-seed0", "ratio1-seed0", "real-seed0"]
    assert any(n.startswith("ratio 1: capped") for n in report["notes"])
    assert "## Synthetic:real ratio sweep" in (paths.EVALUATE_PLOTS / "report.md").read_text()


def test_gate_refuses_noise_and_accepts_heldout_real_images(prepared):
    params = prepared
    gate = GateParams()
    augmented_with("noise", 100, params)
    noise = evaluate.run(params)
    with pytest.raises(VersionError, match="release gate: refused: the best synthetic arm real_synthetic") as err:
        check_gate(gate, cwd=paths.PARAMS.parent, current="dataset-v1")
    assert "dataset-v1 stays the current version" in str(err.value)
    assert "version.gate.enabled: false" in str(err.value)

    augmented_with("heldout", 100, params)
    heldout = evaluate.run(params)
    check_gate(gate, cwd=paths.PARAMS.parent, current="dataset-v1")  # passes
    assert heldout["lift"]["real_synthetic"]["balanced_accuracy"] > 0 > noise["lift"]["real_synthetic"]["balanced_accuracy"]
    # The judge's features tell them apart too.
    assert heldout["generative"]["fd"] < noise["generative"]["fd"]
    assert heldout["generative"]["precision"] > noise["generative"]["precision"]
