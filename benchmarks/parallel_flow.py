"""The Prefect flow with independent stages at once against `dvc repro` one stage at a time: wall time of the
whole pipeline (params.yaml, or --set overrides) from scratch in two fresh clones of this repository, and
whether the two dvc.lock files are byte-identical. Prints a table and writes JSON with the machine and the
exact command (--out). Never asserted in tests (tests/e2e checks the lock on a tiny project).

    python benchmarks/parallel_flow.py --work /tmp/parallel --max-parallel 2
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (two clones)")
    parser.add_argument("--max-parallel", type=int, default=2)
    parser.add_argument("--runs", type=int, default=1, help="flow runs from scratch (the lock compared each time)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/parallel_flow-cpu-2core.json")
    args = parser.parse_args()
    overrides = dict(pair.split("=", 1) for pair in args.overrides)

    series = clone(args.work / "series", overrides)
    seconds_series = timed([sys.executable, "-m", "dvc", "repro"], series)
    lock = (series / "dvc.lock").read_bytes()
    flows = []
    for i in range(args.runs):
        folder = clone(args.work / f"parallel-{i}", overrides)
        code = f"from flows.augment import augment; augment(make_version=False, max_parallel={args.max_parallel})"
        env = {"PREFECT_HOME": str(folder / ".prefect-home")}  # its own ephemeral server
        seconds = timed([sys.executable, "-c", code], folder, env)
        flows.append({"seconds": seconds, "same_lock": (folder / "dvc.lock").read_bytes() == lock})
    from benchmarks.learning_curve import machine
    result = {"machine": machine(), "command": shlex.join([sys.executable, *sys.argv]), "overrides": overrides,
              "max_parallel": args.max_parallel, "dvc_repro_seconds": seconds_series, "flow": flows}
    print(f"dvc repro (one stage at a time): {seconds_series:.0f} s")
    for i, run in enumerate(flows):
        print(f"flow {i} (max_parallel {args.max_parallel}): {run['seconds']:.0f} s, dvc.lock identical: "
              f"{run['same_lock']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


def clone(folder: Path, overrides: dict[str, str]) -> Path:
    """A fresh clone of this repository's HEAD, with params overrides written into params.yaml."""
    subprocess.run(["git", "clone", "-q", str(REPO), str(folder)], check=True)
    if overrides:
        from components.pipeline import apply_overrides
        import yaml
        apply_overrides(folder, {key: yaml.safe_load(value) for key, value in overrides.items()})
    return folder


def timed(command: list[str], cwd: Path, extra_env: dict[str, str] | None = None) -> float:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           **(extra_env or {})}
    started = time.perf_counter()
    with open(cwd / "benchmark.log", "w") as log:
        subprocess.run(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
    return round(time.perf_counter() - started, 1)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
