"""filter: judge every synthetic sample (data/upscaled -> data/filtered), keep those that pass, and top
up the classes left under their quota.

The checks (components/generation/filtering.py): the judge does not call the sample another class (and,
when filter.min_confidence is set, gives its label at least that probability), the outlier score is within a quantile of the real held-out images', and the sample is no
near-duplicate of a real train image in judge-feature space. A class with fewer passing samples than
its quota gets more (indices after those generated, through the same generate -> denoise -> upscale
chain: components/stages/top_up.py) for at most filter.top_up_rounds rounds.

data/filtered keeps every candidate, so rejections can be inspected: the shards, manifest.parquet with
`filter` (accepted, or the reason), `judge_label`, `judge_confidence` (the judge's probability of the
label), `judge_probs` (of every class: the soft label), `nn_distance`, `filter_round` (0:
generated, r: top-up round r) beside the provenance columns; filter.json (acceptance per class and
reason, the top-up log) and filter.png (per class: accepted, then rejected samples). assemble keeps the
accepted rows.
"""

import json
import logging
import math
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from components import fanout, paths
from components.config import Params
from components.config.quality import FilterParams
from components.data.atomic import atomic_dir, write_json
from components.data.manifest import INFO, DatasetInfo, read_manifest, read_split, write_manifest
from components.data.shards import ShardWriter, gather_images, iter_images, map_shards
from components.device import describe, resolve_device
from components.errors import DataError
from components.generation import filtering
from components.generation.judging import judge_images
from components.plots import blank_grid, save_grid
from components.models import classifier
from components.stages.top_up import Chain
from components.training.classify import load_judge

log = logging.getLogger("genaug")

SOURCE = paths.UPSCALED
MIN_RATE = 0.1  # a top-up round assumes at least this acceptance rate when sizing itself


def run(params: Params, source: Path = SOURCE) -> dict:
    f, device = params.filter, resolve_device(params.device)
    info = DatasetInfo.read(source)
    candidates = read_manifest(source).assign(filter_round=0)
    candidates["index"] = candidates.groupby("label").cumcount()
    judge = load_judge(info, device, str(source))
    real = read_split(paths.PREPARED, "train")[0]
    if real.shape[1:] != (info.size, info.size, info.channels):
        raise DataError(f"{source}: samples are {info.size}x{info.size}x{info.channels}, the real train images "
                        f"{'x'.join(map(str, real.shape[1:]))}; re-run the stages after prepare (dvc repro)")
    real_features = classifier.embed(judge, real, f.batch_size, device)
    realism = filtering.realism_threshold(reference_scores(), f.realism_quantile)
    duplicate = filtering.duplicate_threshold(real_features, f.duplicate_ratio)
    quota = {int(k): int(n) for k, n in candidates.groupby("label").size().items()}
    checks = [filtering.label_check_text(f.label_check, f.min_confidence),
              "realism off" if f.realism_quantile is None else f"realism (outlier score <= {realism:.5g})",
              "duplicate off" if f.duplicate_ratio is None else f"duplicate (nearest real distance >= {duplicate:.4g})"]
    print(f"filter: {len(candidates)} samples on {describe(device)}, {fanout.where(device.type == 'cuda')}; "
          f"checks: {', '.join(checks)}")

    with atomic_dir(paths.FILTERED) as out:
        map_shards(source, out, sorted(candidates["shard"].unique()), None, f.batch_size)  # a copy
        scored = judged(candidates, out, judge, real_features, f, device)
        scored["filter"] = filtering.check(scored, f.label_check, f.min_confidence, realism, duplicate)
        scored, rounds = top_up(scored, quota, params, info, out, judge, real_features, (realism, duplicate), device)
        scored["filter"] = filtering.keep_targets(scored, quota, f.max_per_class)
        manifest = scored.drop(columns="index")
        write_manifest(out, manifest)
        write_json(out / INFO, {**json.loads((source / INFO).read_text()), "filter": f.model_dump(mode="json")})
        report = {**filtering.acceptance(scored, info.class_names), "thresholds": {
            "label_check": f.label_check, "min_confidence": f.min_confidence, "outlier_score": None if math.isinf(realism) else round(realism, 6),
            "nn_distance": round(duplicate, 6)}, "top_up": rounds}
        write_json(out / paths.FILTER_REPORT, report)
        if len(manifest):
            save_grid(verdict_grid(manifest, out, info, f.grid_columns), out / paths.FILTER_GRID)
    print(f"filter: kept {report['accepted']} of {report['candidates']} "
          f"({report['rate'] if report['rate'] is not None else 0:.1%}); rejected {report['rejected']}")
    write_json(paths.metrics_file("filter"), report)
    return report


