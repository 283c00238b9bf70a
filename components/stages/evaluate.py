"""evaluate: does the synthetic data help? A fixed downstream classifier trained on each arm (real only,
class-weighted, classic augmentation, real + synthetic, real + synthetic + classic) over several seeds,
tested on the real test split; and the generative quality of the synthetic samples on judge features.
With evaluate.ratios set, also a synthetic:real ratio sweep: the real_synthetic recipe on all real train
images plus r x as many synthetic ones per class, for r = 0 and each ratio.

Writes metrics/evaluate.json (per arm: accuracy and balanced accuracy, mean and spread over the seeds,
per-class recall; the lift of each synthetic arm over the best non-synthetic arm; the ratio sweep;
Fréchet distance overall and per class with its real-vs-real floor, KID, precision/recall, CAS) and
plots/evaluate/ (arms.csv, runs.csv, classes.csv, ratios.csv, samples.png, report.md). The downstream
runs live in data/evaluation/runs, outside DVC: a killed evaluate resumes the runs it had finished.
"""

import csv
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from components import paths
from components.config import Params
from components.config.quality import SYNTHETIC_ARMS, EvaluateParams
from components.data.atomic import atomic_dir, write_json, write_text
from components.data.manifest import DatasetInfo, read_manifest
from components.data.shards import gather_images
from components.device import describe, resolve_device
from components.errors import DataError
from components.generation.sample import save_grid
from components.metrics.classification import scores
from components.metrics.distances import frechet_distance, kernel_inception_distance, precision_recall, real_floor
from components.models import classifier
from components.stages import train_judge
from components.training.classify import balancing_weights, train_classifier

log = logging.getLogger("genaug")

METRICS = ("accuracy", "balanced_accuracy")
DIGITS = 5
MIN_SET = 4   # samples a set needs for the distances (and 2 per half for the real-vs-real floor)


@dataclass(frozen=True)
class Recipe:
    """What a downstream run trains on, and how."""

    synthetic: bool
    weighted: bool
    classic: bool


RECIPES = {
    "real": Recipe(synthetic=False, weighted=False, classic=False),
    "real_weighted": Recipe(synthetic=False, weighted=True, classic=False),
    "real_classic": Recipe(synthetic=False, weighted=False, classic=True),
    "real_synthetic": Recipe(synthetic=True, weighted=False, classic=False),
    "real_synthetic_classic": Recipe(synthetic=True, weighted=False, classic=True),
}


@dataclass
class Images:
    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def select(cls, root: Path, rows: pd.DataFrame) -> "Images":
        if rows.empty:
            return cls(np.empty((0, 1, 1, 1), np.uint8), np.empty(0, np.int64))
        return cls(gather_images(root, rows), rows["label"].to_numpy(dtype=np.int64))

    def of_class(self, label: int) -> np.ndarray:
        return self.images[self.labels == label]

    def plus(self, other: "Images") -> "Images":
        if not len(other):
            return self
        return Images(np.concatenate([self.images, other.images]), np.concatenate([self.labels, other.labels]))


def run(params: Params) -> dict:
    started = time.perf_counter()
    p = params.evaluate
    info = DatasetInfo.read(paths.AUGMENTED)
    real, synthetic, test = read_sets(paths.AUGMENTED)
    device = resolve_device(params.device)
    arms, notes = runnable_arms(p, len(synthetic))
    print(f"evaluate: {len(arms)} arm(s) x {len(p.seeds)} seed(s), {p.fit.steps} steps each, on {len(real)} real "
          f"+ {len(synthetic)} synthetic train images; testing on {len(test)} real test images; {describe(device)}")
    runs = train_arms(arms, p, info, real, synthetic, test, device, notes)
    report = {"arms": summarize_arms(runs, info.class_names), "lift": lift(runs), "notes": notes}
    if p.ratios and not len(synthetic):
        note(notes, "ratios: the sweep is skipped, the dataset has no synthetic samples")
    elif p.ratios:
        report["ratios"] = sweep_ratios(p, info, real, synthetic, test, device, runs, notes)
    if len(synthetic):
        report["generative"] = generative(p, info, real, synthetic, test, device)
    write_json(paths.metrics_file("evaluate"), report)
    with atomic_dir(paths.EVALUATE_PLOTS) as out:
        write_plots(out, report, runs, info, real, synthetic, p.grid_columns)
    log.info("evaluate: done in %.1f s", time.perf_counter() - started)
    return report


