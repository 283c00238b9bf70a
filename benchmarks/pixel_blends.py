"""Does the generator beat blending pixels? Blends of a class's real train images in the samples' place.

The cVAE's samples are interpolations in its latent space: its interpolated prior moves a train image's latent up
to half way towards another train image's of the same class. The plainest stand-in needs no generator: blend the
pixels of two train images of a class, (1 - s) x the first + s x the second with s uniform in [0, 0.5). The blends
go through the filter's label check and duplicate check (as the stage does, with the pipeline's judge and filter
params; not the realism check, which needs the outlier scorer's scores of every image), topped up to as many a
class as the pipeline's synthetic set holds, and are trained on the judge's soft labels at evaluate's temperature,
as the samples are (and, a second variant, on their class's label, `synthetic_labels: hard`): the
`real_synthetic_classic` arm, evaluate's recipe, seeds and share. Beside them the pipeline's own two arms. If the
blends add what the samples add, the generator's part of the lift is what any interpolation between a class's
images gives. Val chooses nothing here; test reports. Writes the figures, the machine and the command as JSON
(--out). Never asserted in tests.

    python benchmarks/pixel_blends.py --data /tmp/f32/s0/per_class-100:0 --work /tmp/blends
"""

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.pipeline_runs import (Variant, evaluate_context, on_each_pipeline, pipelines_parser,  # noqa: E402
                                      train_variants)
from benchmarks.real_oracle import ARM  # noqa: E402
from components import paths  # noqa: E402
from components.generation.filtering import duplicate_threshold  # noqa: E402
from components.models import classifier  # noqa: E402
from components.stages.filter import judge_images  # noqa: E402
from components.training.downstream import Images  # noqa: E402

MAX_SHARE = 0.5    # the interpolated prior's posterior_mix: at most half way to the second image
MAX_ROUNDS = 10


def main() -> None:
    on_each_pipeline(pipelines_parser(__doc__.splitlines()[0], "pixel_blends-cpu-2core.json").parse_args(), compare)


def blends(real: Images, label: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` uint8 blends of two different train images of class `label`."""
    members = np.flatnonzero(real.labels == label)
    if len(members) < 2:
        raise SystemExit(f"class {label} has {len(members)} train image(s); a blend needs two")
    first = rng.integers(len(members), size=count)
    second = (first + rng.integers(1, len(members), size=count)) % len(members)
    share = rng.uniform(0.0, MAX_SHARE, size=count)[:, None, None, None]
    mixed = (1 - share) * real.images[members[first]] + share * real.images[members[second]]
    return np.rint(mixed).astype(np.uint8)


def checked_blends(real: Images, per_class: dict[int, int], judge: classifier.Classifier, real_features: np.ndarray,
                   duplicate: float, batch_size: int, seed: int, device) -> tuple[Images, dict]:
    """Blends that pass the label check and the duplicate check (judge-feature distance to the nearest of
    `real_features` at least `duplicate`), as many a class as `per_class` asks, with the judge's probabilities;
    and how many were made and rejected."""
    images, labels, probs, made, rejected = [], [], [], 0, {"label": 0, "duplicate": 0}
    for label, count in sorted(per_class.items()):
        rng, kept = np.random.default_rng([seed, label]), 0
        for _ in range(MAX_ROUNDS):
            candidates = blends(real, label, 2 * (count - kept), rng)
            p, nearest = judge_images(candidates, judge, real_features, batch_size, device)
            named = p.argmax(1) == label
            far = nearest >= duplicate
            made += len(candidates)
            rejected["label"] += int((~named).sum())
            rejected["duplicate"] += int((named & ~far).sum())
            take = np.flatnonzero(named & far)[:count - kept]
            images.append(candidates[take])
            probs.append(p[take].astype(np.float32))
            kept += len(take)
            if kept == count:
                break
        else:
            raise SystemExit(f"class {label}: {kept} of {count} blends passed the checks in {MAX_ROUNDS} rounds")
        labels.append(np.full(count, label, np.int64))
    return (Images(np.concatenate(images), np.concatenate(labels), np.concatenate(probs)),
            {"made": made, "rejected": rejected})


def compare(data: Path, pipeline_seed: int, work: Path, overrides: dict) -> dict:
    """The pipeline's two arms (taken), then the synthetic arm with checked pixel blends in the samples' place."""
    ctx = evaluate_context(data, pipeline_seed, overrides)
    params, sets, device = ctx.params, ctx.sets, ctx.device
    judge, _ = classifier.load(data / paths.JUDGE / paths.JUDGE_FILE, device)
    labels, counts = np.unique(sets.synthetic.labels, return_counts=True)
    real_features = classifier.embed(judge, sets.real.images, params.filter.batch_size, device)
    duplicate = duplicate_threshold(real_features, params.filter.duplicate_ratio)
    blended, made = checked_blends(sets.real, dict(zip(labels.tolist(), counts.tolist())), judge, real_features,
                                   duplicate, params.filter.batch_size, pipeline_seed, device)
    print(f"pipeline seed {pipeline_seed}: {len(blended)} blends kept of {made['made']} made "
          f"(rejected: {made['rejected']})", flush=True)
    blends_ctx = replace(ctx, sets=replace(sets, synthetic=blended))
    hard = params.model_copy(update={"evaluate": ctx.p.model_copy(update={"synthetic_labels": "hard"})})
    variants = {
        "real_classic (taken)": Variant("real_classic", ctx, True, "taken"),
        f"{ARM} (taken)": Variant(ARM, ctx, True, "taken"),
        "pixel blends within a class, judge's labels": Variant(ARM, blends_ctx, False, "pixel-blends"),
        "pixel blends within a class, their class's label": Variant(ARM, replace(blends_ctx, params=hard), False,
                                                                    "pixel-blends-class-label"),
    }
    return {"data": str(data), "pipeline_seed": pipeline_seed, "blends": made, "duplicate_threshold": duplicate,
            **train_variants(variants, data, pipeline_seed, work)}


if __name__ == "__main__":
    main()
