"""Images or places? Unseen real images passed through the pipeline's own cVAE, in the samples' place.

real_oracle.py found that unseen real images with their true labels add 3 points in the synthetic part of the
batch, while our samples with their conditioning labels lose 0.9: the gap is the images. Two things differ between
them: *where* the samples are (interpolations between a class's train images, not new views of the class) and *what*
the decoder draws (its smooth rendering, not a photograph). This script separates the two: it encodes the same
unseen real images with the trained cVAE (encoder and decoder of its last checkpoint, the EMA that generator.pt
saves) and decodes each posterior mean with its true label, at evaluate's precision, as generate decodes. Those
reconstructions sit where new real images sit, drawn by our decoder: what a cVAE with perfect coverage would give.
Variants, all with the conditioning label as the target (hard labels, as `evaluate.synthetic_labels: hard`): every
reconstruction, and only those the judge names right (what the filter's label check would keep). Beside them the
pipeline's own runs and, from real_oracle.py's work folder when --work is the same, the unseen real images
themselves with true labels (read back, not trained again). Val chooses nothing here; test reports. Writes the
figures, the machine and the command as JSON (--out). Never asserted in tests.

    python benchmarks/generator_oracle.py --data /tmp/f32/s0/per_class-100:0 --work /tmp/oracle
"""

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.pipeline_runs import Variant, on_each_pipeline, pipelines_parser, train_variants  # noqa: E402
from benchmarks.real_oracle import ARM, first_of_each_class, oracle_inputs  # noqa: E402
from components import paths  # noqa: E402
from components.config import Params  # noqa: E402
from components.device import autocast  # noqa: E402
from components.models import classifier, cvae  # noqa: E402
from components.pixels import to_input, to_uint8  # noqa: E402
from components.training.downstream import Context, Images  # noqa: E402


def main() -> None:
    on_each_pipeline(pipelines_parser(__doc__.splitlines()[0], "generator_oracle-cpu-2core.json").parse_args(),
                     compare)


def trained_cvae(data: Path, params: Params, num_classes: int, channels: int, device: torch.device) -> cvae.CVAE:
    """The pipeline's cVAE, both halves, from its last training checkpoint (the EMA weights generator.pt holds:
    checked against generator.pt's decoder)."""
    if params.generator.kind != "cvae":
        raise SystemExit(f"{data}: generator.kind is {params.generator.kind}; this benchmark needs the cVAE")
    run = data / paths.GENERATOR
    last = max((run / "checkpoints").glob("step-*.pt"), default=None)
    if last is None:
        raise SystemExit(f"{run}/checkpoints holds no checkpoint: the cVAE's encoder is only saved there")
    model = cvae.build(params.generator, num_classes, channels, params.seed)
    model.load_state_dict(torch.load(last, map_location="cpu", weights_only=False)["ema"])
    saved, _ = cvae.load(run / paths.GENERATOR_FILE, torch.device("cpu"))
    if any(not torch.equal(a, b) for a, b in zip(model.decoder.state_dict().values(), saved.state_dict().values())):
        raise SystemExit(f"{last} is not the checkpoint {paths.GENERATOR_FILE} was saved from")
    return model.to(device).eval()


@torch.no_grad()
def reconstruct(model: cvae.CVAE, images: Images, device: torch.device, batch_size: int = 256) -> np.ndarray:
    """uint8 images: each image's posterior mean decoded with its own label, as generate decodes (autocast at
    inference precision, to_uint8)."""
    parts = []
    for i in range(0, len(images), batch_size):
        x = to_input(images.images[i:i + batch_size], device)
        y = torch.from_numpy(images.labels[i:i + batch_size]).to(device)
        with autocast(device):
            mean, _ = model.encoder(x, y)
            parts.append(to_uint8(model.decoder(mean, y).float()))
    return np.concatenate(parts)


def grey_levels(drawn: np.ndarray, images: np.ndarray) -> float:
    """How far the decoder's rendering is from the images: the mean absolute difference, in grey levels."""
    return float(np.abs(drawn.astype(np.int16) - images).mean())


def compare(data: Path, pipeline_seed: int, work: Path, overrides: dict) -> dict:
    """The pipeline's two arms (taken), the unseen real images (real_oracle's run), and their reconstructions."""
    ctx, judge, per_class, pool = oracle_inputs(data, pipeline_seed, overrides)
    params, p, sets, device = ctx.params, ctx.p, ctx.sets, ctx.device
    model = trained_cvae(data, params, ctx.num_classes, pool.images.shape[-1], device)
    drawn = Images(reconstruct(model, pool, device), pool.labels)
    right = classifier.predict_proba(judge, drawn.images, p.fit.batch_size, device).argmax(1) == drawn.labels
    distance = grey_levels(drawn.images, pool.images)
    trained_on = grey_levels(reconstruct(model, sets.real, device), sets.real.images)
    print(f"pipeline seed {pipeline_seed}: {len(drawn)} unseen real images reconstructed, {distance:.1f} grey levels "
          f"from the images on average ({trained_on:.1f} for the cVAE's own train images); the judge names "
          f"{right.mean():.1%} of them right", flush=True)
    hard = params.model_copy(update={"evaluate": p.model_copy(update={"synthetic_labels": "hard"})})

    def given(images: Images, keep: np.ndarray) -> Context:
        """The context with the first images of each class where `keep` holds as the synthetic set (as many
        a class as the samples), their true labels the targets."""
        chosen = first_of_each_class(images, per_class, keep)
        return replace(ctx, params=hard, sets=replace(sets, synthetic=Images(images.images[chosen],
                                                                               images.labels[chosen])))

    everyone = np.ones(len(pool), bool)
    variants = {
        "real_classic (taken)": Variant("real_classic", ctx, True, "taken"),
        f"{ARM} (taken)": Variant(ARM, ctx, True, "taken"),
        # real_oracle.py's folder: read back where --work is its work folder, trained otherwise
        "unseen real, true labels": Variant(ARM, given(pool, everyone), False, "unseen-true-labels"),
        "unseen real through the cVAE, true labels": Variant(ARM, given(drawn, everyone), False,
                                                             "through-cvae-true-labels"),
        # what the filter's label check would keep: the reconstructions the judge names right, topped up to the quota
        "unseen real through the cVAE the judge names right, true labels": Variant(
            ARM, given(drawn, right), False, "through-cvae-judge-right"),
    }
    return {"data": str(data), "pipeline_seed": pipeline_seed, "unseen_per_class": list(per_class.values()),
            "reconstruction_grey_levels": {"unseen": round(distance, 3), "train": round(trained_on, 3)},
            "judge_right_on_reconstructions": round(float(right.mean()), 5),
            **train_variants(variants, data, pipeline_seed, work)}


if __name__ == "__main__":
    main()
