"""evaluate on a tiny dataset: the arms (rare-class arms too), their test and val scores and lift, the share
sweep, soft labels, the generative metrics and the plots; and the release gate, which refuses noise as
synthetic data and accepts held-out real images."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from components import paths
from components.config.data import GateParams
from components.errors import DataError, ParamsError, VersionError
from components.generation.blends import blend_pairs
from components.metrics.classification import scores
from components.stages import evaluate, prepare, train_judge
from components.stages.version import check_gate
from components.training import downstream
from tests.quality_data import FASHION_MNIST, augmented_with, small_params

pytestmark = pytest.mark.usefixtures("one_thread")


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
    params = small_params(evaluate={"arms": ["real", "real_weighted", "real_oversampled_classic", "real_classic",
                                             "real_synthetic", "real_weighted_synthetic"], "seeds": [0], **FAST})
    augmented_with("heldout", 30, params)
    report = evaluate.run(params)

    metrics = json.loads(paths.metrics_file("evaluate").read_text())
    assert metrics == json.loads(json.dumps(report))
    assert list(report["arms"]) == ["real", "real_weighted", "real_oversampled_classic", "real_classic",
                                    "real_synthetic", "real_weighted_synthetic"]
    real = metrics["arms"]["real"]
    assert 0 < real["balanced_accuracy"]["mean"] <= 1 and real["balanced_accuracy"]["std"] == 0
    assert set(real["recall"]) == {"T-shirt/top", "Pullover", "Coat"}
    assert 0 < real["val"]["balanced_accuracy"]["mean"] <= 1  # 3 val images: for choosing, never reported
    # Balanced real classes: weighting and oversampling change nothing, so those arms share the plain runs.
    assert metrics["arms"]["real_weighted"] == real
    assert metrics["arms"]["real_oversampled_classic"] == metrics["arms"]["real_classic"]
    assert any("weighted changes nothing" in note for note in metrics["notes"])
    # Real and synthetic classes balanced: so is every batch, and the weighted synthetic arm is the plain one.
    assert metrics["arms"]["real_weighted_synthetic"] == metrics["arms"]["real_synthetic"]
    assert any(note.startswith("real_weighted_synthetic: the batches are balanced") for note in metrics["notes"])
    baselines = [arm for arm in report["arms"] if "synthetic" not in arm]
    strongest = max(metrics["arms"][arm]["accuracy"]["mean"] for arm in baselines)
    best = metrics["lift"]["baseline"]["accuracy"]["arm"]
    assert best in baselines and metrics["arms"][best]["accuracy"]["mean"] == strongest
    assert metrics["lift"]["real_synthetic"]["accuracy"] == pytest.approx(
        metrics["arms"]["real_synthetic"]["accuracy"]["mean"] - strongest, abs=2e-5)
    assert set(metrics["lift_val"]) == {"baseline", "real_synthetic", "real_weighted_synthetic"}
    assert metrics["recipe"]["fit"]["steps"] == 20 and metrics["recipe"]["synthetic"]["per_batch"] == 5

    gen = metrics["generative"]
    assert gen["synthetic"] == 90 and gen["kid"]["subset_size"] == 90  # cut to the smaller set
    assert gen["fd"] >= 0 and gen["fd_floor"] >= 0 and 0 <= gen["precision"] <= 1 and 0 <= gen["recall"] <= 1
    assert set(gen["per_class"]) == {"T-shirt/top", "Pullover", "Coat"} and gen["per_class"]["Coat"]["synthetic"] == 30
    assert 0 <= gen["cas"]["accuracy"] <= 1

    arms = pd.read_csv(paths.EVALUATE_PLOTS / "arms.csv")
    assert arms["arm"].tolist() == list(report["arms"]) and arms["synthetic"].tolist() == [0, 0, 0, 0, 1, 1]
    assert len(pd.read_csv(paths.EVALUATE_PLOTS / "runs.csv")) == 6
    assert (paths.EVALUATE_PLOTS / "samples.png").exists()
    text = (paths.EVALUATE_PLOTS / "report.md").read_text()
    assert "| real_synthetic |" in text and "Recipe of every run: 20 steps of 16 real images" in text
    # Three distinct recipes were trained (real, real_classic, real_synthetic), plus CAS.
    assert sorted(d.name for d in paths.EVALUATION_RUNS.iterdir()) == [
        "cas-seed0", "real-seed0", "real_classic-seed0", "real_synthetic-seed0"]

    # The same params again: byte-identical metrics (what DVC records), from the finished runs.
    before = paths.metrics_file("evaluate").read_bytes()
    evaluate.run(params)
    assert paths.metrics_file("evaluate").read_bytes() == before


FAST = {"fit": {"steps": 20, "batch_size": 16, "checkpoint_every": 10, "log_every": 10}}


def mark_judge_run():
    """Mark the judge's logged metrics (a loss of 123.5 in the last row): a run taken from the judge carries the
    mark, a run trained does not. Returns the log's path and its rows before the mark."""
    logged = paths.JUDGE / "metrics.csv"
    rows = logged.read_text().splitlines()
    step, rest = rows[-1].split(",", 1)
    logged.write_text("\n".join([*rows[:-1], f"{step},123.5," + rest.split(",", 1)[1]]) + "\n")
    return logged, rows


