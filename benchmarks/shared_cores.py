"""Two training processes on the same cores, as the Prefect flow runs two stages at once: evaluate's classifier
recipe (a synthetic arm: 64 real + 21 synthetic images a step, classic augmentation, --precision) alone, then two at
once, with OpenMP's default wait policy (idle threads spin) and with OMP_WAIT_POLICY=PASSIVE (they sleep), which
the flow gives its stages when they may share the cores (components/pipeline.py: sharing_env). Steps per second
of each process, and a digest of the trained weights: the wait policy must not change a bit. Prints a table and
writes JSON with the machine and the exact command (--out). Random images of the default pipeline's shapes.

    python benchmarks/shared_cores.py --steps 200 --out benchmarks/results/shared_cores-cpu-2core-zen3.json
    python benchmarks/shared_cores.py --steps 100 --precision bf16 --threads 1 --out /tmp/one-thread.json
"""

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
POLICIES = {"default (spin)": {}, "passive": {"OMP_WAIT_POLICY": "PASSIVE"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2, help="each case this many times, interleaved")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="bf16: autocast on the CPU")
    parser.add_argument("--threads", type=int, help="torch threads per process (OMP_NUM_THREADS); default: torch's")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/shared_cores-cpu-2core.json")
    args = parser.parse_args()
    threads = {"OMP_NUM_THREADS": str(args.threads)} if args.threads else {}
    rows = []
    for repeat in range(args.repeats):
        for policy, env in POLICIES.items():
            for together in (1, 2):
                runs = at_once(together, args.steps, {**env, **threads}, args.precision)
                rows.append({"policy": policy, "processes": together, "repeat": repeat,
                             "steps_per_s": [r["steps_per_s"] for r in runs],
                             "total_steps_per_s": round(sum(r["steps_per_s"] for r in runs), 2),
                             "weights": sorted({r["weights"] for r in runs})})
                print(f"{policy:15} {together} at once: " + ", ".join(f"{r['steps_per_s']:.2f}" for r in runs)
                      + f" steps/s (total {rows[-1]['total_steps_per_s']:.2f}), weights {rows[-1]['weights']}")
    same = len({w for row in rows for w in row["weights"]}) == 1
    print(f"weights identical in every run: {same}")
    from benchmarks.learning_curve import machine
    result = {"machine": machine(), "command": shlex.join([sys.executable, *sys.argv]), "steps": args.steps,
              "precision": args.precision, "threads": args.threads or "torch's default", "runs": rows, "same_weights": same}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


def at_once(processes: int, steps: int, env: dict[str, str], precision: str) -> list[dict]:
    """`processes` training runs started together, each in a fresh interpreter (OpenMP reads its policy at start)."""
    with tempfile.TemporaryDirectory() as scratch:
        started = [subprocess.Popen([sys.executable, __file__, "--one", str(steps), str(Path(scratch) / str(i)),
                                     precision],
                                    cwd=REPO, env={**os.environ, **env}, stdout=subprocess.PIPE, text=True)
                   for i in range(processes)]
        outputs = [p.communicate()[0] for p in started]
        if any(p.returncode for p in started):
            raise SystemExit(f"a training process failed: {outputs}")
    return [json.loads(out.strip().splitlines()[-1]) for out in outputs]


def one(steps: int, run_dir: Path, precision: str) -> None:
    """One run of evaluate's recipe with a synthetic part: prints its speed and weights digest as JSON."""
    import numpy as np
    import torch
    from components.config.classifier import ClassifierParams
    from components.config.quality import ClassifierFitParams
    from components.config.transforms import ClassicParams
    from components.training.classify import SyntheticPart, train_classifier

    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (900, 28, 28, 1), dtype=np.uint8)
    fake = rng.integers(0, 256, (4500, 28, 28, 1), dtype=np.uint8)
    soft = rng.dirichlet(np.ones(10), 4500).astype(np.float32)
    fit = ClassifierFitParams(steps=steps, log_every=50, checkpoint_every=steps, precision=precision)
    started = time.perf_counter()
    model, _ = train_classifier(real, np.arange(900) % 10, 10, ClassifierParams(), fit, 0, torch.device("cpu"),
                                run_dir, "shared_cores", augment=ClassicParams(),
                                synthetic=SyntheticPart(fake, soft, 21, 1.0, steps), label_smoothing=0.1)
    seconds = time.perf_counter() - started
    digest = hashlib.sha256(b"".join(t.detach().numpy().tobytes() for t in model.state_dict().values()))
    print(json.dumps({"steps_per_s": round(steps / seconds, 2), "weights": digest.hexdigest()[:16]}))


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    if sys.argv[1:2] == ["--one"]:
        one(int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4])
    else:
        main()
