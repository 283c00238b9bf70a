"""evaluate's numbers: per arm the mean and spread over seeds of each score, its per-class recall, its val
scores; each synthetic arm's lift over the strongest non-synthetic arm (the release gate's baseline); the
synthetic set's distances to the real test set on judge features. A run's result is {"test": scores, "val":
scores or None} (metrics/classification.py's scores)."""

import numpy as np

from components.config.quality import SYNTHETIC_ARMS, KidParams
from components.metrics.distances import frechet_distance, kernel_inception_distance, precision_recall, real_floor
from components.metrics.report import METRICS, rounded

MIN_SET = 4   # samples a set needs for feature_distances (and 2 per half for the real-vs-real floor)


def mean_of(results: list[dict], split: str, metric: str = "balanced_accuracy") -> float:
    values = [r[split][metric] for r in results if r[split] is not None]
    return float(np.mean(values)) if values else float("nan")


def val_summary(results: list[dict]) -> dict | None:
    if any(r["val"] is None for r in results):
        return None
    return {m: mean_std([r["val"][m] for r in results]) for m in METRICS}


def summarize_arms(runs: dict[str, list[dict]], class_names: list[str]) -> dict:
    """Per arm: mean and spread (sample std over seeds, 0 for one seed) of each test score, mean test recall
    per class, and the val scores."""
    out = {}
    for arm, results in runs.items():
        entry = {"seeds": len(results)}
        for metric in METRICS:
            entry[metric] = mean_std([r["test"][metric] for r in results])
        recall = np.nanmean(np.array([r["test"]["recall"] for r in results], dtype=np.float64), axis=0)
        entry["recall"] = {name: rounded(v) for name, v in zip(class_names, recall)}
        entry["val"] = val_summary(results)
        out[arm] = entry
    return out


def mean_std(values: list[float]) -> dict:
    return {"mean": rounded(np.mean(values)), "std": rounded(np.std(values, ddof=1) if len(values) > 1 else 0.0)}


def lift(runs: dict[str, list[dict]], split: str) -> dict:
    """Each synthetic arm's mean score on `split` minus the strongest non-synthetic arm's, per metric."""
    baselines = [arm for arm in runs if arm not in SYNTHETIC_ARMS]
    synthetic = [arm for arm in runs if arm in SYNTHETIC_ARMS]
    if not baselines or not synthetic or any(r[split] is None for arm in runs for r in runs[arm]):
        return {}
    out: dict = {"baseline": {}}
    for metric in METRICS:
        means = {arm: mean_of(runs[arm], split, metric) for arm in runs}
        best = max(baselines, key=lambda arm: means[arm])
        out["baseline"][metric] = {"arm": best, "mean": rounded(means[best])}
        for arm in synthetic:
            out.setdefault(arm, {})[metric] = rounded(means[arm] - means[best])
    return out


def feature_distances(reference: np.ndarray, fake: np.ndarray, real: np.ndarray, kid: KidParams, pr_k: int) -> dict:
    """evaluate's distances of `fake` to `reference` features (FD, KID, k-NN precision/recall), and of the real
    train features `real` (fd_real_train) with the real-vs-real floor. Empty when a set has fewer than MIN_SET
    samples (the floor splits the reference in two halves)."""
    if min(len(reference), len(fake), len(real)) < MIN_SET:
        return {}
    size = min(kid.subset_size, len(reference), len(fake))
    kid, kid_std = kernel_inception_distance(reference, fake, subset_size=size, subsets=kid.subsets, seed=0)
    out = {"synthetic": len(fake), "fd": rounded(frechet_distance(reference, fake)),
           "fd_real_train": rounded(frechet_distance(reference, real)), "fd_floor": rounded(real_floor(reference)),
           "kid": {"mean": rounded(kid), "std": rounded(kid_std), "subset_size": size}}
    if min(len(reference), len(fake)) > pr_k:
        # Equal set sizes: recall counts real points inside the fake manifold, which grows with its size.
        ref, fake = equal_sizes(reference, fake)
        out["precision"], out["recall"] = (rounded(v) for v in precision_recall(ref, fake, k=pr_k))
    return out


def equal_sizes(a: np.ndarray, b: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    n = min(len(a), len(b))
    rng = np.random.default_rng(seed)
    pick = lambda x: x if len(x) == n else x[np.sort(rng.choice(len(x), n, replace=False))]  # noqa: E731
    return pick(a), pick(b)
