"""The default path to 28x28 by downstream result: the cascade (generator at 14, SR x2) against the generator
at 28 (no SR), each through the whole pipeline and evaluate at 100 labels per class, per seed. Reads the
per-seed results of learning_curve.py (one JSON per path and seed, made by the commands below), prints the
paired table and the mean over seeds, and writes them as JSON (--out) with the commands that made them.
Never asserted in tests.

    python benchmarks/learning_curve.py --work /tmp/decide/g14-s0 --budgets 100 --set seed=0 \\
        --out benchmarks/results/cascade_decision-g14-seed0.json --csv /tmp/decide/g14-s0.csv
    python benchmarks/learning_curve.py --work /tmp/decide/g28-s0 --budgets 100 --set seed=0 \\
        --set generator.size=28 --set upscale.factor=1 \\
        --out benchmarks/results/cascade_decision-g28-seed0.json --csv /tmp/decide/g28-s0.csv
    (the same for each seed), then: python benchmarks/cascade_decision.py
"""

import argparse
import json
import re
import statistics
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
PATHS = {"g14": "generator at 14, SR x2 (cascade)", "g28": "generator at 28, no SR"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--out", type=Path, default=RESULTS / "cascade_decision-cpu-2core.json")
    args = parser.parse_args()
    runs = load(args.results)
    seeds = sorted(set(runs["g14"]) & set(runs["g28"]))
    if not seeds:
        raise SystemExit(f"no seed has both paths in {args.results} (cascade_decision-g14-seedN.json and -g28-)")
    rows = [row(path, seed, runs[path][seed]) for seed in seeds for path in PATHS]
    summary = {path: mean_of([r for r in rows if r["path"] == path]) for path in PATHS}
    better = max(PATHS, key=lambda path: summary[path]["best_synthetic"])
    result = {"seeds": seeds, "rows": rows, "mean": summary, "better_downstream": better,
              "machine": runs["g14"][seeds[0]]["machine"],
              "commands": [runs[path][seed]["command"] for seed in seeds for path in PATHS]}
    print(table(rows, summary))
    print(f"better downstream (mean best synthetic arm over seeds {seeds}): {PATHS[better]}")
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


def load(folder: Path) -> dict[str, dict[int, dict]]:
    runs: dict[str, dict[int, dict]] = {path: {} for path in PATHS}
    for file in sorted(folder.glob("cascade_decision-g*-seed*.json")):
        match = re.fullmatch(r"cascade_decision-(g14|g28)-seed(\d+)\.json", file.name)
        if match:
            runs[match[1]][int(match[2])] = json.loads(file.read_text())
    return runs


def row(path: str, seed: int, run: dict) -> dict:
    (budget,) = run["budgets"]
    gen = budget["generative"]
    return {"path": path, "seed": seed, "real": budget["best_non_synthetic"]["mean"],
            "best_synthetic": budget["best_synthetic"]["mean"], "best_synthetic_arm": budget["best_synthetic"]["arm"],
            "real_synthetic": budget["arms"]["real_synthetic"]["mean"], "lift": budget["lift"], "fd": gen["fd"], "precision": gen["precision"], "recall": gen["recall"],
            "cas": gen["cas"]["balanced_accuracy"], "kept": budget["filter"]["rate"],
            "train_generator_s": budget["seconds"]["train_generator"],
            "train_upscaler_s": budget["seconds"]["train_upscaler"], "total_s": budget["total_seconds"]}


def mean_of(rows: list[dict]) -> dict:
    keys = ("real", "best_synthetic", "real_synthetic", "lift", "fd", "cas", "kept", "total_s")
    out = {key: round(statistics.mean(r[key] for r in rows), 4) for key in keys}
    out["best_synthetic_std"] = round(statistics.pstdev(r["best_synthetic"] for r in rows), 4)
    return out


def table(rows: list[dict], summary: dict) -> str:
    lines = ["path | seed | real | best synthetic | real_synthetic | lift | FD | CAS | kept | pipeline s"]
    lines += [f"{r['path']} | {r['seed']} | {r['real']:.4f} | {r['best_synthetic']:.4f} ({r['best_synthetic_arm']}) | "
              f"{r['real_synthetic']:.4f} | {r['lift']:+.4f} | {r['fd']:.2f} | {r['cas']:.4f} | {r['kept']:.1%} | {r['total_s']:.0f}" for r in rows]
    lines += [f"{path} | mean | {m['real']:.4f} | {m['best_synthetic']:.4f} ± {m['best_synthetic_std']:.4f} | "
              f"{m['real_synthetic']:.4f} | {m['lift']:+.4f} | {m['fd']:.2f} | {m['cas']:.4f} | {m['kept']:.1%} | {m['total_s']:.0f}"
              for path, m in summary.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