def read_sets(root: Path) -> tuple[Images, Images, Images]:
    """The real and synthetic train images and the (real) test images of an assembled dataset."""
    manifest = read_manifest(root)
    train = manifest[manifest["split"] == "train"]
    test = manifest[(manifest["split"] == "test") & (manifest["source"] == "real")]
    if test.empty:
        raise DataError(f"{root}: no real test images; evaluate tests on the test split (re-run prepare with "
                        "prepare.test_fraction > 0, or a source with an official test set)")
    real = train[train["source"] == "real"]
    if real.empty:
        raise DataError(f"{root}: no real train images to train the downstream classifier on")
    return (Images.select(root, real), Images.select(root, train[train["source"] == "synthetic"]),
            Images.select(root, test))


def runnable_arms(p: EvaluateParams, synthetic: int) -> tuple[list[str], list[str]]:
    if synthetic:
        return list(p.arms), []
    skipped = [arm for arm in p.arms if arm in SYNTHETIC_ARMS]
    notes: list[str] = []
    for arm in skipped:
        note(notes, f"{arm}: skipped, the dataset has no synthetic samples")
    return [arm for arm in p.arms if arm not in SYNTHETIC_ARMS], notes


def note(notes: list[str], text: str) -> None:
    notes.append(text)
    print(f"evaluate: {text}")


def train_arms(arms: list[str], p: EvaluateParams, info: DatasetInfo, real: Images, synthetic: Images,
               test: Images, device: torch.device, notes: list[str]) -> dict[str, list[dict]]:
    """Scores of each arm's runs on the test split, one per seed. Arms whose recipe comes to the same
    training (class weighting on balanced classes) share their runs."""
    num_classes = len(info.class_names)
    weights = balancing_weights(real.labels, num_classes)
    done: dict[tuple[Recipe, int], dict] = {}
    runs: dict[str, list[dict]] = {}
    for arm in arms:
        recipe = RECIPES[arm]
        if recipe.weighted and weights is None:
            recipe = RECIPES["real"]
            notes.append(f"{arm}: the real classes are balanced, so class weighting changes nothing: "
                         "the runs of arm real")
        data = real.plus(synthetic) if recipe.synthetic else real
        runs[arm] = []
        for seed in p.seeds:
            if (recipe, seed) not in done:
                model, _ = train_classifier(
                    data.images, data.labels, num_classes, p.classifier, p.fit, seed, device,
                    paths.EVALUATION_RUNS / f"{arm}-seed{seed}", f"evaluate {arm} seed {seed}",
                    class_weights=weights if recipe.weighted else None, augment=p.classic if recipe.classic else None)
                done[recipe, seed] = test_scores(model, test, num_classes, p.batch_size, device)
            runs[arm].append(done[recipe, seed])
        print(f"evaluate: {arm}: balanced accuracy "
              f"{np.mean([r['balanced_accuracy'] for r in runs[arm]]):.4f} over {len(p.seeds)} seed(s)")
    return runs