def test_the_judge_is_the_real_classic_run_of_its_seed_and_is_taken_not_trained_again(prepared):
    judge = small_params().train_judge
    recipe = {"classifier": judge.model.model_dump(), "fit": judge.recipe().model_dump()}
    params = small_params(evaluate={"arms": ["real_classic"], "seeds": [0, 1], "cas": False, **recipe})
    augmented_with("heldout", 4, params)
    logged, rows = mark_judge_run()
    evaluate.run(params)
    taken, trained = (paths.EVALUATION_RUNS / f"real_classic-seed{seed}" for seed in (0, 1))
    assert (taken / "metrics.csv").read_text() == logged.read_text()   # seed 0: the judge's run (params.seed 0)
    assert "123.5" not in (trained / "metrics.csv").read_text()        # seed 1: trained
    assert [p.name for p in (taken / "checkpoints").iterdir()] == [f"step-{judge.steps:07d}.pt"]
    # The judge's scores are those a trained run gets: the same weights (same fingerprint, same draws).
    report = json.loads(paths.metrics_file("evaluate").read_text())
    shutil.rmtree(paths.EVALUATION_RUNS)
    logged.write_text("\n".join(rows) + "\n")
    params = small_params(evaluate={"arms": ["real_classic"], "seeds": [0, 1], "cas": False, **recipe})
    (paths.JUDGE / "checkpoints").rename(paths.JUDGE / "elsewhere")   # nothing to take: both runs train
    assert json.loads(json.dumps(evaluate.run(params)))["arms"] == report["arms"]
    assert "123.5" not in (taken / "metrics.csv").read_text()


