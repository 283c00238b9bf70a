"""Where should the cVAE's latents come from? Its samples under each prior, measured against unseen real images.

Nothing is trained: the pipeline's generator.pt carries its train images' posteriors (prior aggregate, interpolated
or gaussian), and the same decoder is sampled with the interpolated prior and with the gaussian prior at several
`prior_spread`s (as generate samples: `generate_class_range`, the pipeline's seed). The candidates, before any filter,
are measured on judge features against real images that no stage saw and that neither val nor test holds: the
source's train pool outside the prepared images (real_oracle.py's pool, 500 a class): the share the judge puts in
their class (what the filter's label check keeps), and the Fréchet distance and k-NN precision and recall of all of
them and of those the label check keeps. This is what chose `prior_spread` (the lowest mean FD of the kept samples
over the pipeline seeds); val and test choose nothing here. Writes the figures, the machine and the command as JSON (--out).

    python benchmarks/prior_spread.py --data /tmp/gauss/s0/per_class-100:0 --spreads 1,1.25,1.5,1.75,2
"""

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.learning_curve import machine, parse_pairs  # noqa: E402
from benchmarks.real_oracle import first_of_each_class, oracle_inputs  # noqa: E402
from components import paths  # noqa: E402
from components.generation.sample import generate_class_range  # noqa: E402
from components.metrics.distances import frechet_distance, precision_recall  # noqa: E402
from components.metrics.summary import equal_sizes  # noqa: E402
from components.models import classifier, cvae  # noqa: E402

REFERENCE = 500  # unseen pool images a class
PER_CLASS = 500  # candidates a class, under each prior


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append", required=True, metavar="FOLDER:SEED")
    parser.add_argument("--spreads", default="1,1.25,1.5,1.75,2")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results/prior_spread-100-fp32.json")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    spreads = [float(s) for s in args.spreads.split(",")]
    results = []
    for spec in args.data:
        folder, seed = spec.rsplit(":", 1)
        results.append(measure(Path(folder).resolve(), int(seed), spreads, parse_pairs(args.overrides)))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"machine": machine(), "command": shlex.join([sys.executable, *sys.argv]),
                                        "pipelines": results}, indent=2) + "\n")


def measure(data: Path, seed: int, spreads: list[float], overrides: dict) -> dict:
    """The pipeline's decoder under the interpolated prior and the gaussian one at each spread."""
    ctx, judge, _, pool = oracle_inputs(data, seed, overrides)
    decoder, saved = cvae.load(data / paths.GENERATOR / paths.GENERATOR_FILE, ctx.device)
    if not saved.get("posterior"):
        raise SystemExit(f"{data}: generator.pt holds no train posteriors (prior standard); nothing to draw from")
    reference = first_of_each_class(pool, {k: REFERENCE for k in range(ctx.num_classes)}, np.ones(len(pool), bool))
    ref = classifier.embed(judge, pool.images[reference], ctx.p.batch_size, ctx.device)
    bank = {k: v for k, v in saved["posterior"].items() if k in ("means", "stds", "labels")}
    priors = {"interpolated": {**bank, "mix": cvae.PRIOR_MIX["interpolated"]},
              **{f"gaussian, spread {s:g}": {**bank, "mix": 0.0, "spread": s} for s in spreads}}
    rows = {}
    for name, posterior in priors.items():
        cvae.set_posterior(decoder, posterior)
        images = np.concatenate([generate_class_range(decoder, k, 0, PER_CLASS, seed, device=ctx.device)
                                 for k in range(ctx.num_classes)])
        labels = np.repeat(np.arange(ctx.num_classes), PER_CLASS)
        features = classifier.embed(judge, images, ctx.p.batch_size, ctx.device)
        agree = classifier.proba_from_features(judge, features, ctx.device).argmax(1) == labels
        rows[name] = {"label_agreement": round(float(agree.mean()), 4), "all": distances(ref, features, ctx.p.pr_k),
                      "kept": distances(ref, features[agree], ctx.p.pr_k)}
        print(f"pipeline seed {seed}, {name}: {rows[name]}", flush=True)
    return {"data": str(data), "pipeline_seed": seed, "reference": f"unseen pool, {REFERENCE} a class",
            "candidates_per_class": PER_CLASS, "priors": rows}


def distances(reference: np.ndarray, features: np.ndarray, k: int) -> dict:
    precision, recall = precision_recall(*equal_sizes(reference, features), k=k)
    return {"fd": round(frechet_distance(reference, features), 4), "precision": round(precision, 4),
            "recall": round(recall, 4)}


if __name__ == "__main__":
    main()
