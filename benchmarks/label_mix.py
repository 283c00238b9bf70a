"""Labels for the synthetic samples between the judge's and the generator's: a mix of the two, measured on val.

benchmarks/real_oracle.py found that unseen real images labelled by the judge's soft labels add next to nothing
to `real_classic`, while the same images with their true labels add points: a soft label carries only what the
judge already knows. A sample's conditioning label carries what the generator was asked for, but our samples
trained with it alone (`evaluate.synthetic_labels: hard`) lost on val and test. This script trains the
`real_synthetic_classic` arm with the target lam x one-hot(conditioning label) + (1 - lam) x the judge's
probabilities at evaluate's temperature, for each --mix lam, on each of evaluate's seeds, beside the pipeline's own
runs (taken: `real_classic`, and lam 0, the default labels). Val chooses; test reports. Writes the figures, the
machine and the command as JSON (--out). Never asserted in tests.

    python benchmarks/label_mix.py --data /tmp/f32/s0/per_class-100:0 --work /tmp/mix --mix 0.5
"""

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.pipeline_runs import (Variant, evaluate_context, on_each_pipeline, pipelines_parser,  # noqa: E402
                                      train_variants)
from components.training.downstream import Images, synthetic_targets  # noqa: E402

ARM = "real_synthetic_classic"


def main() -> None:
    parser = pipelines_parser(__doc__.splitlines()[0], "label_mix-cpu-2core.json")
    parser.add_argument("--mix", type=float, action="append", required=True,
                        help="the conditioning label's share of the target, in (0, 1] (repeat for several)")
    args = parser.parse_args()
    if not all(0 < lam <= 1 for lam in args.mix):
        parser.error("--mix takes shares in (0, 1]; 0 is the default labels, always measured")
    on_each_pipeline(args, lambda data, seed, work, overrides: compare(data, seed, work, overrides, args.mix))


def compare(data: Path, pipeline_seed: int, work: Path, overrides: dict, mixes: list[float]) -> dict:
    """The pipeline's `real_classic` and synthetic arm (taken), then the synthetic arm at each label mix."""
    ctx = evaluate_context(data, pipeline_seed, overrides)
    p, synthetic = ctx.p, ctx.sets.synthetic
    judge = synthetic_targets(p, synthetic).astype(np.float64)  # the judge's probabilities at the temperature
    one_hot = np.eye(ctx.num_classes)[synthetic.labels]
    # The mixed target goes in as the soft labels at temperature 1, which synthetic_targets passes through.
    at_one = ctx.params.model_copy(update={"evaluate": p.model_copy(update={"label_temperature": 1.0})})
    variants = {"real_classic (taken)": Variant("real_classic", ctx, True, "taken"),
                "mix 0 (taken)": Variant(ARM, ctx, True, "taken")}
    for lam in mixes:
        target = Images(synthetic.images, synthetic.labels, (lam * one_hot + (1 - lam) * judge).astype(np.float32))
        variants[f"mix {lam:g}"] = Variant(ARM, replace(ctx, params=at_one, sets=replace(ctx.sets, synthetic=target)),
                                           False, f"mix-{lam:g}")
    return {"data": str(data), "pipeline_seed": pipeline_seed, **train_variants(variants, data, pipeline_seed, work)}


if __name__ == "__main__":
    main()