def test_a_weighted_judge_is_the_plain_one_on_balanced_classes_and_the_weighted_run_on_rare_ones(tmp_path,
                                                                                                monkeypatch):
    if not FASHION_MNIST.is_dir():
        pytest.skip("needs the Fashion-MNIST package")
    monkeypatch.chdir(tmp_path)
    plain = small_params(train_judge={"steps": 30})
    prepare.run(plain)
    train_judge.run(plain)
    before = (paths.JUDGE / paths.JUDGE_FILE).read_bytes()
    shutil.rmtree(paths.JUDGE)
    weighted = small_params(train_judge={"steps": 30, "balance": "weighted"})
    assert train_judge.run(weighted)["balance"] == "none"      # balanced classes: nothing to weight
    assert (paths.JUDGE / paths.JUDGE_FILE).read_bytes() == before

    # A rare class: the weighted judge is evaluate's real_weighted_classic run of its seed, taken from it.
    shutil.rmtree(paths.JUDGE)
    rare = {"per_class": 20, "imbalance": {"classes": ["Coat"], "factor": 0.25}}
    judge = small_params(prepare=rare, train_judge={"steps": 30, "balance": "weighted"})
    prepare.run(judge)
    assert train_judge.run(judge)["balance"] == "weighted"
    assert (paths.JUDGE / paths.JUDGE_FILE).read_bytes() != before
    recipe = {"classifier": judge.train_judge.model.model_dump(), "fit": judge.train_judge.recipe().model_dump()}
    params = small_params(prepare=rare, train_judge={"steps": 30, "balance": "weighted"},
                          evaluate={"arms": ["real_classic", "real_weighted_classic"], "seeds": [0], "cas": False,
                                    **recipe})
    augmented_with("heldout", 4, params)
    logged, _ = mark_judge_run()
    evaluate.run(params)
    assert (paths.EVALUATION_RUNS / "real_weighted_classic-seed0" / "metrics.csv").read_text() == logged.read_text()
    assert "123.5" not in (paths.EVALUATION_RUNS / "real_classic-seed0" / "metrics.csv").read_text()


def test_blends_mix_two_different_images_of_their_own_class():
    # class 1 has two images, 100 and 200 grey; class 0's (0 grey) must never enter its blends
    images = np.array([0, 100, 0, 200], np.uint8).reshape(4, 1, 1, 1).repeat(3, axis=1).repeat(3, axis=2)
    made = blend_pairs(images, np.array([1, 3]), 400, np.random.default_rng(0))
    assert made.shape == (400, 3, 3, 1) and made.dtype == np.uint8
    assert (made == made[:, :1, :1]).all()  # each blend mixes whole images
    values = made[:, 0, 0, 0].astype(int)
    # (1 - s) x one + s x the other, s in [0, 0.5): nearer the first, never past the middle, never a self-blend
    assert values.min() >= 100 and values.max() <= 200
    assert (values <= 150).sum() > 100 and (values >= 150).sum() > 100 and len(set(values)) > 40
    assert (blend_pairs(images, np.array([1, 3]), 400, np.random.default_rng(0)) == made).all()


def test_the_blend_arm_is_a_baseline_the_samples_must_beat(prepared):
    params = small_params(evaluate={"arms": ["real_classic", "real_blend_classic", "real_synthetic_classic"],
                                    "seeds": [0], **FAST})
    augmented_with("heldout", 30, params)
    report = evaluate.run(params)

    # as many blends a class as samples, through the filter's checks, made once and named in the notes
    assert report["blends"]["kept"] == {"T-shirt/top": 30, "Pullover": 30, "Coat": 30}
    assert report["blends"]["made"] >= 90
    assert any(n.startswith("real_blend_classic: 90 blends of the real train images kept") for n in report["notes"])
    # a baseline: the lift (and so the gate) is against the stronger of real_classic and the blends
    means = {arm: report["arms"][arm]["balanced_accuracy"]["mean"] for arm in report["arms"]}
    best = max(("real_classic", "real_blend_classic"), key=means.get)
    assert report["lift"]["baseline"]["balanced_accuracy"] == {"arm": best, "mean": means[best]}
    assert set(report["lift"]) == {"baseline", "real_synthetic_classic"}
    assert pd.read_csv(paths.EVALUATE_PLOTS / "arms.csv")["synthetic"].tolist() == [0, 0, 1]
    # its own run, with the blends in every batch: not real_classic's run
    runs = paths.EVALUATION_RUNS
    assert (runs / "real_blend_classic-seed0").is_dir()
    assert (runs / "real_blend_classic-seed0" / "metrics.csv").read_text() != \
        (runs / "real_classic-seed0" / "metrics.csv").read_text()


