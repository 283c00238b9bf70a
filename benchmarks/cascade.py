"""The two ways to 28x28 Fashion-MNIST samples, with the default budget of params.yaml: the generator at 28
directly (generator.size 28, upscale.factor 1), and the generator at 14 brought to 28 by the x2 SR net
(generator.size 14, upscale.factor 2). Prints a table and writes it, with the exact command, to --out.
Never asserted in tests.

Each path runs in its own folder under --work: prepare, train_generator, generate, train_upscaler and
upscale (reading data/generated: denoise is left out of both, so the paths differ only in the generator's
size and the SR net). Then, measured on the official test images:
- judge: the classifier (components/models/classifier.py) trained on --judge-per-class real train images per
  class. Its accuracy on the samples (does a sample look like its class), the Fréchet distance of its
  features between the samples and as many real test images (beside the real-vs-real floor), and k-NN
  precision / recall;
- downstream: the classifier trained with evaluate's fixed budget on the prepared real train images alone,
  and on them plus the samples; test accuracy, mean over --seeds;
- the SR net's PSNR / SSIM against bicubic (metrics/train_upscaler.json of the cascade path), where the
  cascade loses quality (`round_trip`: real test images down by 2 and back up by bicubic or by the SR net;
  the cascade's samples brought up by bicubic), and the wall-clock seconds of each training stage (this
  machine, whatever else ran on it).

    python benchmarks/cascade.py --work /tmp/cascade --out benchmarks/results/cascade-cpu-2core.json
"""

import argparse
import json
import platform
import shlex
import sys
import time
from contextlib import chdir
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
REPO = Path(__file__).resolve().parents[1]

from components import paths  # noqa: E402
from components.config import load_params  # noqa: E402
from components.config.classifier import ClassifierParams  # noqa: E402
from components.config.quality import ClassifierFitParams  # noqa: E402
from components.config.training import FitParams  # noqa: E402
from components.data.manifest import read_manifest, read_split  # noqa: E402
from components.data.shards import gather_images  # noqa: E402
from components.data.sources import load_source  # noqa: E402
from components.device import resolve_device  # noqa: E402
from components.metrics.distances import frechet_distance, precision_recall, real_floor  # noqa: E402
from components.data.transforms import degrade  # noqa: E402
from components.models import classifier, upscaler  # noqa: E402
from components.stages import generate, prepare, train_generator, train_upscaler, upscale  # noqa: E402
from components.training.upscaler import AREA_ONLY  # noqa: E402
from components.training.classify import train_classifier  # noqa: E402