def reference_scores() -> np.ndarray:
    """Outlier scores of real images the scorer did not train on: the val split's. Without one, the train
    split's, which the scorer fits closer than any new image: a stricter threshold (with a warning)."""
    try:
        table = pd.read_parquet(paths.SCORES, columns=["id", "outlier_score"])
    except FileNotFoundError:
        raise DataError(f"{paths.SCORES}: missing; the filter's realism check needs the real images' outlier scores: "
                        "run train_scorer (dvc repro), or set filter.realism_quantile: null") from None
    real = read_manifest(paths.PREPARED).merge(table, on="id")
    val = real[real["split"] == "val"]
    if len(val):
        return val["outlier_score"].to_numpy()
    log.warning("filter: no val images; the realism threshold comes from the train images' outlier scores, "
                "which the scorer fits closely: expect strict rejections (raise prepare.val_fraction, or set "
                "filter.realism_quantile: null)")
    return real[real["split"] == "train"]["outlier_score"].to_numpy()


def judged(rows: pd.DataFrame, root: Path, judge: classifier.Classifier, real_features: np.ndarray,
           f: FilterParams, device: torch.device) -> pd.DataFrame:
    """`rows` with the judge's label, its probability of the sample's label (judge_confidence), its
    probabilities of every class (judge_probs: the soft label) and the distance to the nearest real train
    image. A shard is a piece of work (components/fanout.py: here or on a Dask cluster)."""
    label, confidence, distance = (pd.Series(np.nan, index=rows.index) for _ in range(3))
    soft = pd.Series(None, index=rows.index, dtype=object)
    parts: list[pd.DataFrame] = []

    def pieces():
        for part, images in iter_images(root, rows):
            parts.append(part)
            yield images

    score = partial(judge_images, batch_size=f.batch_size, device=device)
    results = fanout.ordered_map(score, pieces(), device.type == "cuda", judge=judge, real_features=real_features)
    for i, (probs, nearest) in enumerate(results):
        part = parts[i]
        label[part.index] = probs.argmax(1)
        confidence[part.index] = probs[np.arange(len(part)), part["label"].to_numpy()]
        soft[part.index] = list(probs.astype(np.float32))
        distance[part.index] = nearest
    return rows.assign(judge_label=label.astype("int64"), judge_confidence=confidence.astype("float64"),
                       judge_probs=soft, nn_distance=distance.astype("float64"))


def top_up(scored: pd.DataFrame, quota: dict[int, int], params: Params, info: DatasetInfo, out: Path,
           judge: classifier.Classifier, real_features: np.ndarray, thresholds: tuple[float, float],
           device: torch.device) -> tuple[pd.DataFrame, list[dict]]:
    """Rounds of extra samples for the classes under their target; the log of what each round did."""
    f, log = params.filter, []
    short = filtering.shortfall(scored, quota, f.max_per_class)
    if not short or not f.top_up_rounds:
        return scored, log
    chain = Chain.load(params, device, info.class_names, info.channels)
    with ShardWriter(out, prefix="topup", shard_size=params.generate.shard_size) as writer:
        for round_ in range(1, f.top_up_rounds + 1):
            if not short:
                break
            frames = []
            for label, missing in short.items():
                count = round_size(scored[scored["label"] == label], missing, quota[label], f.top_up_max)
                start = int(scored.loc[scored["label"] == label, "index"].max()) + 1
                rows = chain.make(label, start, count, writer)
                frames.append(rows.assign(filter_round=round_, index=np.arange(start, start + count)))
            writer.flush()
            extra = judged(pd.concat(frames, ignore_index=True), out, judge, real_features, f, device)
            extra["filter"] = filtering.check(extra, f.label_check, f.min_confidence, *thresholds)
            scored = pd.concat([scored, extra], ignore_index=True)
            entry = {"round": round_, "short": {info.class_names[k]: n for k, n in short.items()},
                     "generated": {info.class_names[int(r['label'].iloc[0])]: len(r) for r in frames}}
            short = filtering.shortfall(scored, quota, f.max_per_class)
            entry["still_short"] = {info.class_names[k]: n for k, n in short.items()}
            print(f"filter: top-up round {round_}: {entry['generated']}; still short: {entry['still_short'] or 'none'}")
            log.append(entry)
    return scored, log


def round_size(rows: pd.DataFrame, missing: int, quota: int, top_up_max: float) -> int:
    """Candidates to generate for `missing` passing samples at the class's acceptance rate so far."""
    rate = max((rows["filter"] == filtering.ACCEPTED).mean() if len(rows) else 0.0, MIN_RATE)
    return max(1, min(math.ceil(missing / rate * 1.1), math.ceil(top_up_max * quota)))


def verdict_grid(manifest: pd.DataFrame, root: Path, info: DatasetInfo, columns: int) -> np.ndarray:
    """(classes, 2 x columns, H, W, C): per class its first `columns` accepted samples, then its first
    `columns` rejected ones; white where a class has fewer."""
    grid = blank_grid(len(info.class_names), 2 * columns, info.size, info.channels)
    for label, rows in manifest.groupby("label", sort=True):
        accepted = rows["filter"] == filtering.ACCEPTED
        for offset, part in ((0, rows[accepted].head(columns)), (columns, rows[~accepted].head(columns))):
            if len(part):
                grid[label, offset:offset + len(part)] = gather_images(root, part)
    return grid