def sweep_ratios(p: EvaluateParams, info: DatasetInfo, real: Images, synthetic: Images, test: Images,
                 device: torch.device, runs: dict[str, list[dict]], notes: list[str]) -> list[dict]:
    """One row per ratio, 0 first: the real_synthetic recipe's scores over the seeds. Ratios that come to
    the same images (0, a ratio too small to take any, ratios past the cap) share their runs; ratio 0 takes
    the real arm's, or trains them where that arm would, so a later real arm resumes them."""
    num_classes = len(info.class_names)
    real_counts = np.bincount(real.labels, minlength=num_classes)
    shared = {(0,) * num_classes: runs["real"]} if "real" in runs else {}
    rows = []
    for ratio in [0.0, *sorted(p.ratios)]:
        extra = ratio_subset(synthetic, real_counts, ratio)
        used = tuple(np.bincount(extra.labels, minlength=num_classes).tolist())
        if used not in shared:
            shared[used] = seed_runs(f"ratio{ratio:g}" if ratio else "real", real.plus(extra), p, num_classes,
                                     test, device)
        rows.append({"ratio": ratio, "synthetic": len(extra),
                     **{m: mean_std([r[m] for r in shared[used]]) for m in METRICS}})
        capped = [name for name, got, want in zip(info.class_names, used, wanted(real_counts, ratio)) if got < want]
        if capped:
            note(notes, f"ratio {ratio:g}: capped at the synthetic samples there are, for {', '.join(capped)}")
        print(f"evaluate: ratio {ratio:g}: {len(extra)} synthetic, balanced accuracy "
              f"{rows[-1]['balanced_accuracy']['mean']:.4f} over {len(p.seeds)} seed(s)")
    return rows


def ratio_subset(synthetic: Images, real_counts: np.ndarray, ratio: float) -> Images:
    """Per class, its first floor(ratio x real train count) synthetic images (all it has when fewer),
    in manifest order."""
    keep = np.zeros(len(synthetic), dtype=bool)
    for label, count in enumerate(wanted(real_counts, ratio)):
        keep[np.flatnonzero(synthetic.labels == label)[:count]] = True
    return Images(synthetic.images[keep], synthetic.labels[keep])


def wanted(real_counts: np.ndarray, ratio: float) -> list[int]:
    # The epsilon keeps a product like 0.29 x 100 = 28.999... at 29.
    return [math.floor(ratio * int(count) + 1e-9) for count in real_counts]


def seed_runs(name: str, data: Images, p: EvaluateParams, num_classes: int, test: Images,
              device: torch.device) -> list[dict]:
    """The test scores of the plain real_synthetic recipe (no weighting, no classic augmentation) on
    `data`, one run per seed, in data/evaluation/runs/<name>-seed<seed>."""
    results = []
    for seed in p.seeds:
        model, _ = train_classifier(data.images, data.labels, num_classes, p.classifier, p.fit, seed, device,
                                    paths.EVALUATION_RUNS / f"{name}-seed{seed}", f"evaluate {name} seed {seed}")
        results.append(test_scores(model, test, num_classes, p.batch_size, device))
    return results


def test_scores(model: classifier.Classifier, test: Images, num_classes: int, batch_size: int,
                device: torch.device) -> dict:
    predicted = classifier.predict_proba(model, test.images, batch_size, device).argmax(1)
    return scores(test.labels, predicted, num_classes)


def summarize_arms(runs: dict[str, list[dict]], class_names: list[str]) -> dict:
    """Per arm: mean and spread (sample std over seeds, 0 for one seed) of each score, mean recall per class."""
    out = {}
    for arm, results in runs.items():
        entry = {"seeds": len(results)}
        for metric in METRICS:
            entry[metric] = mean_std([r[metric] for r in results])
        recall = np.nanmean(np.array([r["recall"] for r in results], dtype=np.float64), axis=0)
        entry["recall"] = {name: rounded(v) for name, v in zip(class_names, recall)}
        out[arm] = entry
    return out


def mean_std(values: list[float]) -> dict:
    return {"mean": rounded(np.mean(values)), "std": rounded(np.std(values, ddof=1) if len(values) > 1 else 0.0)}


def lift(runs: dict[str, list[dict]]) -> dict:
    """Each synthetic arm's mean score minus the best non-synthetic arm's, per metric."""
    baselines = [arm for arm in runs if arm not in SYNTHETIC_ARMS]
    synthetic = [arm for arm in runs if arm in SYNTHETIC_ARMS]
    if not baselines or not synthetic:
        return {}
    out: dict = {"baseline": {}}
    for metric in METRICS:
        means = {arm: float(np.mean([r[metric] for r in runs[arm]])) for arm in runs}
        best = max(baselines, key=lambda arm: means[arm])
        out["baseline"][metric] = {"arm": best, "mean": rounded(means[best])}
        for arm in synthetic:
            out.setdefault(arm, {})[metric] = rounded(means[arm] - means[best])
    return out


