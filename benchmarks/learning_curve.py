"""Learning curve: the whole pipeline (params.yaml, with prepare.per_class set to each budget) and its
evaluation, best synthetic arm against best non-synthetic arm per label budget. Prints a table and writes
the figures, the machine and the exact command as JSON (--out) and the curve as CSV (--csv, drawn by
`dvc plots show`: dvc.yaml's top-level plots). Never asserted in tests.

Each budget runs in its own folder under --work, every stage in order (the functions dvc.yaml's stages
call, in-process, without DVC), so a budget's figures are what `dvc repro` would write with that
`prepare.per_class`. --set overrides any other param (dotted keys, YAML values), e.g. --set generator.kind=cvae.
Unless --set names evaluate.arms, the arms are the default ones plus `real` (no augmentation).

    python benchmarks/learning_curve.py --work /tmp/curve --budgets 10 50 100 500
"""

import argparse
import json
import platform
import shlex
import sys
import time
from contextlib import chdir
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
REPO = Path(__file__).resolve().parents[1]

from components import paths  # noqa: E402
from components.cli import STAGES, stage  # noqa: E402
from components.config import load_params  # noqa: E402
from components.config.quality import DEFAULT_ARMS, SYNTHETIC_ARMS  # noqa: E402
from components.device import cpu_computes_bf16  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (one sub-folder per budget)")
    parser.add_argument("--budgets", type=int, nargs="+", default=[10, 50, 100, 500])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/learning_curve-cpu-2core.json")
    parser.add_argument("--csv", type=Path, default=REPO / "benchmarks/results/learning_curve.csv")
    parser.add_argument("--from", dest="first", choices=list(STAGES), default=None,
                        help="re-run from this stage on, in folders where the pipeline ran (e.g. evaluate after a "
                             "change of evaluate params); the earlier stages' times come from --out")
    parser.add_argument("--posterior-mix", type=float, default=None,
                        help="after train_generator, set generator.pt's posterior mix (a cVAE with the interpolated "
                             "prior; 0.5 as trained): a latent goes up to this share of the way from one train "
                             "image's towards another's, past it above 1 (not a param: it did not help, README)")
    parser.add_argument("--cross-class", action="store_true",
                        help="after train_generator, give every class the posteriors of all train images: a latent "
                             "(the style) of any class's image, decoded with the class's label (not a param: it did "
                             "not help, README)")
    args = parser.parse_args()
    overrides = parse_pairs(args.overrides)
    # `real` (no augmentation) beside the default arms, which leave it out: the README's tables show it
    overrides.setdefault("evaluate.arms", ["real", *DEFAULT_ARMS])

    before = json.loads(args.out.read_text()) if args.first else {"budgets": []}
    earlier = {r["per_class"]: r["seconds"] for r in before["budgets"]}
    rows = []
    for budget in args.budgets:
        rows.append(run_budget(args.work / f"per_class-{budget}", {**overrides, "prepare.per_class": budget},
                               args.first, earlier.get(budget, {}), args.posterior_mix, args.cross_class))
        print(table(rows), flush=True)
    kept = [r for r in before["budgets"] if r["per_class"] not in args.budgets]  # --from: the budgets not re-run
    rows = sorted(kept + rows, key=lambda r: r["per_class"])
    result = {"machine": machine(), "command": shlex.join([sys.executable, *sys.argv]),
              "overrides": overrides, "budgets": rows,
              **({"earlier_stages_command": before.get("earlier_stages_command", before["command"])} if args.first else {})}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    args.csv.write_text("per_class,best_non_synthetic,best_synthetic,lift\n" + "".join(
        f"{r['per_class']},{r['best_non_synthetic']['mean']},"
        f"{r['best_synthetic']['mean'] if r['best_synthetic'] else ''},{'' if r['lift'] is None else r['lift']}\n"
        for r in rows))
    print(f"wrote {args.out} and {args.csv}")


def run_budget(folder: Path, overrides: dict, first: str | None = None, earlier: dict | None = None,
               posterior_mix: float | None = None, cross_class: bool = False) -> dict:
    """Every stage of the pipeline in `folder` (or those from `first` on, the others' times from `earlier`);
    the evaluation's headline figures and the stage times. `posterior_mix`, `cross_class`: set in generator.pt
    before generate."""
    folder.mkdir(parents=True, exist_ok=True)
    params = load_params(REPO / "params.yaml", overrides)
    names = list(STAGES)
    rerun = names[names.index(first):] if first else names
    seconds = {name: t for name, t in (earlier or {}).items() if name not in rerun}
    with chdir(folder):
        for name in rerun:
            if name == "generate" and posterior_mix is not None:
                set_posterior_mix(Path(paths.GENERATOR / paths.GENERATOR_FILE), posterior_mix)
            if name == "generate" and cross_class:
                share_posteriors(Path(paths.GENERATOR / paths.GENERATOR_FILE))
            function = stage(name)
            started = time.perf_counter()
            function(params)
            seconds[name] = round(time.perf_counter() - started, 1)
        report = json.loads(Path("metrics/evaluate.json").read_text())
        filtered = json.loads(Path("metrics/filter.json").read_text())
    return {**summarize(params.prepare.per_class, report, filtered, seconds),
            "rare_classes": list(params.prepare.imbalance.classes)}


