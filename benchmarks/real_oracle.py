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
pipeline seed it ran with (FOLDER:SEED), read only; new runs are trained under --work.

    python benchmarks/real_oracle.py --data /tmp/f32/s0/per_class-100:0 --work /tmp/oracle
"""

import sys
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.pipeline_runs import (Variant, evaluate_context, on_each_pipeline, pipelines_parser,  # noqa: E402
                                      train_variants)
from components import paths  # noqa: E402
from components.config import Params  # noqa: E402
from components.data.sources import load_source  # noqa: E402
from components.models import classifier  # noqa: E402
from components.training.downstream import Context, Images, Sets  # noqa: E402

ARM = "real_synthetic_classic"


def main() -> None:
    on_each_pipeline(pipelines_parser(__doc__.splitlines()[0], "real_oracle-cpu-2core.json").parse_args(), compare)


def unseen_pool(params: Params, prepared: pd.DataFrame, seed: int) -> Images:
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


class OracleInputs(NamedTuple):
    ctx: Context                 # evaluate's, on the pipeline's data
    judge: classifier.Classifier
    per_class: dict[int, int]    # the synthetic set's images per class: how many unseen images a variant takes
    pool: Images                 # the unseen real images (unseen_pool)


def oracle_inputs(data: Path, pipeline_seed: int, overrides: dict) -> OracleInputs:
    """What a variant with unseen real images in the samples' place starts from, for the pipeline in `data`."""
    ctx = evaluate_context(data, pipeline_seed, overrides)
    prepared = pd.read_parquet(data / paths.PREPARED / "manifest.parquet")
    judge, _ = classifier.load(data / paths.JUDGE / paths.JUDGE_FILE, ctx.device)
    labels, counts = np.unique(ctx.sets.synthetic.labels, return_counts=True)
    return OracleInputs(ctx, judge, dict(zip(labels.tolist(), counts.tolist())),
                        unseen_pool(ctx.params, prepared, pipeline_seed))


def compare(data: Path, pipeline_seed: int, work: Path, overrides: dict) -> dict:
    """The pipeline's two arms (taken), then the synthetic arm with unseen real images in the samples' place."""
    ctx, judge, per_class, pool = oracle_inputs(data, pipeline_seed, overrides)
    params, p, sets, device = ctx.params, ctx.p, ctx.sets, ctx.device
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
    variants = {
        "real_classic (taken)": Variant("real_classic", ctx, True, "taken"),
        f"{ARM} (taken)": Variant(ARM, ctx, True, "taken"),
        "unseen real, true labels": Variant(ARM, replace(ctx, params=hard, sets=unseen(everyone, False)), False,
                                            "unseen-true-labels"),
        "unseen real, judge's labels": Variant(ARM, replace(ctx, sets=unseen(everyone, True)), False,
                                               "unseen-judge-labels"),
        # what the filter's label check would keep of perfect samples: those the judge names right
        "unseen real the judge names right, judge's labels": Variant(ARM, replace(ctx, sets=unseen(right, True)),
                                                                     False, "unseen-judge-right"),
        # the same images with hard labels (the judge's choice, which is their true label)
        "unseen real the judge names right, true labels": Variant(
            ARM, replace(ctx, params=hard, sets=unseen(right, False)), False, "unseen-judge-right-true-labels"),
    }
    return {"data": str(data), "pipeline_seed": pipeline_seed, "unseen_per_class": list(per_class.values()),
            "judge_right_on_unseen_pool": round(float(right.mean()), 5),
            **train_variants(variants, data, pipeline_seed, work)}


if __name__ == "__main__":
    main()
