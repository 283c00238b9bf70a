"""Downstream protocol options: evaluate re-run on one pipeline's assembled data with other evaluate params
(synthetic share, loss weight, soft labels and their temperature, a real-only final phase, the recipe), to
choose the defaults on the val split. The test split is printed beside it for the record, never to choose.
Writes the figures, the machine and the exact command as JSON (--out). Never asserted in tests.

Each variant is NAME:KEY=VALUE;KEY=VALUE (dotted params keys, YAML values) over params.yaml and --set;
--data is a folder where the pipeline ran (benchmarks/learning_curve.py's per_class-N folders), used
read-only: each variant runs in its own folder under --work with links to that data.

    python benchmarks/protocol_options.py --data /tmp/curve/per_class-100 --work /tmp/options \\
        --variant base: --variant 'soft:evaluate.synthetic_labels=judge'
"""

import argparse
import json
import shlex
import sys
from contextlib import chdir
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
REPO = Path(__file__).resolve().parents[1]

from benchmarks.learning_curve import machine, parse_pairs, variant  # noqa: E402
from components import paths  # noqa: E402
from components.config import load_params  # noqa: E402
from components.config.quality import SYNTHETIC_ARMS  # noqa: E402
from components.stages import evaluate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, action="append", required=True,
                        help="a folder where the pipeline ran (repeat for several pipeline seeds)")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--variant", action="append", required=True, metavar="NAME:KEY=VALUE;...")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/protocol_options-cpu-2core.json")
    args = parser.parse_args()
    common = parse_pairs(args.overrides)
    rows = []
    for spec in args.variant:
        name, overrides = variant(spec, common)
        runs = [run_variant(data, args.work / name / data.name, overrides) for data in args.data]
        rows.append(summarize(name, overrides, runs))
        print(table(rows), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"machine": machine(), "command": shlex.join([sys.executable, *sys.argv]),
                                        "data": [str(d) for d in args.data], "variants": rows}, indent=2) + "\n")


def run_variant(data: Path, folder: Path, overrides: dict) -> dict:
    """evaluate in `folder`, reading `data`'s assembled set and judge through links; the finished runs of the
    non-synthetic arms are linked too (the options change only the synthetic arms: those runs are reused)."""
    reused = [run for run in (data / paths.EVALUATION_RUNS).glob("*") if "synthetic" not in run.name]
    for part in (paths.AUGMENTED, paths.JUDGE, *(run.relative_to(data) for run in reused)):
        link = folder / part
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to((data / part).resolve(), target_is_directory=True)
    params = load_params(REPO / "params.yaml", overrides)  # evaluate's own seeds; the data came with its pipeline's
    with chdir(folder):
        return evaluate.run(params)


def summarize(name: str, overrides: dict, reports: list[dict]) -> dict:
    """Per arm: balanced accuracy on val and test, averaged over the pipelines (each a mean over its seeds)."""
    arms = {}
    for arm in reports[0]["arms"]:
        entries = [r["arms"][arm] for r in reports]
        arms[arm] = {"val": round(float(np.mean([e["val"]["balanced_accuracy"]["mean"] for e in entries])), 5),
                     "test": round(float(np.mean([e["balanced_accuracy"]["mean"] for e in entries])), 5),
                     "test_per_pipeline": [e["balanced_accuracy"]["mean"] for e in entries],
                     "std_per_pipeline": [e["balanced_accuracy"]["std"] for e in entries],
                     "recall": {name: round(float(np.mean([e["recall"][name] for e in entries])), 4)
                                for name in entries[0]["recall"]}}
    return {"variant": name, "overrides": overrides, "arms": arms,
            "synthetic_arms": sorted(a for a in arms if a in SYNTHETIC_ARMS)}


def table(rows: list[dict]) -> str:
    lines = ["variant | arm | val (choose) | test (report)"]
    for row in rows:
        for arm, entry in row["arms"].items():
            lines.append(f"{row['variant']} | {arm} | {entry['val']:.4f} | {entry['test']:.4f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