def test_without_synthetic_samples_the_synthetic_arms_are_skipped(prepared):
    params = small_params(evaluate={"arms": ["real", "real_synthetic_classic", "real_blend_classic"], "seeds": [0],
                                    "shares": [0.5], **FAST})
    from components.stages import assemble

    assemble.run(params, synthetic=None)
    report = evaluate.run(params)
    assert list(report["arms"]) == ["real"] and report["lift"] == {} and "generative" not in report
    assert "real_synthetic_classic: skipped, the dataset has no synthetic samples" in report["notes"]
    assert "real_blend_classic: skipped, the dataset has no synthetic samples to set the blends beside" in \
        report["notes"]
    assert "shares" not in report and not (paths.EVALUATE_PLOTS / "shares.csv").exists()
    assert "shares: the sweep is skipped, the dataset has no synthetic samples" in report["notes"]


@pytest.mark.parametrize("key, value, message", [
    ("shares", [0], "strictly between 0 and 1"), ("shares", [1.0], "strictly between 0 and 1"),
    ("shares", [0.5, 0.25, 0.5], "must not repeat"), ("synthetic_share", 1, "less than 1"),
    ("synthetic_share", 0, "greater than 0"), ("synthetic_weight", -1, "greater than 0"),
    ("synthetic_labels", "teacher", "'hard' or 'judge'"), ("label_temperature", 0, "greater than 0"),
    ("real_only_final", 1, "less than 1"), ("arms", ["real_mixup"], "real_synthetic_classic"),
    ("synthetic_weighting", "synthetic", "'mixture' or 'real'"),
    ("fit", {"schedule": "step"}, "'constant', 'cosine' or 'onecycle'"),
    ("fit", {"label_smoothing": 1}, "less than 1"), ("fit", {"warmup": -0.1}, "greater than or equal to 0"),
])
def test_bad_evaluate_params_are_refused_with_their_key(key, value, message):
    with pytest.raises(ParamsError, match=message) as err:
        small_params(evaluate={key: value})
    assert f"evaluate.{key}" in str(err.value)


def test_a_bad_judge_balance_is_refused_with_its_key():
    with pytest.raises(ParamsError, match="'none' or 'weighted'") as err:
        small_params(train_judge={"balance": "oversampled"})
    assert "train_judge.balance" in str(err.value)


def test_soft_labels_are_the_judges_probabilities_at_the_temperature_and_sum_to_one():
    probs = np.array([[0.7, 0.2, 0.1], [0.05, 0.9, 0.05]], np.float32)
    synthetic = downstream.Images(np.zeros((2, 8, 8, 1), np.uint8), np.array([0, 1]), probs)
    params = small_params(evaluate={"synthetic_labels": "judge", "label_temperature": 1.0}).evaluate
    assert np.allclose(downstream.synthetic_targets(params, synthetic), probs)
    hot = downstream.synthetic_targets(params.model_copy(update={"label_temperature": 2.0}), synthetic)
    assert np.allclose(hot.sum(1), 1) and hot[0, 0] < 0.7 and hot[0].argmax() == 0  # softer, same order
    logits = np.log(probs.astype(np.float64))
    expected = np.exp(logits / 2) / np.exp(logits / 2).sum(1, keepdims=True)
    assert np.allclose(hot, expected, atol=1e-6)
    assert downstream.synthetic_targets(params.model_copy(update={"synthetic_labels": "hard"}), synthetic).tolist() == [0, 1]
    with pytest.raises(DataError, match="judge_probs"):
        downstream.synthetic_targets(params, downstream.Images(synthetic.images, synthetic.labels))


