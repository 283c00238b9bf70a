"""assemble: combine the real samples with the synthetic ones the filter accepted into data/augmented
(shards, manifest, card).

Every row gets the outlier score of its image (`outlier_score`: real ones from train_scorer's
scores.parquet, synthetic ones from the denoise stage). The card lists, per split, the real images with
the highest scores, drawn in outliers.png (one row per split, highest first): candidates for a look,
as corrupt, badly framed or mislabeled. None is dropped unless assemble.drop_real_outliers says so.
The card also gives the filter's acceptance per class and reason, and its top-up rounds (filter.json).
"""

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from components import paths
from components.config import Params
from components.data.atomic import atomic_dir, write_json, write_text
from components.data.manifest import DatasetInfo, read_manifest, write_manifest
from components.data.shards import ShardWriter, gather_images
from components.errors import DataError
from components.generation import filtering
from components.plots import save_grid

log = logging.getLogger("genaug")

# The params sections the augmented data depends on (dvc.yaml lists the same for this stage).
DATA_PARAMS = ("seed", "prepare", "generator", "train_generator", "generate", "train_scorer", "train_denoiser",
               "denoise", "train_upscaler", "upscale", "classic", "train_judge", "filter")


def run(params: Params, synthetic: Path | None = paths.FILTERED, scores: Path = paths.SCORES) -> dict:
    """Write data/augmented from data/prepared and, when given, a folder of synthetic samples."""
    info = DatasetInfo.read(paths.PREPARED)
    real = with_scores(read_manifest(paths.PREPARED), scores, params.assemble.drop_real_outliers)
    top = top_outliers(real, params.assemble.outliers)
    real, dropped = drop_outliers(real, params.assemble.drop_real_outliers)
    parts = [(paths.PREPARED, real)]
    if synthetic is not None:
        parts.append((synthetic, read_synthetic(synthetic, info)))
    with atomic_dir(paths.AUGMENTED) as out:
        manifest = reshard(out, parts, params.assemble.shard_size)
        info.write(out)
        write_manifest(out, manifest)
        if top is not None and len(top):
            save_grid(outlier_grid(top, info), out / paths.OUTLIERS)
        write_text(out / paths.CARD, dataset_card(manifest, info, params, upstream(parts), top, dropped,
                                            filter_report(synthetic)))
    summary = summarize(manifest, info)
    write_json(paths.metrics_file("assemble"), summary)
    return summary


def with_scores(manifest: pd.DataFrame, scores: Path, drop: int) -> pd.DataFrame:
    """The real manifest with each image's `outlier_score`; without scores.parquet, unchanged (and the card
    says so), unless some are to be dropped by score."""
    try:
        table = pd.read_parquet(scores, columns=["id", "outlier_score"])
    except FileNotFoundError:
        if drop:
            raise DataError(f"{scores}: missing, and assemble.drop_real_outliers ({drop}) drops real images by "
                            "their outlier score; run the train_scorer stage first") from None
        log.warning("%s: missing (run train_scorer); the card lists no outliers", scores)
        return manifest
    score = manifest["id"].map(table.set_index("id")["outlier_score"])
    if score.isna().any():
        raise DataError(f"{scores}: no score for {int(score.isna().sum())} image(s) of {paths.PREPARED}, e.g. "
                        f"{manifest['id'][score.isna()].iloc[0]!r}; re-run train_scorer after prepare")
    return manifest.assign(outlier_score=score.astype("float64"))


def top_outliers(real: pd.DataFrame, k: int) -> pd.DataFrame | None:
    """The k real images of each split with the highest outlier scores, highest first (None: no scores)."""
    if "outlier_score" not in real.columns:
        return None
    ranked = real.sort_values(["outlier_score", "id"], ascending=[False, True], kind="stable")
    return ranked.groupby("split", sort=False).head(k)


