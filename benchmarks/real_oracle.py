"""The ceiling of the lift: what would perfect samples add? New real images in the synthetic part's place.

Issue 12 asks the synthetic samples for +1 point over `real_classic`. This script measures what the protocol
gives when the synthetic part of every batch is made of *real* images the pipeline never saw (drawn from
Fashion-MNIST's train pool outside the prepared train and val images, as many per class as the pipeline's
synthetic set holds): the lift a generator could reach if its samples were as good as new real images. Three
variants: their true labels (more labelled data); the judge's soft labels at evaluate's temperature, as the
synthetic samples are trained (new unlabelled images, labelled by the judge); and the same, but only images the judge
names right, as the filter's label check keeps samples (what the filter would make of perfect samples). Every other part of
the recipe is evaluate's (the `real_synthetic_classic` arm, its share and steps). Each pipeline's own
`real_classic` and `real_synthetic_classic` runs are taken from its run folder, for comparison. Val chooses nothing
here; test reports. Writes the figures, the machine and the command as JSON (--out). Never asserted in tests.

--data is a folder where the pipeline ran (benchmarks/learning_curve.py's per_class-N folders) with the
pipeline seed it ran with (FOLDER:SEED), read only; new runs are trained under --work. --set overrides a param
(dotted key, YAML value) as in learning_curve.py; the pipeline's runs are taken only where they are the same runs.

    python benchmarks/real_oracle.py --data /tmp/f32/s0/per_class-100:0 --work /tmp/oracle
"""

import argparse
import json
import shlex
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
REPO = Path(__file__).resolve().parents[1]

from benchmarks.learning_curve import machine, parse_pairs  # noqa: E402
from benchmarks.teacher_labels import evaluate_context  # noqa: E402
from components import paths  # noqa: E402
from components.data.sources import load_source  # noqa: E402
from components.models import classifier  # noqa: E402
from components.training.downstream import RECIPES, Images, Run, Sets, train_run  # noqa: E402

ARM = "real_synthetic_classic"
SPLITS = ("val", "test")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append", required=True, metavar="FOLDER:SEED",
                        help="a folder where the pipeline ran and its pipeline seed (repeat for several)")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/real_oracle-cpu-2core.json")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    overrides = parse_pairs(args.overrides)
    results = []
    for spec in args.data:
        folder, seed = spec.rsplit(":", 1)
        results.append(compare(Path(folder).resolve(), int(seed), args.work.resolve() / f"seed{seed}", overrides))
        print(json.dumps(results[-1]["mean"], indent=1), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"machine": machine(), "command": shlex.join([sys.executable, *sys.argv]),
                                        "pipelines": results}, indent=2) + "\n")


def unseen_pool(params, prepared: pd.DataFrame, seed: int) -> Images:
    """The source's train-pool images that prepare did not take, shuffled (seeded), labels as given."""
    source = load_source(params.prepare)
    taken = set(prepared["origin"])
    pool = np.flatnonzero([not test and origin not in taken
                           for origin, test in zip(source.origins, source.official_test)])
    pool = np.random.default_rng(seed).permutation(pool)
    return Images(source.images[pool], source.labels[pool].astype(np.int64))


def first_of_each_class(images: Images, per_class: dict[int, int], keep: np.ndarray) -> np.ndarray:
    """Indices of the first `per_class[c]` images of each class c among those where `keep` holds."""
    chosen = [np.flatnonzero(keep & (images.labels == label))[:count] for label, count in sorted(per_class.items())]
    short = {label: count - len(c) for (label, count), c in zip(sorted(per_class.items()), chosen) if len(c) < count}
    if short:
        raise SystemExit(f"the unseen pool is short of images for classes {short}")
    return np.concatenate(chosen)


def compare(data: Path, pipeline_seed: int, work: Path, overrides: dict) -> dict:
    """The pipeline's two arms (taken), then the synthetic arm with unseen real images in the samples' place."""
    ctx = evaluate_context(data, pipeline_seed, overrides)
    params, p, sets, device, donors = ctx.params, ctx.p, ctx.sets, ctx.device, data / paths.EVALUATION_RUNS
    prepared = pd.read_parquet(data / paths.PREPARED / "manifest.parquet")
    judge, _ = classifier.load(data / paths.JUDGE / paths.JUDGE_FILE, device)
    labels, counts = np.unique(sets.synthetic.labels, return_counts=True)
    per_class = dict(zip(labels.tolist(), counts.tolist()))
    pool = unseen_pool(params, prepared, pipeline_seed)
    pool_probs = classifier.predict_proba(judge, pool.images, p.fit.batch_size, device)
    right = pool_probs.argmax(1) == pool.labels
    print(f"pipeline seed {pipeline_seed}: {len(pool)} unseen real images; the judge names {right.mean():.1%} of "
          "them right", flush=True)
    hard = params.model_copy(update={"evaluate": p.model_copy(update={"synthetic_labels": "hard"})})

    def unseen(keep: np.ndarray, soft: bool) -> Sets:
        chosen = first_of_each_class(pool, per_class, keep)
        return replace(sets, synthetic=Images(pool.images[chosen], pool.labels[chosen],
                                              pool_probs[chosen].astype(np.float32) if soft else None))

    everyone = np.ones(len(pool), bool)
    # name: (recipe, context, the pipeline's run folder to take it from (None: train it), folder under --work)
    variants = {
        "real_classic (taken)": (RECIPES["real_classic"], ctx, "real_classic", "taken"),
        f"{ARM} (taken)": (RECIPES[ARM], ctx, ARM, "taken"),
        "unseen real, true labels": (RECIPES[ARM], replace(ctx, params=hard, sets=unseen(everyone, False)), None,
                                     "unseen-true-labels"),
        "unseen real, judge's labels": (RECIPES[ARM], replace(ctx, sets=unseen(everyone, True)), None,
                                        "unseen-judge-labels"),
        # what the filter's label check would keep of perfect samples: those the judge names right
        "unseen real the judge names right, judge's labels": (RECIPES[ARM], replace(ctx, sets=unseen(right, True)),
                                                              None, "unseen-judge-right"),
    }
    runs: dict[str, dict[int, dict]] = {}
    for name, (recipe, variant, donor, folder) in variants.items():
        runs[name] = {}
        for seed in p.seeds:
            run = Run(recipe, seed, donor or ARM, p.synthetic_share)
            taken = (donors / f"{donor}-seed{seed}",) if donor else ()
            result = train_run(run, variant, work / folder, donors=taken)
            runs[name][seed] = {split: round(result[split]["balanced_accuracy"], 5) for split in SPLITS}
            print(f"pipeline seed {pipeline_seed}, {name}, evaluate seed {seed}: {runs[name][seed]}", flush=True)
    mean = {name: {split: round(float(np.mean([r[split] for r in by_seed.values()])), 5) for split in SPLITS}
            for name, by_seed in runs.items()}
    base = mean["real_classic (taken)"]
    lift = {name: {split: round(m[split] - base[split], 5) for split in SPLITS} for name, m in mean.items()}
    return {"data": str(data), "pipeline_seed": pipeline_seed, "unseen_per_class": counts.tolist(),
            "judge_right_on_unseen_pool": round(float(right.mean()), 5),
            "runs": runs, "mean": mean, "lift": lift}


if __name__ == "__main__":
    main()