def generative(p: EvaluateParams, info: DatasetInfo, real: Images, synthetic: Images, test: Images,
               device: torch.device) -> dict:
    """The synthetic train images against the real test images (a reference no model trained on) on judge
    features; the real train images on the same scale, for comparison; and CAS."""
    judge = train_judge.load(info, device, str(paths.AUGMENTED))
    feats = {name: classifier.embed(judge, s.images, p.batch_size, device)
             for name, s in (("real", real), ("synthetic", synthetic), ("test", test))}
    out = distances(feats["test"], feats["synthetic"], feats["real"], p)
    out["per_class"] = {}
    for label, name in enumerate(info.class_names):
        ref, fake, own = (feats[k][s.labels == label] for k, s in
                          (("test", test), ("synthetic", synthetic), ("real", real)))
        out["per_class"][name] = distances(ref, fake, own, p)
    if p.cas:
        out["cas"] = cas(p, info, synthetic, test, device)
    return out


def distances(reference: np.ndarray, fake: np.ndarray, real: np.ndarray, p: EvaluateParams) -> dict:
    """Empty when a set has fewer than MIN_SET samples (the floor splits the reference in two halves)."""
    if min(len(reference), len(fake), len(real)) < MIN_SET:
        return {}
    size = min(p.kid.subset_size, len(reference), len(fake))
    kid, kid_std = kernel_inception_distance(reference, fake, subset_size=size, subsets=p.kid.subsets, seed=0)
    out = {"synthetic": len(fake), "fd": rounded(frechet_distance(reference, fake)),
           "fd_real_train": rounded(frechet_distance(reference, real)), "fd_floor": rounded(real_floor(reference)),
           "kid": {"mean": rounded(kid), "std": rounded(kid_std), "subset_size": size}}
    if min(len(reference), len(fake)) > p.pr_k:
        # Equal set sizes: recall counts real points inside the fake manifold, which grows with its size.
        ref, fake = equal_sizes(reference, fake)
        out["precision"], out["recall"] = (rounded(v) for v in precision_recall(ref, fake, k=p.pr_k))
    return out