def drop_outliers(real: pd.DataFrame, count: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(real without its `count` train images of highest outlier score, those dropped)."""
    if not count:
        return real, real.iloc[:0]
    train = real[real["split"] == "train"].sort_values(["outlier_score", "id"], ascending=[False, True], kind="stable")
    if count >= len(train):
        raise DataError(f"assemble.drop_real_outliers is {count}, but there are only {len(train)} real train images; "
                        "drop fewer (it counts images, the highest outlier scores first)")
    dropped = train.head(count)
    return real.drop(index=dropped.index), dropped


def outlier_grid(top: pd.DataFrame, info: DatasetInfo) -> np.ndarray:
    """(splits, k, H, W, C): a row per split (train, val, test) of its top outliers, highest first; white
    where a split has fewer."""
    splits = [s for s in ("train", "val", "test") if (top["split"] == s).any()]
    k = int(top.groupby("split").size().max())
    grid = np.full((len(splits), k, info.size, info.size, info.channels), 255, np.uint8)
    for row, split in enumerate(splits):
        rows = top[top["split"] == split]
        grid[row, :len(rows)] = gather_images(paths.PREPARED, rows)
    return grid


def read_synthetic(root: Path, real: DatasetInfo) -> pd.DataFrame:
    info = DatasetInfo.read(root)
    if (info.class_names, info.size, info.channels) != (real.class_names, real.size, real.channels):
        raise DataError(
            f"{root}: synthetic samples are {info.size}x{info.size}x{info.channels} with classes "
            f"{info.class_names}, but the real set is {real.size}x{real.size}x{real.channels} with "
            f"{real.class_names}; re-run the generation stages after prepare")
    manifest = read_manifest(root)
    if (manifest["source"] != "synthetic").any():
        raise DataError(f"{root}: manifest has rows whose source is not 'synthetic'")
    if "filter" in manifest.columns:  # the filter's verdicts: keep the accepted samples
        manifest = manifest[manifest["filter"] == "accepted"]
    return manifest


def filter_report(synthetic: Path | None) -> dict | None:
    """The filter's acceptance summary (filter.json beside the synthetic manifest), if there is one."""
    if synthetic is None:
        return None
    path = Path(synthetic) / paths.FILTER_REPORT
    return json.loads(path.read_text()) if path.is_file() else None


def reshard(out: Path, parts: list[tuple[Path, pd.DataFrame]], shard_size: int) -> pd.DataFrame:
    """Copy every part's images into new shards, one run per (source, split); return the joint manifest."""
    frames = []
    for root, manifest in parts:
        for (source, split), rows in manifest.groupby(["source", "split"], sort=True):
            with ShardWriter(out, prefix=f"{split}-{source}", shard_size=shard_size) as writer:
                shards, offsets = writer.write(gather_images(root, rows))
            frames.append(rows.assign(shard=shards, offset=offsets))
    return pd.concat(frames, ignore_index=True)


def upstream(parts: list[tuple[Path, pd.DataFrame]]) -> dict[str, str]:
    """Content hash of each input folder (manifest and shards), so the card says what it was built from."""
    hashes = {}
    for root, _ in parts:
        digest = hashlib.sha256()
        for file in sorted(Path(root).rglob("*")):
            if file.is_file():
                digest.update(file.relative_to(root).as_posix().encode())
                digest.update(file.read_bytes())
        hashes[Path(root).as_posix()] = digest.hexdigest()[:16]
    return hashes


def counts_table(manifest: pd.DataFrame) -> pd.DataFrame:
    """Train images per class and source, in class order."""
    train = manifest[manifest["split"] == "train"]
    table = train.pivot_table(index="class_name", columns="source", values="id", aggfunc="count",
                              fill_value=0, sort=False)
    for source in ("real", "synthetic"):
        if source not in table.columns:
            table[source] = 0
    return table[["real", "synthetic"]]


def dataset_card(manifest: pd.DataFrame, info: DatasetInfo, params: Params, inputs: dict[str, str],
                 top: pd.DataFrame | None = None, dropped: pd.DataFrame | None = None,
                 filtered: dict | None = None) -> str:
    table = counts_table(manifest).reindex(info.class_names, fill_value=0)
    splits = manifest.groupby(["split", "source"]).size()
    n_synth = int(table["synthetic"].sum())
    lines = [
        "# Dataset card",
        "",
        f"{len(manifest)} images of {info.size}x{info.size}, {info.channels} channel(s), "
        f"{len(info.class_names)} classes.",
        "",
    ]
    if n_synth == 0:
        lines += ["**No synthetic samples: this augmented set is the real set, unchanged.**", ""]
    else:
        lines += [f"{n_synth} synthetic training images beside {int(table['real'].sum())} real ones.", ""]
    lines += ["## Training images per class and source", "", "| class | real | synthetic |", "|---|---:|---:|"]
    lines += [f"| {name} | {row.real} | {row.synthetic} |" for name, row in table.iterrows()]
    lines += ["", "## Images per split and source", "", "| split | source | images |", "|---|---|---:|"]
    lines += [f"| {split} | {source} | {n} |" for (split, source), n in splits.items()]
    lines += filter_section(filtered)
    lines += outliers_section(top, dropped)
    lines += ["", "## Built from", ""]
    lines += [f"- `{root}` (content hash {digest})" for root, digest in inputs.items()]
    lines += ["", "## Params", "", "```yaml",
              yaml.safe_dump(params.model_dump(mode="json", include=set(DATA_PARAMS)), sort_keys=False).rstrip(),
              "```", ""]
    return "\n".join(lines)


def filter_section(report: dict | None) -> list[str]:
    if report is None:
        return []
    t = report["thresholds"]
    realism = "no realism check" if t["outlier_score"] is None else f"outlier score <= {t['outlier_score']:.5g}"
    label = filtering.label_check_text(t.get("label_check", True), t["min_confidence"])
    lines = ["", "## Filter", "",
             f"{report['accepted']} of {report['candidates']} synthetic candidates kept ({rate(report)}). Checks: "
             f"{label}; {realism} (a quantile of "
             f"the real held-out images'); judge-feature distance to the nearest real train image >= "
             f"{t['nn_distance']:.4g} (closer: a near-duplicate). Rejections count the first failing check.", "",
             "| class | candidates | accepted | rate | " + " | ".join(report["rejected"]) + " |",
             "|---|---:|---:|---:|" + "---:|" * len(report["rejected"])]
    for name, row in [*report["per_class"].items(), ("all", report)]:
        lines.append(f"| {name} | {row['candidates']} | {row['accepted']} | {rate(row)} | "
                     + " | ".join(str(n) for n in row["rejected"].values()) + " |")
    for entry in report["top_up"]:
        lines += ["", f"Top-up round {entry['round']}: classes under quota {entry['short']} got "
                      f"{entry['generated']} more candidates; still short after it: {entry['still_short'] or 'none'}."]
    if not report["top_up"]:
        lines += ["", "No top-up round: every class met its quota, or filter.top_up_rounds is 0."]
    return lines


def rate(row: dict) -> str:
    return "n/a" if row["rate"] is None else f"{row['rate']:.1%}"


def outliers_section(top: pd.DataFrame | None, dropped: pd.DataFrame | None) -> list[str]:
    lines = ["", "## Real images with the highest outlier scores", ""]
    if top is None:
        return lines + ["No outlier scores (data/models/scorer/scores.parquet is missing: run train_scorer)."]
    lines += ["The outlier score is the reconstruction error of an autoencoder trained on the real train images "
              "(train_scorer); the highest are the least typical images: worth a look for corrupt files, odd "
              "framing or a wrong label. Train images score lower than held-out ones (the scorer saw them), so "
              "they are ranked per split. `outliers.png`: one row per split (train, val, test), highest first.", ""]
    if dropped is not None and len(dropped):
        lines += [f"**{len(dropped)} real train image(s) with the highest scores were dropped** "
                  f"(assemble.drop_real_outliers): {', '.join(f'`{i}`' for i in dropped['id'])}.", ""]
    else:
        lines += ["None was dropped (assemble.drop_real_outliers: 0).", ""]
    lines += ["| split | rank | id | class | origin | score |", "|---|---:|---|---|---|---:|"]
    for split in ("train", "val", "test"):
        rows = top[top["split"] == split]
        lines += [f"| {split} | {rank} | `{r.id}` | {r.class_name} | `{r.origin}` | {r.outlier_score:.5f} |"
                  for rank, r in enumerate(rows.itertuples(), start=1)]
    return lines


def summarize(manifest: pd.DataFrame, info: DatasetInfo) -> dict:
    table = counts_table(manifest).reindex(info.class_names, fill_value=0)
    real, synth = int(table["real"].sum()), int(table["synthetic"].sum())
    return {
        "train_images": {"real": real, "synthetic": synth},
        "synthetic_ratio": round(synth / real, 4) if real else 0.0,
        "train_per_class": {name: {"real": int(r.real), "synthetic": int(r.synthetic)}
                            for name, r in table.iterrows()},
        "images": int(len(manifest)),
    }
