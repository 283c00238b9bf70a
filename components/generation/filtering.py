"""The filter's verdict on synthetic samples, as pure functions of their scores (components/stages/filter.py
computes the scores, tops classes up and writes the result).

A sample passes when:
- `label`: the judge's most likely class is the conditioning label, with probability >= min_confidence
  (null: no label check, for a judge too weak to trust);
- `realism`: its outlier score is at most a quantile of the real held-out images' scores;
- `duplicate`: its nearest real train image in judge-feature space is no closer than duplicate_ratio x
  the median distance from a real train image to its nearest other one (closer: memorisation).
Of the samples that pass, a class keeps at most its target, in index order (the originally generated
samples first): the generation quota (`surplus` beyond it, only after a top-up) cut to
filter.max_per_class (`cap`). A rejected sample's reason is its first failing check in REASONS order.
"""

import numpy as np
import pandas as pd

from components.metrics.distances import blocks, kth_neighbour_sq, squared_distances

ACCEPTED = "accepted"
CHECKS = ("label", "realism", "duplicate")
REASONS = (*CHECKS, "cap", "surplus")


def realism_threshold(real_scores: np.ndarray, quantile: float | None) -> float:
    """The highest outlier score a sample may have: `quantile` of the real scores (inf when off)."""
    if quantile is None or not len(real_scores):
        return float("inf")
    return float(np.quantile(np.asarray(real_scores, np.float64), quantile))


def duplicate_threshold(real_features: np.ndarray, ratio: float | None) -> float:
    """Below this judge-feature distance to a real train image a sample is a near-duplicate: `ratio` x the
    median distance from each real train image to its nearest other one (0 when off or too few images)."""
    if ratio is None or len(real_features) < 2:
        return 0.0
    nearest_sq = kth_neighbour_sq(np.asarray(real_features, np.float64), 1)  # 0: the point itself
    return ratio * float(np.median(np.sqrt(nearest_sq)))


def nearest_distance(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Euclidean distance (N,) from each point to its nearest reference point."""
    x, ref = np.asarray(points, np.float64), np.asarray(reference, np.float64)
    if not len(x):
        return np.empty(0)
    return np.sqrt(np.concatenate([squared_distances(block, ref).min(1) for block in blocks(x, len(ref))]))


def check(scores: pd.DataFrame, label_check: bool, min_confidence: float | None, realism: float,
          duplicate: float) -> pd.Series:
    """Per row of `scores` (label, judge_label, judge_confidence, outlier_score, nn_distance): ACCEPTED or
    the first failing check. The label check fails where the judge calls the sample another class
    (`label_check`) or, with `min_confidence`, where its probability of the label is below that: an unsure
    judge alone rejects nothing unless min_confidence says so (unsure samples are where coverage lies)."""
    disagrees = pd.Series(False, index=scores.index)
    if label_check:
        disagrees |= scores["judge_label"] != scores["label"]
    if min_confidence is not None:
        disagrees |= scores["judge_confidence"] < min_confidence
    failing = {
        "label": disagrees,
        "realism": scores["outlier_score"] > realism,
        "duplicate": scores["nn_distance"] < duplicate,
    }
    verdict = pd.Series(ACCEPTED, index=scores.index, dtype="string")
    for reason in reversed(CHECKS):  # the first failing check wins: write it last
        verdict[failing[reason].to_numpy()] = reason
    return verdict


def label_check_text(label_check: bool, min_confidence: float | None) -> str:
    parts = (["the judge's class is the label"] if label_check else []) + (
        [f"judge confidence >= {min_confidence}"] if min_confidence is not None else [])
    return f"label ({', '.join(parts)})" if parts else "label off"


def keep_targets(frame: pd.DataFrame, quota: dict[int, int], cap: int | None) -> pd.Series:
    """`frame`'s verdicts (column `filter`) with the passing samples beyond each class's target rejected:
    `cap` beyond filter.max_per_class, `surplus` beyond the quota. Samples are ranked by `index`."""
    verdict = frame["filter"].copy()
    for label, rows in frame[frame["filter"] == ACCEPTED].sort_values("index", kind="stable").groupby("label"):
        wanted = quota.get(int(label), 0)
        kept = min(wanted, cap) if cap is not None else wanted
        beyond = rows.index[kept:]
        verdict[beyond] = "cap" if cap is not None and cap < wanted else "surplus"
    return verdict


def shortfall(frame: pd.DataFrame, quota: dict[int, int], cap: int | None) -> dict[int, int]:
    """Per class still under its target: how many more passing samples it needs."""
    passed = frame[frame["filter"] == ACCEPTED].groupby("label").size()
    out = {}
    for label, wanted in quota.items():
        target = min(wanted, cap) if cap is not None else wanted
        missing = target - int(passed.get(label, 0))
        if missing > 0:
            out[label] = missing
    return out


def acceptance(frame: pd.DataFrame, class_names: list[str]) -> dict:
    """Candidates, accepted, rate and rejections per reason: overall and per class (in class order)."""
    def summary(rows: pd.DataFrame) -> dict:
        counts = rows["filter"].value_counts()
        n, kept = len(rows), int(counts.get(ACCEPTED, 0))
        return {"candidates": n, "accepted": kept, "rate": round(kept / n, 4) if n else None,
                "rejected": {reason: int(counts.get(reason, 0)) for reason in REASONS}}

    return {**summary(frame), "per_class": {name: summary(frame[frame["label"] == label])
                                            for label, name in enumerate(class_names)}}