def equal_sizes(a: np.ndarray, b: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    n = min(len(a), len(b))
    rng = np.random.default_rng(seed)
    pick = lambda x: x if len(x) == n else x[np.sort(rng.choice(len(x), n, replace=False))]  # noqa: E731
    return pick(a), pick(b)


def cas(p: EvaluateParams, info: DatasetInfo, synthetic: Images, test: Images, device: torch.device) -> dict:
    """Classification accuracy score: the downstream recipe trained on the synthetic images alone."""
    seed = p.seeds[0]
    model, _ = train_classifier(synthetic.images, synthetic.labels, len(info.class_names), p.classifier, p.fit,
                                seed, device, paths.EVALUATION_RUNS / f"cas-seed{seed}", f"evaluate cas seed {seed}")
    result = test_scores(model, test, len(info.class_names), p.batch_size, device)
    return {metric: rounded(result[metric]) for metric in METRICS}


def rounded(value: float) -> float:
    return round(float(value), DIGITS)


def write_plots(out: Path, report: dict, runs: dict[str, list[dict]], info: DatasetInfo, real: Images,
                synthetic: Images, columns: int) -> None:
    arms = report["arms"]
    write_csv(out / "arms.csv", [{"arm": arm, "synthetic": int(arm in SYNTHETIC_ARMS), **spread_columns(arms[arm])}
                                 for arm in arms])
    if "ratios" in report:
        write_csv(out / "ratios.csv", [{"ratio": row["ratio"], "synthetic": row["synthetic"], **spread_columns(row)}
                                       for row in report["ratios"]])
    write_csv(out / "runs.csv", [{"arm": arm, "run": i, **{m: rounded(r[m]) for m in METRICS}}
                                 for arm, results in runs.items() for i, r in enumerate(results)])
    per_class = report.get("generative", {}).get("per_class", {})
    write_csv(out / "classes.csv", [
        {"class_name": name, **{f"recall_{arm}": arms[arm]["recall"][name] for arm in arms},
         **{k: per_class.get(name, {}).get(k, "") for k in ("fd", "fd_real_train", "precision", "recall")}}
        for name in info.class_names])
    if len(synthetic):
        save_grid(sample_grid(info, real, synthetic, columns), out / "samples.png")
    write_text(out / "report.md", markdown(report, info))


def spread_columns(entry: dict) -> dict:
    """accuracy, accuracy_std, balanced_accuracy, balanced_accuracy_std of a summary entry."""
    return {f"{m}{suffix}": entry[m][k] for m in METRICS for k, suffix in (("mean", ""), ("std", "_std"))}


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def sample_grid(info: DatasetInfo, real: Images, synthetic: Images, columns: int) -> np.ndarray:
    """One row per class: its first `columns` real train images, then its first `columns` synthetic ones
    (white tiles where a class has fewer)."""
    tile = real.images.shape[1:]
    rows = []
    for label in range(len(info.class_names)):
        row = [padded(s.of_class(label)[:columns], columns, tile) for s in (real, synthetic)]
        rows.append(np.concatenate(row))
    return np.stack(rows)


def padded(images: np.ndarray, count: int, tile: tuple[int, ...]) -> np.ndarray:
    return np.concatenate([images, np.full((count - len(images), *tile), 255, np.uint8)])


def markdown(report: dict, info: DatasetInfo) -> str:
    lines = ["# Evaluation", "", "## Downstream classifier on the real test split", "",
             "| arm | accuracy | balanced accuracy | lift (balanced) |", "|---|---:|---:|---:|"]
    lifts = report["lift"]
    for arm, entry in report["arms"].items():
        gain = lifts.get(arm, {}).get("balanced_accuracy")
        lines.append(f"| {arm} | {mean_pm_std(entry['accuracy'])} | {mean_pm_std(entry['balanced_accuracy'])} | "
                     f"{'' if gain is None else f'{gain:+.4f}'} |")
    if lifts:
        base = lifts["baseline"]["balanced_accuracy"]
        lines += ["", f"Lift: over the best non-synthetic arm, {base['arm']} ({base['mean']:.4f}); "
                      "means ± standard deviation over the seeds."]
    if "ratios" in report:
        lines += ratio_lines(report["ratios"])
    gen = report.get("generative")
    if gen:
        lines += ["", "## Synthetic samples against real test images (judge features)", "",
                  "| set | FD | FD real train | FD floor | KID | precision | recall |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for name, row in [("all", gen), *gen["per_class"].items()]:
            if row:
                lines.append(f"| {name} | {row['fd']:.4g} | {row['fd_real_train']:.4g} | {row['fd_floor']:.4g} | "
                             f"{row['kid']['mean']:.4g} | {row.get('precision', '')} | {row.get('recall', '')} |")
        if "cas" in gen:
            lines += ["", f"CAS (trained on synthetic only, tested on real): accuracy {gen['cas']['accuracy']:.4f}, "
                          f"balanced accuracy {gen['cas']['balanced_accuracy']:.4f}."]
        lines += ["", "Samples: plots/evaluate/samples.png (per class, real then synthetic)."]
    if report["notes"]:
        lines += ["", "## Notes", ""] + [f"- {text}" for text in report["notes"]]
    return "\n".join(lines) + "\n"


def ratio_lines(rows: list[dict]) -> list[str]:
    lines = ["", "## Synthetic:real ratio sweep", "",
             "| ratio | synthetic | accuracy | balanced accuracy |", "|---:|---:|---:|---:|"]
    lines += [f"| {row['ratio']:g} | {row['synthetic']} | {mean_pm_std(row['accuracy'])} | "
              f"{mean_pm_std(row['balanced_accuracy'])} |" for row in rows]
    return lines + ["", "The real_synthetic recipe on all real train images plus, per class, ratio x its real train "
                        "count of synthetic ones (ratio 0: real only); plot: plots/evaluate/ratios.csv."]


def mean_pm_std(entry: dict) -> str:
    return f"{entry['mean']:.4f} ± {entry['std']:.4f}"
