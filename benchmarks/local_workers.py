"""evaluate at the current defaults in its own process, against GENAUG_DASK_SCHEDULER=local:2 (two local worker
processes, each running one downstream run at a time at the driver's thread count, idle threads asleep:
components/fanout.py). Each mode runs `python -m components evaluate` from scratch on a copy of a workspace
where the pipeline has run; modes alternate (`--rounds`: A B, then B A, ...), since this machine's speed drifts
over an hour. metrics/evaluate.json must be byte-identical between the modes (same thread count). Prints a table
and writes JSON with the machine and the command. Never asserted in tests.

    python benchmarks/local_workers.py --workspace /tmp/parallel/series --work /tmp/local \
        --out benchmarks/results/local_workers-cpu-2core-zen3.json
"""

import argparse
import json
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.learning_curve import machine  # noqa: E402
from benchmarks.scale_out import digest, timed, workspace  # noqa: E402

MODES = {"in process (the default)": {}, "local:2 (two worker processes)": {"GENAUG_DASK_SCHEDULER": "local:2"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, required=True, help="a folder where the pipeline has run")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (a copy of the workspace per run)")
    parser.add_argument("--rounds", type=int, default=1, help="each round runs both modes, the order alternating")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/local_workers-cpu-2core.json")
    args = parser.parse_args()
    rows = []
    for round_ in range(args.rounds):
        for mode in (list(MODES) if round_ % 2 == 0 else list(MODES)[::-1]):
            folder = workspace(args.workspace, args.work / f"{round_}-{len(rows)}", {})
            seconds, log = timed(folder, "evaluate", MODES[mode])
            runs = sum(1 for _ in (folder / "data/evaluation/runs").iterdir())
            rows.append({"round": round_, "mode": mode, "seconds": round(seconds, 1), "runs": runs,
                         "metrics_sha256": digest(folder / "metrics/evaluate.json")})
            print(f"round {round_}, {mode}: {seconds:.0f} s, {runs} run folders", flush=True)
    identical = len({row["metrics_sha256"] for row in rows}) == 1
    totals = {mode: sum(r["seconds"] for r in rows if r["mode"] == mode) for mode in MODES}
    base = totals[list(MODES)[0]]
    for mode, total in totals.items():
        print(f"{mode}: {total:.0f} s over {args.rounds} round(s), {total / base:.0%}")
    print(f"metrics/evaluate.json identical in every run: {identical}")
    result = {"machine": machine(), "command": shlex.join([sys.executable, *sys.argv]), "runs": rows,
              "share_of_default": {mode: round(total / base, 3) for mode, total in totals.items()},
              "identical": identical}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
