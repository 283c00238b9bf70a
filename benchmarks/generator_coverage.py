"""Generator coverage: train generator variants on the same real images and measure their samples on judge
features the way evaluate does (precision and recall of the k-NN manifolds, Fréchet distance, against the
real test images) plus the judge's label agreement, before any filter. Prints a table and writes the
figures, the machine and the exact command as JSON (--out). Never asserted in tests.

Each variant is NAME:KEY=VALUE;KEY=VALUE (dotted params keys, YAML values) over params.yaml and --set:

    python benchmarks/generator_coverage.py --work /tmp/coverage \\
        --variant base: \\
        --variant 'lecam:train_generator.lecam=0.3;train_generator.diffaugment=[translation,cutout,color]'

Every variant trains in its own folder under --work from the same prepared data and judge (made once, in
--work/base), with the stage functions dvc.yaml runs (train_generator, generate).
"""

import argparse
import json
import shlex
import shutil
import sys
import time
from contextlib import chdir
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
REPO = Path(__file__).resolve().parents[1]

from benchmarks.learning_curve import machine, parse_pairs, variant  # noqa: E402
from components import paths  # noqa: E402
from components.config import load_params  # noqa: E402
from components.data.manifest import DatasetInfo, read_manifest, read_split  # noqa: E402
from components.data.shards import gather_images  # noqa: E402
from components.device import resolve_device  # noqa: E402
from components.models import classifier  # noqa: E402
from components.metrics.summary import feature_distances  # noqa: E402
from components.stages import generate, prepare, train_generator, train_judge  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--variant", action="append", required=True, metavar="NAME:KEY=VALUE;...")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/generator_coverage-cpu-2core.json")
    args = parser.parse_args()
    common = parse_pairs(args.overrides)
    base = args.work / "base"
    base.mkdir(parents=True, exist_ok=True)
    params = load_params(REPO / "params.yaml", common)
    with chdir(base):
        prepare.run(params)
        train_judge.run(params)
    rows = []
    for spec in args.variant:
        name, overrides = variant(spec, common)
        rows.append(run_variant(args.work / name, base, name, overrides))
        print(table(rows), flush=True)
        write(args, rows)


def run_variant(folder: Path, base: Path, name: str, overrides: dict) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    for part in (paths.PREPARED, paths.JUDGE):
        shutil.rmtree(folder / part, ignore_errors=True)
        shutil.copytree(base / part, folder / part)
    params = load_params(REPO / "params.yaml", overrides)
    with chdir(folder):
        started = time.perf_counter()
        train_generator.run(params)
        seconds = time.perf_counter() - started
        generate.run(params)
        figures = measure(params)
    return {"variant": name, "overrides": overrides, "train_seconds": round(seconds, 1), **figures}


def measure(params) -> dict:
    """The generated samples (before any filter) against the real test images, on judge features."""
    device = resolve_device(params.device)
    info = DatasetInfo.read(paths.PREPARED)
    judge = train_judge.load(info, device, str(paths.GENERATED))
    manifest = read_manifest(paths.GENERATED)
    fake, labels = gather_images(paths.GENERATED, manifest), manifest["label"].to_numpy()
    feats = {name: classifier.embed(judge, images, 512, device) for name, images in (
        ("fake", fake), ("test", read_split(paths.PREPARED, "test")[0]),
        ("real", read_split(paths.PREPARED, "train")[0]))}
    out = feature_distances(feats["test"], feats["fake"], feats["real"], params.evaluate.kid, params.evaluate.pr_k)
    probs = classifier.proba_from_features(judge, feats["fake"], device)
    own = probs[np.arange(len(labels)), labels]
    return {"samples": len(labels), "fd": out["fd"], "fd_floor": out["fd_floor"], "precision": out["precision"],
            "recall": out["recall"], "kid": out["kid"]["mean"],
            "label_agreement": round(float((probs.argmax(1) == labels).mean()), 4),
            "judge_prob_mean": round(float(own.mean()), 4),
            "unsure_but_right": round(float(((probs.argmax(1) == labels) & (own < 0.5)).mean()), 4)}


def table(rows: list[dict]) -> str:
    lines = ["variant | train s | precision | recall | FD (floor) | label agreement | unsure but right"]
    lines += [f"{r['variant']} | {r['train_seconds']:.0f} | {r['precision']:.3f} | {r['recall']:.3f} | "
              f"{r['fd']:.3g} ({r['fd_floor']:.2g}) | {r['label_agreement']:.3f} | {r['unsure_but_right']:.3f}"
              for r in rows]
    return "\n".join(lines)


def write(args: argparse.Namespace, rows: list[dict]) -> None:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine(), "command": shlex.join([sys.executable, *sys.argv]),
                                    "variants": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