PATHS = {
    "direct-28": {"generator.size": 28, "upscale.factor": 1},
    "cascade-14x2": {"generator.size": 14, "upscale.factor": 2},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (one sub-folder per path)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/cascade-cpu-2core.json")
    parser.add_argument("--judge-per-class", type=int, default=1000)
    parser.add_argument("--judge-steps", type=int, default=1500)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device("auto")

    results, samples = {}, {}
    for name, overrides in PATHS.items():
        results[name], samples[name] = run_path(args.work / name, overrides)
    with chdir(args.work / "direct-28"):
        real_train, real_labels = read_split(paths.PREPARED, "train")
        params = load_params(REPO / "params.yaml", PATHS["direct-28"])
    test, test_labels, judge_images, judge_labels = real_sets(params, args.judge_per_class)

    judge, _ = train_classifier(judge_images, judge_labels, 10, ClassifierParams(),
                                FitParams(steps=args.judge_steps, batch_size=128, lr=2e-3, checkpoint_every=500,
                                          log_every=100), 0, device, args.work / "judge", "judge")
    real_features = classifier.embed(judge, test, 512, device)
    judged = {"judge_test_accuracy": accuracy(judge, test, test_labels, device),
              "real_floor_fd": round(real_floor(real_features), 3)}
    baseline = downstream(real_train, real_labels, None, None, test, test_labels, args.seeds, args.work, device)
    for name, (images, labels) in samples.items():
        fake_features = classifier.embed(judge, images, 512, device)
        subset = np.random.default_rng(0).choice(len(real_features), len(fake_features), replace=False)
        precision, recall = precision_recall(real_features[subset], fake_features)
        results[name].update({
            "judge_accuracy_on_samples": accuracy(judge, images, labels, device),
            "fd": round(frechet_distance(fake_features, real_features[subset]), 3),
            "precision": round(precision, 4), "recall": round(recall, 4),
            "downstream_accuracy": downstream(real_train, real_labels, images, labels, test, test_labels,
                                              args.seeds, args.work / name, device),
        })
    judged["round_trip"] = round_trip(judge, test, test_labels, real_features, args.work / "cascade-14x2", device)
    report = {"command": shlex.join([sys.executable, *sys.argv]), "machine": platform.machine(),
              "threads": args.threads, "device": str(device), **judged,
              "downstream_accuracy_real_only": baseline, "paths": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


def run_path(root: Path, overrides: dict) -> tuple[dict, tuple[np.ndarray, np.ndarray]]:
    """The stages of one path in `root`; returns its figures and its upscaled samples with their labels."""
    root.mkdir(parents=True, exist_ok=True)
    params = load_params(REPO / "params.yaml", overrides)
    out = {"generator.size": params.generator.size, "upscale.factor": params.upscale.factor, "seconds": {}}
    with chdir(root):
        for name, stage in (("prepare", prepare.run), ("train_generator", train_generator.run),
                            ("generate", generate.run), ("train_upscaler", train_upscaler.run)):
            started = time.perf_counter()
            summary = stage(params)
            out["seconds"][name] = round(time.perf_counter() - started, 1)
            if name == "train_upscaler" and params.upscale.factor > 1:
                out["sr_val"] = summary["val"]
        upscale.run(params, source=paths.GENERATED)
        manifest = read_manifest(paths.UPSCALED)
        images = gather_images(paths.UPSCALED, manifest)
    return out, (images, manifest["label"].to_numpy(np.int64))


def round_trip(judge, test, test_labels, real_features, root: Path, device) -> dict:
    """Where the cascade loses quality: real test images area-downscaled by 2 and brought back by bicubic and
    by the SR net (judge accuracy; Fréchet distance of half of them to the other half, untouched), and the
    cascade's 14x14 samples brought to 28 by bicubic instead of the SR net."""
    model, _ = upscaler.load(root / paths.UPSCALER / paths.UPSCALER_FILE, device)
    low = degrade(test, AREA_ONLY, 2, seed=0)
    half = len(test) // 2
    out = {}
    for name, back in (("bicubic", upscaler.bicubic(low, 2)), ("sr", upscaler.apply(model, low, 512, device))):
        features = classifier.embed(judge, back[:half], 512, device)
        out[f"real_area_{name}"] = {"judge_accuracy": accuracy(judge, back, test_labels, device),
                                   "fd": round(frechet_distance(features, real_features[half:]), 3)}
    manifest = read_manifest(root / paths.GENERATED)
    samples, labels = gather_images(root / paths.GENERATED, manifest), manifest["label"].to_numpy(np.int64)
    bicubic = upscaler.bicubic(samples, 2)
    subset = np.random.default_rng(0).choice(len(real_features), len(samples), replace=False)
    out["samples_bicubic"] = {"judge_accuracy": accuracy(judge, bicubic, labels, device),
                              "fd": round(frechet_distance(classifier.embed(judge, bicubic, 512, device),
                                                           real_features[subset]), 3)}
    return out


def real_sets(params, per_class: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(official test images, labels, the judge's training images, labels): the first `per_class` train
    images of each class."""
    data = load_source(params.prepare)
    test = data.official_test
    train_index = np.concatenate([np.flatnonzero((data.labels == k) & ~test)[:per_class] for k in range(10)])
    return data.images[test], data.labels[test], data.images[train_index], data.labels[train_index]


def downstream(real, real_labels, synthetic, synthetic_labels, test, test_labels, seeds, work, device) -> dict:
    images, labels = real, real_labels
    if synthetic is not None:
        images, labels = np.concatenate([real, synthetic]), np.concatenate([real_labels, synthetic_labels])
    scores = []
    for seed in seeds:
        model, _ = train_classifier(images, labels, 10, ClassifierParams(), ClassifierFitParams(), seed, device,
                                    Path(work) / f"downstream-{'synthetic' if synthetic is not None else 'real'}-{seed}",
                                    "downstream")
        scores.append(accuracy(model, test, test_labels, device))
    return {"mean": round(float(np.mean(scores)), 4), "std": round(float(np.std(scores)), 4), "runs": scores}


def accuracy(model, images, labels, device) -> float:
    return round(float((classifier.predict_proba(model, images, 512, device).argmax(1) == labels).mean()), 4)


if __name__ == "__main__":
    main()
