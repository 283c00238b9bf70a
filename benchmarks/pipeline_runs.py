"""Downstream runs on a pipeline that already ran: its evaluate's context, and variants of its synthetic arm.

The benchmarks that retrain evaluate's arms on a finished pipeline's data (teacher_labels.py, real_oracle.py,
label_mix.py) share these: the context evaluate would build there, and the loop that trains each variant on
each of evaluate's seeds (taking the pipeline's own runs where a variant is one of them) and averages them.
"""

import argparse
import json
import shlex
import sys
from contextlib import chdir
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
REPO = Path(__file__).resolve().parents[1]

from benchmarks.learning_curve import machine, parse_pairs  # noqa: E402
from components import paths  # noqa: E402
from components.config import load_params  # noqa: E402
from components.data.manifest import DatasetInfo  # noqa: E402
from components.device import resolve_device  # noqa: E402
from components.stages.evaluate import driver_precision  # noqa: E402
from components.training.downstream import RECIPES, Context, Run, read_sets, train_run  # noqa: E402

SPLITS = ("val", "test")


class Variant(NamedTuple):
    arm: str        # the recipe (evaluate's arm name)
    ctx: Context    # what it trains on, and how
    taken: bool     # the pipeline's own run of this arm: read from its run folder, not trained
    folder: str     # where it trains, under the benchmark's work folder


def pipelines_parser(description: str, out: str) -> argparse.ArgumentParser:
    """The arguments every such benchmark takes: the pipelines (--data), --work, --out, and --set (a param over
    params.yaml, dotted key and YAML value, as in learning_curve.py: the pipeline's own runs are taken only where
    they are the same runs)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", action="append", required=True, metavar="FOLDER:SEED",
                        help="a folder where the pipeline ran and its pipeline seed (repeat for several)")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results" / out)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    return parser


def on_each_pipeline(args: argparse.Namespace, compare: Callable[[Path, int, Path, dict], dict]) -> None:
    """compare(folder, pipeline seed, work folder, params overrides) for each --data, its means printed; after
    each, every result so far written to --out with the machine and the command."""
    overrides = parse_pairs(args.overrides)
    results = []
    for spec in args.data:
        folder, seed = spec.rsplit(":", 1)
        results.append(compare(Path(folder).resolve(), int(seed), args.work.resolve() / f"seed{seed}", overrides))
        print(json.dumps(results[-1]["mean"], indent=1), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"machine": machine(), "command": shlex.join([sys.executable, *sys.argv]),
                                        "pipelines": results}, indent=2) + "\n")


def evaluate_context(data: Path, pipeline_seed: int, overrides: dict | None = None) -> Context:
    """What evaluate's runs share, for the pipeline that ran in `data` with params.yaml (and `overrides`) at its
    seed: the params with the precision resolved, the assembled dataset's images, the device."""
    params = load_params(REPO / "params.yaml", {**(overrides or {}), "seed": pipeline_seed})
    with chdir(data):
        device = resolve_device(params.device)
        sets = read_sets(paths.AUGMENTED)
        num_classes = len(DatasetInfo.read(paths.AUGMENTED).class_names)
    return Context(driver_precision(params, device), sets, num_classes, device)


def train_variants(variants: dict[str, Variant], data: Path, pipeline_seed: int, work: Path) -> dict:
    """Every variant on each of evaluate's seeds: balanced accuracy on val and test per run, the means, and each
    mean's lift over the first variant's (the baseline)."""
    runs: dict[str, dict[int, dict]] = {}
    for name, v in variants.items():
        runs[name] = {}
        for seed in v.ctx.p.seeds:
            run = Run(RECIPES[v.arm], seed, v.arm, v.ctx.p.synthetic_share)
            donors = (data / paths.EVALUATION_RUNS / f"{v.arm}-seed{seed}",) if v.taken else ()
            result = train_run(run, v.ctx, work / v.folder, donors=donors)
            runs[name][seed] = {split: round(result[split]["balanced_accuracy"], 5) for split in SPLITS}
            print(f"pipeline seed {pipeline_seed}, {name}, evaluate seed {seed}: {runs[name][seed]}", flush=True)
    mean = {name: {split: round(float(np.mean([r[split] for r in by_seed.values()])), 5) for split in SPLITS}
            for name, by_seed in runs.items()}
    base = next(iter(mean.values()))
    lift = {name: {split: round(m[split] - base[split], 5) for split in SPLITS} for name, m in mean.items()}
    return {"runs": runs, "mean": mean, "lift": lift}
