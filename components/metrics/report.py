"""evaluate's report files, from the report it writes to metrics/evaluate.json and its runs: the tables
(arms.csv, shares.csv, runs.csv, classes.csv: DVC plots), the sample grid and report.md."""

import csv
from pathlib import Path

import numpy as np

from components.config.quality import SYNTHETIC_ARMS
from components.data.atomic import write_text
from components.data.manifest import DatasetInfo
from components.plots import blank_grid, save_grid

METRICS = ("accuracy", "balanced_accuracy")
SPLITS = ("test", "val")
DIGITS = 5


def rounded(value: float) -> float:
    return round(float(value), DIGITS)


def write_report(out: Path, report: dict, runs: dict[str, list[dict]], info: DatasetInfo,
                 real: tuple[np.ndarray, np.ndarray], synthetic: tuple[np.ndarray, np.ndarray], columns: int) -> None:
    """arms.csv, shares.csv (with a share sweep), runs.csv, classes.csv, samples.png (with synthetic images) and
    report.md into `out`; `real` and `synthetic` are (images, labels) of the train set."""
    arms = report["arms"]
    write_csv(out / "arms.csv", [{"arm": arm, "synthetic": int(arm in SYNTHETIC_ARMS), **spread_columns(arms[arm])}
                                 for arm in arms])
    if "shares" in report:
        write_csv(out / "shares.csv", [{"share": row["share"], "synthetic_per_batch": row["synthetic_per_batch"],
                                        **spread_columns(row)} for row in report["shares"]])
    write_csv(out / "runs.csv", [{"arm": arm, "run": i, **{f"{m}{'' if split == 'test' else '_val'}":
                                                           "" if r[split] is None else rounded(r[split][m])
                                                           for split in SPLITS for m in METRICS}}
                                 for arm, results in runs.items() for i, r in enumerate(results)])
    per_class = report.get("generative", {}).get("per_class", {})
    write_csv(out / "classes.csv", [
        {"class_name": name, **{f"recall_{arm}": arms[arm]["recall"][name] for arm in arms},
         **{k: per_class.get(name, {}).get(k, "") for k in ("fd", "fd_real_train", "precision", "recall")}}
        for name in info.class_names])
    if len(synthetic[1]):
        save_grid(sample_grid(len(info.class_names), real, synthetic, columns), out / "samples.png")
    write_text(out / "report.md", markdown(report, info))


def spread_columns(entry: dict) -> dict:
    """accuracy, accuracy_std, balanced_accuracy, balanced_accuracy_std of a summary entry (test split)."""
    return {f"{m}{suffix}": entry[m][k] for m in METRICS for k, suffix in (("mean", ""), ("std", "_std"))}


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def sample_grid(classes: int, real: tuple[np.ndarray, np.ndarray], synthetic: tuple[np.ndarray, np.ndarray],
                columns: int) -> np.ndarray:
    """One row per class: its first `columns` real train images, then its first `columns` synthetic ones
    (white tiles where a class has fewer)."""
    grid = blank_grid(classes, 2 * columns, real[0].shape[1], real[0].shape[-1])
    for label in range(classes):
        for offset, (images, labels) in ((0, real), (columns, synthetic)):
            picked = images[labels == label][:columns]
            grid[label, offset:offset + len(picked)] = picked
    return grid


def markdown(report: dict, info: DatasetInfo) -> str:
    lines = ["# Evaluation", "", "## Downstream classifier on the real test split", "",
             "| arm | accuracy | balanced accuracy | lift (balanced) | val balanced accuracy |",
             "|---|---:|---:|---:|---:|"]
    lifts = report["lift"]
    for arm, entry in report["arms"].items():
        gain = lifts.get(arm, {}).get("balanced_accuracy")
        val = entry["val"]["balanced_accuracy"]["mean"] if entry["val"] else None
        lines.append(f"| {arm} | {mean_pm_std(entry['accuracy'])} | {mean_pm_std(entry['balanced_accuracy'])} | "
                     f"{'' if gain is None else f'{gain:+.4f}'} | {'' if val is None else f'{val:.4f}'} |")
    if lifts:
        base = lifts["baseline"]["balanced_accuracy"]
        lines += ["", f"Lift: over the strongest non-synthetic arm, {base['arm']} ({base['mean']:.4f}); means ± "
                      "standard deviation over the seeds. The val split (small) is for choosing settings; the test "
                      "split only reports."]
    r = report["recipe"]
    fit, classic, synth = r["fit"], r["classic"], r["synthetic"]
    lines += ["", "Recipe of every run: " + ", ".join([
        f"{fit['steps']} steps of {fit['batch_size']} real images", f"{fit['optimizer']} lr {fit['lr']:g} "
        f"({fit['schedule']}, warm-up {fit['warmup']:g}, weight decay {fit['weight_decay']:g})",
        f"label smoothing {fit['label_smoothing']:g}", f"{fit.get('precision', 'fp32')} arithmetic",
        f"classic augmentation (in torch on the batch): shift {classic['shift']} px, "
        f"{'horizontal flip' if classic['hflip'] else 'no flip'}, erase {classic['erase']['size']:g} x side "
        f"with p {classic['erase']['p']:g}"]) + f"; synthetic arms: + {synth['per_batch']} synthetic images a "
        f"batch (share {synth['share']:g}), loss weight {synth['weight']:g}, {synth['labels']} labels"
        + (f" (temperature {synth['temperature']:g})" if synth["labels"] == "judge" else "")
        + (f", real only in the last {synth['real_only_final']:g} of the steps" if synth["real_only_final"] else "")
        + "."]
    if "shares" in report:
        lines += share_lines(report["shares"])
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
            lines += ["", f"CAS (the classic recipe trained on synthetic only, tested on real): accuracy "
                          f"{gen['cas']['accuracy']:.4f}, balanced accuracy {gen['cas']['balanced_accuracy']:.4f}."]
        lines += ["", "Samples: plots/evaluate/samples.png (per class, real then synthetic)."]
    if report["notes"]:
        lines += ["", "## Notes", ""] + [f"- {text}" for text in report["notes"]]
    return "\n".join(lines) + "\n"


def share_lines(rows: list[dict]) -> list[str]:
    lines = ["", "## Synthetic share sweep", "",
             "| share | synthetic a batch | accuracy | balanced accuracy | val balanced accuracy |",
             "|---:|---:|---:|---:|---:|"]
    lines += [f"| {row['share']:g} | {row['synthetic_per_batch']} | {mean_pm_std(row['accuracy'])} | "
              f"{mean_pm_std(row['balanced_accuracy'])} | "
              f"{'' if row['val'] is None else format(row['val']['balanced_accuracy']['mean'], '.4f')} |"
              for row in rows]
    return lines + ["", f"The {rows[-1]['arm']} recipe over the same steps and real batches, each batch holding that "
                        "share of synthetic images (share 0: its real-only twin); plot: plots/evaluate/shares.csv."]


def mean_pm_std(entry: dict) -> str:
    return f"{entry['mean']:.4f} ± {entry['std']:.4f}"
