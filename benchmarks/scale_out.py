"""What the scale-out engines buy on this machine: evaluate's downstream runs in this process or on a local Dask
cluster, and train_generator in one process or under torchrun (DDP, gloo on the CPU). Each mode runs the stage's
command (`python -m components <stage>`) on a copy of a workspace where the pipeline has run, from scratch, and
is timed; the Dask run's metrics/evaluate.json is compared byte for byte with the in-process run at the same
torch thread count (fanout.py: each piece runs at the driver's thread count, so those must be identical).
Prints a table and writes JSON with the machine and the command. Never asserted in tests.

    python benchmarks/scale_out.py --workspace /tmp/fresh4 --work /tmp/scale
    python benchmarks/scale_out.py --workspace /tmp/fresh --work /tmp/scale --evaluate-steps 300 \
        --out benchmarks/results/scale_out-cpu-2core-zen3.json     # shorter runs, another machine's file
"""

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.learning_curve import machine  # noqa: E402
from tests.project import set_params  # noqa: E402

COPIED = ["params.yaml", "data/prepared", "data/augmented", "data/models/judge"]


def workspace(source: Path, folder: Path, overrides: dict) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    for name in COPIED:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if (source / name).is_dir() else shutil.copy2)(source / name, folder / name)
    set_params(folder, overrides)
    return folder


def timed(folder: Path, stage: str, env: dict[str, str]) -> tuple[float, str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "GENAUG_DASK_SCHEDULER")}
    environment.update(PYTHONPATH=str(REPO), NO_ALBUMENTATIONS_UPDATE="1", **env)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "components", stage], cwd=folder, env=environment,
                            capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode:
        sys.exit(f"{stage} failed in {folder}:\n{result.stderr[-3000:]}")
    return seconds, result.stdout + result.stderr


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def evaluate_modes(source: Path, work: Path, overrides: dict) -> list[dict]:
    import distributed

    rows = []
    for name, threads, workers in (("in process, 2 torch threads (the default)", "2", 0),
                                   ("in process, 1 torch thread", "1", 0),
                                   ("Dask: 2 worker processes x 1 thread", "1", 2)):
        folder = workspace(source, work / f"evaluate-{len(rows)}", overrides)
        env = {"OMP_NUM_THREADS": threads}
        if workers:
            saved = dict(os.environ)
            os.environ["PYTHONPATH"] = str(REPO)  # the workers import components from this checkout
            with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                          host="127.0.0.1", dashboard_address=None) as cluster:
                os.environ.clear()
                os.environ.update(saved)
                seconds, log = timed(folder, "evaluate", {**env, "GENAUG_DASK_SCHEDULER": cluster.scheduler_address})
        else:
            seconds, log = timed(folder, "evaluate", env)
        runs = sum(1 for _ in (folder / "data/evaluation/runs").iterdir())  # a folder per run, wherever it ran
        rows.append({"mode": name, "seconds": round(seconds, 1), "runs": runs,
                     "metrics_sha256": digest(folder / "metrics/evaluate.json")})
        print(f"evaluate, {name}: {seconds:.0f} s for {runs} runs", flush=True)
    rows[2]["identical_to"] = rows[1]["mode"] if rows[2]["metrics_sha256"] == rows[1]["metrics_sha256"] else None
    return rows


def generator_modes(source: Path, work: Path, overrides: dict) -> list[dict]:
    rows = []
    for name, nproc in (("1 process, 2 torch threads (the default)", 1), ("torchrun: 2 processes (DDP, gloo)", 2)):
        folder = workspace(source, work / f"generator-{nproc}", {**overrides, "train_generator.nproc": nproc})
        seconds, log = timed(folder, "train_generator", {})
        rate = re.search(r"trained \d+ steps in ([\d.]+) s \((\d+) img/s\)", log)
        rows.append({"mode": name, "seconds": round(seconds, 1), "training_seconds": float(rate.group(1)),
                     "images_per_second": int(rate.group(2))})
        print(f"train_generator, {name}: {seconds:.0f} s ({rate.group(2)} img/s in training)", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, required=True, help="a folder where the pipeline has run")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (copies of the workspace)")
    parser.add_argument("--generator-steps", type=int, default=500)
    parser.add_argument("--evaluate-steps", type=int, default=None,
                        help="evaluate.fit.steps of every run (default: params.yaml's); a shorter benchmark")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/scale_out-cpu-2core.json")
    args = parser.parse_args()
    evaluate_overrides = {"evaluate.arms": ["real_classic", "real_synthetic_classic"], "evaluate.seeds": [0, 1],
                          "evaluate.cas": False}
    if args.evaluate_steps:
        evaluate_overrides["evaluate.fit.steps"] = args.evaluate_steps
    steps = args.generator_steps
    generator_overrides = {"train_generator.cvae.steps": steps, "train_generator.cvae.checkpoint_every": steps}
    result = {"machine": machine(), "command": shlex.join([sys.executable, *sys.argv]),
              "evaluate": {"overrides": evaluate_overrides, "modes": evaluate_modes(args.workspace, args.work,
                                                                                     evaluate_overrides)},
              "train_generator": {"overrides": generator_overrides,
                                  "modes": generator_modes(args.workspace, args.work, generator_overrides)}}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
