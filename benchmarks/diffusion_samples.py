"""Would a diffusion model's samples help more? A small class-conditional DDPM in the cVAE's place.

Issue 12's cVAE levers have all been measured; this is the generator family it does not name. A small U-Net
(generator.kind diffusion's, components/models/diffusion.py: three levels, 28 -> 14 -> 7, base width 32, ~0.5M
weights) learns to predict the noise of the pipeline's real train images: 6,000 steps of 64, a cosine noise schedule
of 1,000 timesteps, the class as an embedding added to the time's, horizontal flips where `classic.hflip` allows
them, AdamW with a warm-up then cosine decay, an EMA of the weights, gradients clipped at norm 1; on the CPU like
every trainer here, autocast to bf16 where the CPU computes it (as the trainers are). Its own loop, not the
product's trainer (components/training/diffusion.py, which came after it and differs in its random draws, warm-up
and EMA start and clips nothing). It is sampled with generator.kind diffusion's sampler, DDIM (eta 0) in 25 steps,
the starting noise drawn per class from the seed.
The candidates go through the filter's label and duplicate checks, topped up to as many a class as the pipeline's
synthetic set holds (components/generation/blends.py's `checked_candidates`, as evaluate's blends), and are trained
in the samples' place as the samples are: on the judge's soft labels, and on their class's label
(`synthetic_labels: hard`). Beside them, the pipeline's own two arms, taken, and the FD, k-NN precision and recall
of the kept diffusion samples and of the pipeline's own samples against unseen real images (prior_spread.py's
measures and pool). The recipe was fixed before any run; val and test choose nothing. Writes the figures, the times,
the machine and the command as JSON (--out). Never asserted in tests.

    python benchmarks/diffusion_samples.py --data /tmp/bf16/s0/per_class-100:0 --work /tmp/diffusion
"""

import math
import sys
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.pipeline_runs import Variant, on_each_pipeline, pipelines_parser, train_variants  # noqa: E402
from benchmarks.prior_spread import REFERENCE, distances  # noqa: E402
from benchmarks.real_oracle import ARM, first_of_each_class, oracle_inputs  # noqa: E402
from components.data.atomic import atomic_file  # noqa: E402
from components.device import autocast, resolve_precision  # noqa: E402
from components.config.generator import DiffusionParams, GeneratorParams  # noqa: E402
from components.generation.blends import checked_candidates  # noqa: E402
from components.models import classifier  # noqa: E402
from components.models.diffusion import Sampler, UNet, alpha_bar, noised  # noqa: E402
from components.training.downstream import Images  # noqa: E402


CPU = torch.device("cpu")


@dataclass(frozen=True)
class Recipe:
    width: int = 32
    embedding: int = 128
    timesteps: int = 1000
    steps: int = 6000
    batch_size: int = 64
    lr: float = 1e-3
    warmup: int = 150
    ema: float = 0.999
    sample_steps: int = 25
    sample_batch: int = 500

    def net(self) -> DiffusionParams:
        """The U-Net's and the sampler's settings, as generator.kind diffusion takes them."""
        return DiffusionParams(width=self.width, embedding=self.embedding, timesteps=self.timesteps,
                               sample_steps=self.sample_steps)