def set_posterior_mix(path: Path, mix: float) -> None:
    saved = torch.load(path, weights_only=False)
    if not saved.get("posterior"):
        raise SystemExit(f"{path}: no posterior prior (a cVAE with prior aggregate or interpolated) to set a mix of")
    saved["posterior"]["mix"] = mix
    torch.save(saved, path)


def share_posteriors(path: Path) -> None:
    """Every class gets the posteriors of every train image (of any class): styles across classes."""
    saved = torch.load(path, weights_only=False)
    posterior = saved.get("posterior")
    if not posterior:
        raise SystemExit(f"{path}: no posterior prior (a cVAE with prior aggregate or interpolated) to share")
    if posterior.get("shared"):
        return  # already shared (a re-run of --from generate)
    classes, n = len(saved["class_names"]), len(posterior["labels"])
    posterior.update(means=posterior["means"].repeat(classes, 1), stds=posterior["stds"].repeat(classes, 1),
                     labels=torch.arange(classes).repeat_interleave(n), shared=True)
    torch.save(saved, path)


def summarize(per_class: int, report: dict, filtered: dict, seconds: dict) -> dict:
    metric = "balanced_accuracy"
    # test figures report; the val mean beside them is what a choice may look at
    arms = {arm: {**entry[metric], "val": entry["val"][metric]["mean"], "recall": entry["recall"]}
            for arm, entry in report["arms"].items()}
    best = {kind: best_arm({arm: a for arm, a in arms.items() if (arm in SYNTHETIC_ARMS) == synthetic})
            for kind, synthetic in (("non_synthetic", False), ("synthetic", True))}
    gen = report.get("generative", {})
    lift = best["synthetic"]["mean"] - best["non_synthetic"]["mean"] if best["synthetic"] else None
    return {
        "per_class": per_class,
        "arms": arms,
        "best_non_synthetic": best["non_synthetic"],
        "best_synthetic": best["synthetic"],   # None: the filter kept no synthetic sample
        "lift": None if lift is None else round(lift, 5),
        "lift_val": report.get("lift_val"),
        "recipe": report["recipe"],
        "shares": report.get("shares"),
        "generative": {key: gen.get(key) for key in ("fd", "fd_floor", "fd_real_train", "kid", "precision",
                                                    "recall", "cas")},
        "filter": {"candidates": filtered["candidates"], "accepted": filtered["accepted"], "rate": filtered["rate"],
                   "rejected": filtered["rejected"]},
        "seconds": seconds,
        "total_seconds": round(sum(seconds.values()), 1),
    }


def best_arm(arms: dict[str, dict]) -> dict | None:
    if not arms:
        return None
    name = max(arms, key=lambda arm: arms[arm]["mean"])
    return {"arm": name, **arms[name]}


def cell(best: dict | None) -> str:
    return "none" if best is None else f"{best['arm']} {best['mean']:.4f} ± {best['std']:.4f}"


def table(rows: list[dict]) -> str:
    lines = ["per_class | best non-synthetic (balanced acc.) | best synthetic | lift | FD / floor | CAS | kept | s"]
    for r in rows:
        g = r["generative"]
        cas = f"{g['cas']['balanced_accuracy']:.4f}" if g.get("cas") else "-"
        fd = f"{g['fd']:.3g} / {g['fd_floor']:.3g}" if g.get("fd") is not None else "-"
        lift = "-" if r["lift"] is None else f"{r['lift']:+.4f}"
        lines.append(f"{r['per_class']} | {cell(r['best_non_synthetic'])} | {cell(r['best_synthetic'])} | {lift} | "
                     f"{fd} | {cas} | {r['filter']['rate']:.1%} | {r['total_seconds']:.0f}")
    return "\n".join(lines)


def parse_pairs(items: list[str]) -> dict:
    """KEY=VALUE strings (dotted params keys, YAML values) as a dict of overrides."""
    return {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in items)}


def variant(spec: str, common: dict) -> tuple[str, dict]:
    """A --variant NAME:KEY=VALUE;KEY=VALUE as (name, the common overrides updated with its own)."""
    name, _, pairs = spec.partition(":")
    return name, {**common, **parse_pairs([p for p in pairs.split(";") if p])}


def machine() -> dict:
    """What ran a benchmark; the CPU's model and whether it computes bf16 too: this project's 2-core machines have
    been of two kinds, and `precision: auto` trains in bf16 on one, in fp32 on the other (README: Precision)."""
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_model": cpu_model(), "cpu_bf16": cpu_computes_bf16(),
            "cpus": torch.get_num_threads(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def cpu_model() -> str | None:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return None
    fields = {}
    for line in text.split("\n\n")[0].splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    name = fields.get("model name")
    return f"{name} (family {fields['cpu family']}, model {fields['model']})" if "cpu family" in fields else name


if __name__ == "__main__":
    main()
