"""Soft labels from a stronger teacher: do the synthetic samples carry more when an ensemble labels them?

The pipeline's soft labels are the judge's probabilities (one classifier, the `real_classic` run of the pipeline's
seed). Averaging the three `real_classic` runs of evaluate's seeds gives a better classifier (about 1.1 points
on test); this script re-labels a pipeline's filtered synthetic samples with that ensemble and retrains the
`real_synthetic_classic` arm on each of evaluate's seeds, beside the judge-labelled runs the pipeline trained.
Val chooses, test reports. Writes the figures, the machine and the command as JSON (--out). Never asserted in tests.

--data is a folder where the pipeline ran (benchmarks/learning_curve.py's per_class-N folders) with the
pipeline seed it ran with (FOLDER:SEED), read only: the runs it already holds are taken as donors, new ones
are trained under --work.

    python benchmarks/teacher_labels.py --data /tmp/bfp/s0/per_class-100:0 --work /tmp/teacher
"""

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.pipeline_runs import evaluate_context, on_each_pipeline, pipelines_parser  # noqa: E402
from components import paths  # noqa: E402
from components.metrics.classification import scores  # noqa: E402
from components.models import classifier  # noqa: E402
from components.training.downstream import RECIPES, Images, Run, train_model, train_run  # noqa: E402

ARM = "real_synthetic_classic"


def main() -> None:
    args = pipelines_parser(__doc__.splitlines()[0], "teacher_labels-cpu-2core.json").parse_args()
    on_each_pipeline(args, compare)


def compare(data: Path, pipeline_seed: int, work: Path, overrides: dict) -> dict:
    """The teachers' scores, then the synthetic arm per evaluate seed with the judge's and the ensemble's labels."""
    ctx = evaluate_context(data, pipeline_seed, overrides)
    p, sets, device, donors = ctx.p, ctx.sets, ctx.device, data / paths.EVALUATION_RUNS
    teachers = [train_model(Run(RECIPES["real_classic"], seed, "real_classic", p.synthetic_share), ctx,
                            work / "teachers", donors=(donors / f"real_classic-seed{seed}",)) for seed in p.seeds]

    def members(images: np.ndarray) -> np.ndarray:
        """(teachers, N, classes): each teacher's probabilities."""
        return np.stack([classifier.predict_proba(m, images, p.batch_size, device) for m in teachers])

    def accuracy(probs: np.ndarray, split: str) -> float:
        return round(scores(getattr(sets, split).labels, probs.argmax(1), ctx.num_classes)["balanced_accuracy"], 5)

    teacher_scores = {}
    for split in ("val", "test"):
        probs = members(getattr(sets, split).images)
        teacher_scores[split] = {"members": [accuracy(one, split) for one in probs],
                                 "ensemble": accuracy(probs.mean(0), split)}
    print(f"pipeline seed {pipeline_seed}: teachers {teacher_scores}", flush=True)
    relabelled = Images(sets.synthetic.images, sets.synthetic.labels,
                        members(sets.synthetic.images).mean(0).astype(np.float32))
    labels = {"judge": sets, "ensemble": replace(sets, synthetic=relabelled)}
    arms: dict[str, dict[int, dict]] = {}
    for name, variant_sets in labels.items():
        variant = replace(ctx, sets=variant_sets)
        arms[name] = {}
        for seed in p.seeds:
            run = Run(RECIPES[ARM], seed, ARM, p.synthetic_share)
            result = train_run(run, variant, work / name, donors=(donors / f"{ARM}-seed{seed}",))
            arms[name][seed] = {split: round(result[split]["balanced_accuracy"], 5) for split in ("val", "test")}
            print(f"pipeline seed {pipeline_seed}, {name} labels, evaluate seed {seed}: {arms[name][seed]}", flush=True)
    mean = {name: {split: round(float(np.mean([r[split] for r in runs.values()])), 5) for split in ("val", "test")}
            for name, runs in arms.items()}
    mean["real_classic (members)"] = {split: round(float(np.mean(teacher_scores[split]["members"])), 5)
                                      for split in ("val", "test")}
    return {"data": str(data), "pipeline_seed": pipeline_seed, "teachers": teacher_scores, "runs": arms, "mean": mean}


if __name__ == "__main__":
    main()