def to_unit(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float (N, C, H, W) in [-1, 1]."""
    return torch.from_numpy(np.array(images)).permute(0, 3, 1, 2).float() / 127.5 - 1


def train(images: np.ndarray, labels: np.ndarray, classes: int, hflip: bool, seed: int, r: Recipe, file: Path,
          precision: str) -> UNet:
    """The EMA weights after r.steps of noise prediction on the images (on the CPU, autocast to `precision`);
    read from `file` where a run saved them."""
    model = UNet(images.shape[-1], classes, r.net())
    if file.exists():
        model.load_state_dict(torch.load(file))
        return model.eval()
    torch.manual_seed(seed)
    ema = UNet(images.shape[-1], classes, r.net())
    ema.load_state_dict(model.state_dict())
    x_all, y_all, abar = to_unit(images), torch.from_numpy(np.array(labels)).long(), alpha_bar(r.timesteps)
    optimizer = torch.optim.AdamW(model.parameters(), lr=r.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / r.warmup) * 0.5 * (
        1 + math.cos(math.pi * min(step, r.steps) / r.steps)))
    rng, start = np.random.default_rng(seed), time.time()
    for step in range(r.steps):
        pick = torch.from_numpy(rng.integers(len(x_all), size=r.batch_size))
        x, y = x_all[pick], y_all[pick]
        if hflip:
            flip = torch.from_numpy(rng.random(r.batch_size) < 0.5)
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        t = torch.from_numpy(rng.integers(r.timesteps, size=r.batch_size))
        noise = torch.from_numpy(rng.standard_normal(x.shape, dtype=np.float32))
        with autocast(CPU, precision):
            predicted = model(noised(x, t, noise, abar), t, y)
        loss = F.mse_loss(predicted.float(), noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            for e, p in zip(ema.parameters(), model.parameters()):
                e.lerp_(p, 1 - r.ema)
        if (step + 1) % 250 == 0:
            print(f"diffusion: step {step + 1}/{r.steps}, loss {loss.item():.4f}, {time.time() - start:.0f} s",
                  flush=True)
    file.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(file) as tmp:
        torch.save(ema.state_dict(), tmp)
    return ema.eval()


@torch.no_grad()
def sample(model: UNet, label: int, count: int, rng: np.random.Generator, shape: tuple[int, int, int],
           r: Recipe, precision: str) -> np.ndarray:
    """`count` uint8 (N, H, W, C) images of the class: generator.kind diffusion's sampler (DDIM, eta 0) from noise
    drawn from `rng`, autocast to `precision` (the trainer's: at 25 passes an image, sampling costs as much as
    training)."""
    h, w, c = shape
    sampler = Sampler(model, GeneratorParams(kind="diffusion", size=h), r.net())
    noise = rng.standard_normal((count, c * h * w), dtype=np.float32)
    out = [np.empty((0, h, w, c), np.uint8)]
    for begin in range(0, count, r.sample_batch):
        z = torch.from_numpy(noise[begin:begin + r.sample_batch])
        with autocast(CPU, precision):
            x = sampler(z, torch.full((len(z),), label, dtype=torch.long))
        out.append(((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


def main() -> None:
    parser = pipelines_parser(__doc__.splitlines()[0], "diffusion_samples-cpu-2core.json")
    parser.add_argument("--steps", type=int, default=Recipe.steps, help="training steps of the diffusion model")
    args = parser.parse_args()
    on_each_pipeline(args, partial(compare, recipe=Recipe(steps=args.steps)))


def compare(data: Path, pipeline_seed: int, work: Path, overrides: dict, recipe: Recipe = Recipe()) -> dict:
    """The pipeline's two arms (taken), then the synthetic arm with checked diffusion samples in the samples'
    place, on the judge's labels and on their class's label."""
    ctx, judge, per_class, pool = oracle_inputs(data, pipeline_seed, overrides)
    params, real = ctx.params, ctx.sets.real
    start, file = time.time(), work / "diffusion.pt"
    read_back, precision = file.exists(), resolve_precision(CPU)
    model = train(real.images, real.labels, ctx.num_classes, params.classic.hflip, pipeline_seed, recipe, file,
                  precision)
    trained = time.time()

    def make(label: int, count: int, rng: np.random.Generator) -> np.ndarray:
        return sample(model, label, count, rng, real.images.shape[1:], recipe, precision)

    images, labels, probs, made = checked_candidates(make, real.images, per_class, judge, params.filter,
                                                     pipeline_seed, ctx.device)
    sampled = time.time()
    print(f"pipeline seed {pipeline_seed}: {len(labels)} diffusion samples kept of {made['made']} made "
          f"(rejected {made['rejected']})", flush=True)
    reference = first_of_each_class(pool, {k: REFERENCE for k in range(ctx.num_classes)}, np.ones(len(pool), bool))
    ref = classifier.embed(judge, pool.images[reference], ctx.p.batch_size, ctx.device)
    coverage = {name: distances(ref, classifier.embed(judge, x, ctx.p.batch_size, ctx.device), ctx.p.pr_k)
                for name, x in (("diffusion, kept", images), ("pipeline's samples", ctx.sets.synthetic.images))}
    diffused = replace(ctx, sets=replace(ctx.sets, synthetic=Images(images, labels, probs)))
    hard = params.model_copy(update={"evaluate": ctx.p.model_copy(update={"synthetic_labels": "hard"})})
    variants = {
        "real_classic (taken)": Variant("real_classic", ctx, True, "taken"),
        f"{ARM} (taken)": Variant(ARM, ctx, True, "taken"),
        "diffusion samples, judge's labels": Variant(ARM, diffused, False, "diffusion-judge-labels"),
        "diffusion samples, their class's label": Variant(ARM, replace(diffused, params=hard), False,
                                                          "diffusion-class-label"),
    }
    return {"data": str(data), "pipeline_seed": pipeline_seed, "recipe": recipe.__dict__, "precision": precision,
            "seconds": {"train": None if read_back else round(trained - start),
                        "sample_and_check": round(sampled - trained)},
            "made": made["made"], "rejected": made["rejected"],
            "kept": {int(k): n for k, n in made["kept"].items()}, "coverage": coverage,
            **train_variants(variants, data, pipeline_seed, work)}


if __name__ == "__main__":
    main()
