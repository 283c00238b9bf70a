"""Does the generator beat blending pixels? Blends of a class's real train images in the samples' place.

The cVAE's samples are interpolations in its latent space: its interpolated prior moves a train image's latent up
to half way towards another train image's of the same class. The plainest stand-in needs no generator: blend the
pixels of two train images of a class, (1 - s) x the first + s x the second with s uniform in [0, 0.5) (evaluate's
`with_blends`, as its `real_blend_classic` arm makes them: components/generation/blends.py). The blends go through
the filter's label check and duplicate check (with the pipeline's judge and filter params; not the realism check),
topped up to as many a class as the pipeline's synthetic set holds, and are trained on the judge's soft labels at
evaluate's temperature, as the samples are (and, a second variant, on their class's label, `synthetic_labels:
hard`): the `real_synthetic_classic` arm, evaluate's recipe, seeds and share. Beside them the pipeline's own two
arms. If the blends add what the samples add, the generator's part of the lift is what any interpolation between a
class's images gives. Val chooses nothing here; test reports. Writes the figures, the machine and the command as
JSON (--out). Never asserted in tests.

    python benchmarks/pixel_blends.py --data /tmp/f32/s0/per_class-100:0 --work /tmp/blends
"""

import sys
from contextlib import chdir
from dataclasses import replace
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.pipeline_runs import (Variant, evaluate_context, on_each_pipeline, pipelines_parser,  # noqa: E402
                                      train_variants)
from benchmarks.real_oracle import ARM  # noqa: E402
from components import paths  # noqa: E402
from components.data.manifest import DatasetInfo  # noqa: E402
from components.stages.evaluate import with_blends  # noqa: E402

LABELS = {"judge": "pixel blends within a class, judge's labels",
          "hard": "pixel blends within a class, their class's label"}
FOLDERS = {"judge": "pixel-blends", "hard": "pixel-blends-class-label"}


def main() -> None:
    parser = pipelines_parser(__doc__.splitlines()[0], "pixel_blends-cpu-2core.json")
    parser.add_argument("--labels", nargs="+", choices=LABELS, default=list(LABELS),
                        help="the blends' targets to train on: the judge's soft labels, their class's label, or both")
    args = parser.parse_args()
    on_each_pipeline(args, partial(compare, targets=args.labels))


def compare(data: Path, pipeline_seed: int, work: Path, overrides: dict,
            targets: tuple[str, ...] = tuple(LABELS)) -> dict:
    """The pipeline's two arms (taken), then the synthetic arm with checked pixel blends in the samples' place,
    trained on each of `targets` (LABELS' keys)."""
    ctx = evaluate_context(data, pipeline_seed, overrides)
    params = ctx.params
    with chdir(data):  # evaluate's own blends: the judge and the manifest where evaluate reads them
        sets, made = with_blends(params, DatasetInfo.read(paths.AUGMENTED), ctx.sets, ctx.device, notes=[])
    blends_ctx = replace(ctx, sets=replace(sets, synthetic=sets.blends))
    hard = params.model_copy(update={"evaluate": ctx.p.model_copy(update={"synthetic_labels": "hard"})})
    contexts = {"judge": blends_ctx, "hard": replace(blends_ctx, params=hard)}
    variants = {
        "real_classic (taken)": Variant("real_classic", ctx, True, "taken"),
        f"{ARM} (taken)": Variant(ARM, ctx, True, "taken"),
        **{LABELS[kind]: Variant(ARM, contexts[kind], False, FOLDERS[kind]) for kind in LABELS if kind in targets},
    }
    return {"data": str(data), "pipeline_seed": pipeline_seed, "blends": made,
            **train_variants(variants, data, pipeline_seed, work)}


if __name__ == "__main__":
    main()
