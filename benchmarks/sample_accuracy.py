"""How recognisable are the generated samples? A multinomial logistic regression trained on all 60,000
Fashion-MNIST train images (brought to the samples' size as the generator's training images are)
classifies the samples of a pipeline folder (data/generated, data/denoised, ...) and the official test
images; prints the accuracies (overall and per class) and writes them, with the command, to
benchmarks/results/sample_accuracy-<name>.json. Never asserted in tests.

    python benchmarks/sample_accuracy.py data/generated --name cvae
"""

import argparse
import json
import platform
import shlex
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.data.manifest import DatasetInfo, read_manifest  # noqa: E402
from components.data.shards import gather_images  # noqa: E402
from components.data.sources import read_idx  # noqa: E402
from components.pixels import resize_images  # noqa: E402

FASHION = Path("/usr/share/datasets/fashion-mnist")


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("folder", type=Path, help="a pipeline folder of synthetic samples (e.g. data/generated)")
    args.add_argument("--name", default="samples", help="names the results file")
    args.add_argument("--fashion", type=Path, default=FASHION)
    a = args.parse_args()

    info = DatasetInfo.read(a.folder)
    manifest = read_manifest(a.folder)
    samples, labels = gather_images(a.folder, manifest), manifest["label"].to_numpy()

    def load(prefix: str) -> tuple[np.ndarray, np.ndarray]:
        images = resize_images(read_idx(a.fashion / f"{prefix}-images-idx3-ubyte.gz")[..., None], info.size)
        return flat(images), read_idx(a.fashion / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)

    (x_train, y_train), (x_test, y_test) = load("train"), load("t10k")
    judge = LogisticRegression(max_iter=300).fit(x_train, y_train)
    predicted = judge.predict(flat(samples))
    results = {
        "command": shlex.join([sys.executable, *sys.argv]),
        "machine": platform.processor() or platform.machine(),
        "folder": str(a.folder), "size": info.size, "samples": len(labels),
        "real_test_accuracy": round(float(judge.score(x_test, y_test)), 4),
        "sample_accuracy": round(float((predicted == labels).mean()), 4),
        "sample_accuracy_per_class": {info.class_names[k]: round(float((predicted[labels == k] == k).mean()), 4)
                                      for k in np.unique(labels)},
    }
    print(json.dumps(results, indent=2))
    out = Path(__file__).parent / "results" / f"sample_accuracy-{a.name}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


def flat(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float32) / 255


if __name__ == "__main__":
    main()