def test_share_sweep_writes_a_row_per_share_and_reuses_the_arms_runs(prepared):
    params = small_params(evaluate={"arms": ["real", "real_synthetic"], "seeds": [0], "shares": [0.5, 0.25],
                                    "cas": False, **FAST})
    augmented_with("noise", 8, params)
    report = evaluate.run(params)

    rows = pd.read_csv(paths.EVALUATE_PLOTS / "shares.csv")
    assert rows.columns.tolist() == ["share", "synthetic_per_batch", "accuracy", "accuracy_std", "balanced_accuracy",
                                     "balanced_accuracy_std"]
    assert rows["share"].tolist() == [0, 0.25, 0.5] and rows["synthetic_per_batch"].tolist() == [0, 5, 16]
    assert report["shares"][0]["balanced_accuracy"] == report["arms"]["real"]["balanced_accuracy"]
    assert report["shares"][1]["balanced_accuracy"] == report["arms"]["real_synthetic"]["balanced_accuracy"]
    assert json.loads(paths.metrics_file("evaluate").read_text())["shares"] == report["shares"]
    # Share 0 took the real arm's run and 0.25 the synthetic arm's: only share 0.5 was trained anew.
    runs = sorted(d.name for d in paths.EVALUATION_RUNS.iterdir())
    assert runs == ["real-seed0", "real_synthetic-seed0", "real_synthetic-share0.5-seed0"]
    assert "## Synthetic share sweep" in (paths.EVALUATE_PLOTS / "report.md").read_text()


def test_rare_classes_get_their_own_arms(tmp_path, monkeypatch):
    """With prepare.imbalance, class weighting and oversampling train runs of their own, and the per-class
    recall of the rare class is reported for every arm."""
    if not FASHION_MNIST.is_dir():
        pytest.skip("needs the Fashion-MNIST package")
    monkeypatch.chdir(tmp_path)
    params = small_params(prepare={"per_class": 20, "imbalance": {"classes": ["Coat"], "factor": 0.25}},
                          evaluate={"arms": ["real", "real_weighted", "real_oversampled_classic",
                                             "real_synthetic_classic", "real_weighted_synthetic_classic"],
                                    "seeds": [0], "cas": False, **FAST})
    prepare.run(params)
    train_judge.run(params)
    augmented_with("heldout", 10, params)
    report = evaluate.run(params)
    assert not any("changes nothing" in n for n in report["notes"])
    assert sorted(d.name for d in paths.EVALUATION_RUNS.iterdir()) == [
        "real-seed0", "real_oversampled_classic-seed0", "real_synthetic_classic-seed0", "real_weighted-seed0",
        "real_weighted_synthetic_classic-seed0"]
    assert all("Coat" in entry["recall"] for entry in report["arms"].values())
    assert report["recipe"]["synthetic"]["weighting"] == "mixture"
    # The real part alone weighted: a run of its own (the mixture run is not resumed), stated in the recipe.
    mixture = (paths.EVALUATION_RUNS / "real_weighted_synthetic_classic-seed0" / "metrics.csv").read_text()
    params = small_params(prepare={"per_class": 20, "imbalance": {"classes": ["Coat"], "factor": 0.25}},
                          evaluate={"arms": ["real_weighted_synthetic_classic"], "seeds": [0], "cas": False,
                                    "synthetic_weighting": "real", **FAST})
    report = evaluate.run(params)
    assert report["recipe"]["synthetic"]["weighting"] == "real" and not report["notes"]
    assert (paths.EVALUATION_RUNS / "real_weighted_synthetic_classic-seed0" / "metrics.csv").read_text() != mixture


def test_gate_refuses_noise_and_accepts_heldout_real_images(prepared):
    # Half of each batch from the planted set: 100 a class against 11 real ones, so held-out real images help.
    params = small_params(evaluate={"synthetic_share": 0.5})
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


def test_sample_grid_puts_each_class_real_then_synthetic_and_pads_white():
    from components.metrics.report import sample_grid
    real = (np.stack([np.full((4, 4, 1), v, np.uint8) for v in (10, 11, 20)]), np.array([0, 0, 1]))
    synthetic = (np.full((1, 4, 4, 1), 30, np.uint8), np.array([1]))
    grid = sample_grid(2, real, synthetic, columns=2)
    assert grid.shape == (2, 4, 4, 4, 1)
    assert grid[:, :, 0, 0, 0].tolist() == [[10, 11, 255, 255], [20, 255, 30, 255]]
