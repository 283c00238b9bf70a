"""README tables from benchmarks/results: each table sits in README.md between `<!-- table:NAME -->` and
`<!-- /table -->` and is rewritten from the JSON named below, so the README's figures are the measured ones.
Prints what changed; --check exits 1 when the README is not up to date (nothing written).

    python benchmarks/readme_tables.py
"""

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks/results"
ORDER = ["real", "real_weighted", "real_oversampled", "real_classic", "real_weighted_classic",
         "real_oversampled_classic", "real_synthetic", "real_synthetic_classic", "real_weighted_synthetic",
         "real_weighted_synthetic_classic"]  # evaluate's arms, as params list them
# The pipeline seeds' runs of the defaults at 100 labels per class: since `precision: auto` took bf16 on this CPU
# (protocol-100-seedS-bf16-denoise0.json, denoise.strength 0 as by default since commit 5926c90;
# -bf16-denoiser.json with the denoiser, the default until then), and before, in fp32 (protocol-100-seedS.json,
# with the denoiser); protocol-100-seedS-fp32.json: the current defaults in fp32 on the machine kind without bf16
# (Zen 3).
SUFFIX = {"bf16": "-bf16-denoise0", "bf16_denoiser": "-bf16-denoiser", "fp32": "", "fp32_now": "-fp32"}
# The runs without the denoiser trained only the two arms it can change; the arms without synthetic images read no
# sample, so they come from the same pipeline seed's run with the denoiser (checked equal where both have them).
COMPLETED_FROM = {"bf16": "bf16_denoiser"}


def load(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def pm(values: list[float]) -> str:
    """Mean ± sample std of the values (the spread over pipeline seeds)."""
    spread = np.std(values, ddof=1) if len(values) > 1 else 0.0
    return f"{np.mean(values):.4f} ± {spread:.4f}"


def protocol_runs(precision: str) -> tuple[list[int], list[dict]]:
    """The pipeline seeds measured at this precision, and their runs."""
    seeds = [s for s in (0, 1, 2) if (RESULTS / f"protocol-100-seed{s}{SUFFIX[precision]}.json").exists()]
    if not seeds:
        missing = FileNotFoundError(f"no pipeline seed measured at {precision}")
        missing.filename = f"protocol-100-seed0{SUFFIX[precision]}.json"
        raise missing
    runs = [load(f"protocol-100-seed{s}{SUFFIX[precision]}.json")["budgets"][0] for s in seeds]
    if precision in COMPLETED_FROM:  # the donor of the same pipeline seed, by name
        donor = SUFFIX[COMPLETED_FROM[precision]]
        runs = [complete(s, run, load(f"protocol-100-seed{s}{donor}.json")["budgets"][0])
                for s, run in zip(seeds, runs)]
    return seeds, runs


def complete(seed: int, run: dict, donor: dict) -> dict:
    """The run with the donor's arms that hold no synthetic image added; an arm both have must agree exactly."""
    arms = dict(run["arms"])
    for arm, figures in donor["arms"].items():
        if "synthetic" in arm:
            continue
        if arm in arms and arms[arm] != figures:
            raise ValueError(f"pipeline seed {seed}: arm {arm} differs between the runs merged into one table "
                             f"({arms[arm]['mean']} and {figures['mean']}); they are not the same defaults")
        arms.setdefault(arm, figures)
    return {**run, "arms": arms}


def main_table(precision: str) -> str:
    """100 labels per class, per pipeline seed (each the mean over evaluate's seeds 0/1/2); the arms of seed 0."""
    seeds, runs = protocol_runs(precision)
    lines = ["| arm | val (choices) | " + " | ".join(f"test: seed {s}" for s in seeds) + " | test: mean ± std | lift |",
             "|---|---:|" + "---:|" * len(seeds) + "---:|---:|"]
    best = max((a for a in runs[0]["arms"] if "synthetic" not in a and all(a in r["arms"] for r in runs)),
               key=lambda a: np.mean([r["arms"][a]["mean"] for r in runs]))
    base = np.mean([r["arms"][best]["mean"] for r in runs])
    for arm in sorted((a for a in runs[0]["arms"] if all(a in r["arms"] for r in runs)), key=ORDER.index):
        tests = [r["arms"][arm]["mean"] for r in runs]
        lift = f"{np.mean(tests) - base:+.4f}" if "synthetic" in arm else ("(baseline)" if arm == best else "")
        lines.append(f"| `{arm}` | {np.mean([r['arms'][arm]['val'] for r in runs]):.4f} | "
                     + " | ".join(f"{t:.4f}" for t in tests) + f" | {pm(tests)} | {lift} |")
    return "\n".join(lines)


def generative_table(precision: str) -> str:
    seeds, runs = protocol_runs(precision)
    lines = ["| pipeline seed | FD (floor) | precision | recall | CAS | CAS / real arm | filter kept |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for seed, r in zip(seeds, runs):
        g, cas = r["generative"], r["generative"]["cas"]["balanced_accuracy"]
        share = f"{cas / r['arms']['real']['mean']:.0%}" if "real" in r["arms"] else "(`real` not run)"
        lines.append(f"| {seed} | {g['fd']:.3g} ({g['fd_floor']:.2g}) | {g['precision']:.3f} | {g['recall']:.3f} | "
                     f"{cas:.4f} | {share} | {r['filter']['rate']:.1%} |")
    return "\n".join(lines)


def denoiser_table() -> str:
    """The defaults with the denoiser (denoise.strength 1, the default until commit 5926c90) and without it,
    per pipeline seed: the synthetic arm and what the samples measure."""
    lines = ["| pipeline seed | denoiser | `real_synthetic_classic` val | test | lift (test) | recall | CAS | "
             "filter kept |", "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for kind, label in (("bf16_denoiser", "on (strength 1)"), ("bf16", "off (strength 0)")):
        for seed, r in zip(*protocol_runs(kind)):
            arm, g = r["arms"]["real_synthetic_classic"], r["generative"]
            lines.append(f"| {seed} | {label} | {arm['val']:.4f} | {arm['mean']:.4f} | "
                         f"{arm['mean'] - r['arms']['real_classic']['mean']:+.4f} | {g['recall']:.3f} | "
                         f"{g['cas']['balanced_accuracy']:.4f} | {r['filter']['rate']:.1%} |")
    return "\n".join(lines)


def options_table() -> str:
    """Each option against the defaults it was measured from (pipeline seed 0's run with hard labels, the
    defaults then), the real_classic arm beside them."""
    base = load("protocol-100-seed0-hard-labels.json")["budgets"][0]["arms"]
    lines = ["| variant | params | val (choose) | test (report) |", "|---|---|---:|---:|",
             f"| `real_classic` (no synthetic) | | {base['real_classic']['val']:.4f} | {base['real_classic']['mean']:.4f} |",
             f"| hard labels (the defaults then) | share 0.25, weight 1 | {base['real_synthetic_classic']['val']:.4f} | "
             f"{base['real_synthetic_classic']['mean']:.4f} |"]
    variants = load("protocol_options-cpu-2core.json")["variants"]
    for later in ("protocol_shares-cpu-2core.json", "protocol_temperature-cpu-2core.json"):  # measured later
        if (RESULTS / later).exists():
            variants += load(later)["variants"]
    for row in variants:
        entry = row["arms"]["real_synthetic_classic"]
        pairs = ", ".join(f"`{k}: {v}`" for k, v in row["overrides"].items() if k not in ("evaluate.arms", "evaluate.cas"))
        lines.append(f"| {row['variant']} | {pairs} | {entry['val']:.4f} | {entry['test']:.4f} |")
    return "\n".join(lines)


def coverage_table() -> str:
    lines = ["| generator | train s | precision | recall | FD (floor) | label agreement | judge unsure but right |",
             "|---|---:|---:|---:|---|---:|---:|"]
    for name in ("generator_coverage-cgan.json", "generator_coverage-cvae.json"):
        if not (RESULTS / name).exists():
            continue
        for r in load(name)["variants"]:
            lines.append(f"| {r['variant']} | {r['train_seconds']:.0f} | {r['precision']:.3f} | {r['recall']:.3f} | "
                         f"{r['fd']:.3g} ({r['fd_floor']:.2g}) | {r['label_agreement']:.3f} | "
                         f"{r['unsure_but_right']:.3f} |")
    return "\n".join(lines)


def imbalance_table() -> str:
    """The rare-class case: the non-synthetic arms once, each synthetic arm with hard and with soft labels."""
    runs = {"hard": load("imbalanced-100-seed0-hard-labels.json")["budgets"][0],
            "soft": load("imbalanced-100-seed0.json")["budgets"][0]}
    rare = runs["soft"].get("rare_classes") or []
    lines = ["| arm | labels | balanced accuracy (test) | val | " + " | ".join(f"recall {c}" for c in rare)
             + " | lift |", "|---|---|---:|---:|" + "---:|" * len(rare) + "---:|"]
    plain = runs["soft"]["arms"]
    best = max((a for a in plain if "synthetic" not in a), key=lambda a: plain[a]["mean"])
    rows = [(arm, "", entry) for arm, entry in plain.items() if "synthetic" not in arm]
    rows += [(arm, labels, entry) for labels, run in runs.items() for arm, entry in run["arms"].items()
             if "synthetic" in arm]
    rows += weighting_rows()
    for arm, labels, entry in sorted(rows, key=lambda row: (ORDER.index(row[0]), row[1])):
        lift = f"{entry['mean'] - plain[best]['mean']:+.4f}" if "synthetic" in arm else \
            ("(baseline)" if arm == best else "")
        lines.append(f"| `{arm}` | {labels} | {entry['mean']:.4f} ± {entry['std']:.4f} | {entry['val']:.4f} | "
                     + rare_cells(entry, rare) + f"{lift} |")
    return "\n".join(lines)


def rare_cells(entry: dict, rare: list[str]) -> str:
    """An arm's test recall of each rare class, as table cells."""
    return "".join(f"{entry['recall'][c]:.3f} | " for c in rare)


def rare_rows(stem: str) -> list[tuple[str, dict, str]]:
    """(arm, entry, class weights) of a rare-class run, stem.json, in its file's order (mixture weights for the
    weighted synthetic arm), then that arm from stem-real-part.json (the real part weighted) where it was measured."""
    def weights(arm: str) -> str:
        if "weighted" not in arm:
            return ""
        return "mixture" if "synthetic" in arm else "classes"

    rows = [(arm, entry, weights(arm)) for arm, entry in load(f"{stem}.json")["budgets"][0]["arms"].items()]
    if (RESULTS / f"{stem}-real-part.json").exists():
        arm = "real_weighted_synthetic_classic"
        rows.append((arm, load(f"{stem}-real-part.json")["budgets"][0]["arms"][arm], "real part"))
    return rows


def lift_cells(arm: str, entry: dict, base: dict) -> str:
    """The test and val lift cells of a rare-class row against real_weighted_classic (base): empty for the other
    arms without synthetic images."""
    if "synthetic" in arm:
        return f"{entry['mean'] - base['mean']:+.4f} | {entry['val'] - base['val']:+.4f}"
    return "(baseline) | " if arm == "real_weighted_classic" else " | "


def weighting_rows() -> list[tuple[str, str, dict]]:
    """The weighted synthetic arm with class weights on the real part alone (evaluate.synthetic_weighting:
    real), from benchmarks/protocol_options.py on the same data, as rows of the rare-class table."""
    path = RESULTS / "imbalanced_weighting-cpu-2core.json"
    if not path.exists():
        return []
    rows = []
    for variant in load(path.name)["variants"]:
        weight = variant["overrides"].get("evaluate.synthetic_weight", 1.0)
        for arm in variant["synthetic_arms"]:
            entry = variant["arms"][arm]
            rows.append((arm, f"hard; real part weighted{'' if weight == 1.0 else f', weight {weight:g}'}",
                         {"mean": entry["test"], "std": entry["std_per_pipeline"][0], "val": entry["val"],
                          "recall": entry["recall"]}))
    return rows


def imbalance_judge_table() -> str:
    """The rare-class case in bf16 with the plain and the class-weighted judge (train_judge.balance), each
    synthetic arm with mixture weights and with the real part alone weighted; lift against real_weighted_classic."""
    judges = {"none": "imbalanced-100-seed0-bf16", "weighted": "imbalanced-100-seed0-bf16-judge-weighted"}
    rare = load(f"{judges['none']}.json")["budgets"][0]["rare_classes"]
    lines = ["| judge | arm | class weights | balanced accuracy (test) | val | "
             + " | ".join(f"recall {c}" for c in rare) + " | lift (test) | lift (val) |",
             "|---|---|---|---:|---:|" + "---:|" * len(rare) + "---:|---:|"]
    base = load(f"{judges['none']}.json")["budgets"][0]["arms"]["real_weighted_classic"]
    plain, mixed = [], []
    for judge, stem in judges.items():
        for arm, entry, weights in rare_rows(stem):
            synthetic = "synthetic" in arm
            if not synthetic and judge != "none":
                continue
            (mixed if synthetic else plain).append(
                f"| {judge if synthetic else ''} | `{arm}` | {weights} | {entry['mean']:.4f} ± {entry['std']:.4f}"
                f" | {entry['val']:.4f} | " + rare_cells(entry, rare) + f"{lift_cells(arm, entry, base)} |")
    return "\n".join(lines + plain + mixed)


def imbalance_kind_table() -> str:
    """The rare-class case with each generator: the cVAE's run in bf16 with the plain judge (the table above),
    generator.kind diffusion's in fp32 with the plain judge and in bf16 (the Intel AMX kind) with the class-weighted
    one, that run's real-part weighting beside it; each lift against its own run's real_weighted_classic."""
    runs = [("cVAE (bf16)", "none", "imbalanced-100-seed0-bf16"),
            ("diffusion (fp32)", "none", "imbalanced-100-seed0-fp32-diffusion"),
            ("diffusion (bf16)", "weighted", "imbalanced-100-seed0-bf16-diffusion-judge-weighted")]
    rare = load(f"{runs[1][2]}.json")["budgets"][0]["rare_classes"]
    lines = ["| generator | judge | arm | class weights | balanced accuracy (test) | val | "
             + " | ".join(f"recall {c}" for c in rare)
             + " | lift (test) | lift (val) | samples' recall | label check rejected |",
             "|---|---|---|---|---:|---:|" + "---:|" * len(rare) + "---:|---:|---:|---:|"]
    for generator, judge, stem in runs:
        r = load(f"{stem}.json")["budgets"][0]
        base = r["arms"]["real_weighted_classic"]
        for arm, entry, weights in sorted(rare_rows(stem), key=lambda row: ORDER.index(row[0])):
            samples = (f"{r['generative']['recall']:.3f} | {r['filter']['rejected']['label']} of "
                       f"{r['filter']['candidates']}" if "synthetic" in arm else " | ")
            lines.append(f"| {generator} | {judge} | `{arm}` | {weights} | {mean_std(entry)} | {entry['val']:.4f} | "
                         + rare_cells(entry, rare) + f"{lift_cells(arm, entry, base)} | {samples} |")
    return "\n".join(lines)


# The diffusion kind with the class-weighted judge and the real part weighted on the rare-class case, pipeline seeds
# 0, 1, 2 (seed 0's is the run of imbalance_kind_table; seeds 1 and 2 ran only these two arms).
RARE_SEEDS = [f"imbalanced-100-seed{s}-bf16-diffusion-judge-weighted-real-part.json" for s in (0, 1, 2)]


def imbalance_seeds_table() -> str:
    """Per pipeline seed: real_weighted_classic and the weighted synthetic arm (real part) on test and val, the
    rare classes' recall and the lifts; then the means over the seeds."""
    names = measured(RARE_SEEDS)
    rare = load(names[0])["budgets"][0]["rare_classes"]
    lines = ["| pipeline seed | arm | balanced accuracy (test) | val | " + " | ".join(f"recall {c}" for c in rare)
             + " | lift (test) | lift (val) |", "|---:|---|---:|---:|" + "---:|" * len(rare) + "---:|---:|"]
    lifts = []
    for name in names:
        data = load(name)
        r, seed = data["budgets"][0], data["overrides"].get("seed", 0)
        base = r["arms"]["real_weighted_classic"]
        for arm in ("real_weighted_classic", "real_weighted_synthetic_classic"):
            entry = r["arms"][arm]
            lines.append(f"| {seed} | `{arm}` | {mean_std(entry)} | {entry['val']:.4f} | " + rare_cells(entry, rare)
                         + f"{lift_cells(arm, entry, base)} |")
        synthetic = r["arms"]["real_weighted_synthetic_classic"]
        lifts.append((synthetic["mean"] - base["mean"], synthetic["val"] - base["val"]))
    test, val = (sum(lift[i] for lift in lifts) / len(lifts) for i in (0, 1))
    lines.append(f"| mean | | | | {' | ' * len(rare)}{test:+.4f} | {val:+.4f} |")
    return "\n".join(lines)


# The learning curve at the current defaults in fp32 (the Zen 3 kind), pipeline seed 0, evaluate's seeds 0/1/2, the
# arms that decide the gate; 100 labels per class is pipeline seed 0's run of the main fp32 table. (The curve of an
# older code, one evaluate seed a budget, is learning_curve-cpu-2core.json.)
CURVE = ["learning_curve-10-50-fp32.json", "protocol-100-seed0-fp32.json", "learning_curve-500-fp32.json"]


def curve_rows() -> list[dict]:
    """The curve's runs (CURVE) that are measured, one row per budget, by budget."""
    rows = [r for name in CURVE if (RESULTS / name).exists() for r in load(name)["budgets"]]
    if not rows:
        missing = FileNotFoundError("no learning curve at the current defaults")
        missing.filename = CURVE[0]
        raise missing
    return sorted(rows, key=lambda r: r["per_class"])


def curve_table() -> str:
    """Per label budget: both arms on test (mean ± std over evaluate's seeds) and val, the lift on each."""
    lines = ["| labels per class | `real_classic` test | `real_synthetic_classic` test | lift (test) | val: real | "
             "val: synthetic | lift (val) | recall | CAS | filter kept |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in curve_rows():
        real, synthetic = gate_arms(r)
        lines.append(f"| {r['per_class']} | {mean_std(real)} | {mean_std(synthetic)} | "
                     f"{synthetic['mean'] - real['mean']:+.4f} | {real['val']:.4f} | {synthetic['val']:.4f} | "
                     f"{synthetic['val'] - real['val']:+.4f} | {sample_cells(r)}")
    return "\n".join(lines)


def gate_arms(run: dict) -> tuple[dict, dict]:
    """The run's two arms that decide the gate: `real_classic` and `real_synthetic_classic`."""
    return run["arms"]["real_classic"], run["arms"]["real_synthetic_classic"]


def mean_std(arm: dict) -> str:
    """An arm's test mean ± std over evaluate's seeds."""
    return f"{arm['mean']:.4f} ± {arm['std']:.4f}"


def sample_cells(run: dict) -> str:
    """The last cells of a curve row: the samples' recall, CAS and the filter's keep rate."""
    g = run["generative"]
    return f"{g['recall']:.3f} | {g['cas']['balanced_accuracy']:.4f} | {run['filter']['rate']:.1%} |"


def curve_seeds_table(budget: int) -> str:
    """`budget` labels per class, pipeline seeds 0/1/2 (which images a class has is the seed's), each the mean over
    evaluate's seeds 0/1/2; the last row the mean over the pipeline seeds. Seed 0 is the curve's run."""
    seed0 = [r for r in curve_rows() if r["per_class"] == budget]
    if not seed0:
        raise ValueError(f"the learning curve has no run of {budget} labels per class (pipeline seed 0)")
    runs = {0: seed0[0]}
    for seed in (1, 2):
        name = f"learning_curve-{budget}-seed{seed}-fp32.json"
        if (RESULTS / name).exists():
            runs[seed] = load(name)["budgets"][0]
            if runs[seed]["per_class"] != budget:
                raise ValueError(f"{name}: a run of {runs[seed]['per_class']} labels per class, not {budget}")
    lines = ["| pipeline seed | `real_classic` test | `real_synthetic_classic` test | lift (test) | lift (val) | recall | "
             "CAS | filter kept |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lifts = []
    for seed, r in runs.items():
        real, synthetic = gate_arms(r)
        lifts.append(synthetic["mean"] - real["mean"])
        lines.append(f"| {seed} | {mean_std(real)} | {mean_std(synthetic)} | {lifts[-1]:+.4f} | "
                     f"{synthetic['val'] - real['val']:+.4f} | {sample_cells(r)}")
    lines.append(f"| mean | | | {np.mean(lifts):+.4f} | | | | |")
    return "\n".join(lines)


def parallel_table(name: str = "parallel_flow-cpu-2core.json") -> str:
    """The default pipeline from scratch: dvc repro against the flow with stages at once."""
    r = load(name)
    lines = ["| driver | wall time | dvc.lock |", "|---|---:|---|",
             f"| `dvc repro` (one stage at a time) | {r['dvc_repro_seconds']:.0f} s | the reference |"]
    for i, run in enumerate(r["flow"], 1):
        lines.append(f"| Prefect flow, `max_parallel: {r['max_parallel']}` (run {i}) | {run['seconds']:.0f} s "
                     f"({run['seconds'] / r['dvc_repro_seconds']:.0%}) | {'identical' if run['same_lock'] else 'differs'} |")
    return "\n".join(lines)


def scale_table(name: str = "scale_out-cpu-2core.json") -> str:
    """benchmarks/scale_out.py: evaluate's runs in process or on Dask, train_generator in 1 or 2 processes."""
    r = load(name)
    ev, gen = r["evaluate"]["modes"], r["train_generator"]["modes"]
    steps = r["evaluate"]["overrides"].get("evaluate.fit.steps")
    lines = ["| stage | where it runs | wall time | against the default | output |", "|---|---|---:|---:|---|"]
    for i, mode in enumerate(ev):
        if i == 0:
            same = "the reference"
        elif i == 1:
            same = ("the same bytes" if mode["metrics_sha256"] == ev[0]["metrics_sha256"]
                    else "other low bits (another thread count)")
        else:
            same = "byte-identical to the 1-thread run" if mode.get("identical_to") else "**differs**"
        lines.append(f"| evaluate ({mode['runs']} runs{f' of {steps} steps' if steps else ''}) | {mode['mode']} | "
                     f"{mode['seconds']:.0f} s | "
                     f"{mode['seconds'] / ev[0]['seconds']:.0%} | {same} |")
    for i, mode in enumerate(gen):
        lines.append(f"| train_generator ({r['train_generator']['overrides']['train_generator.cvae.steps']} steps) | "
                     f"{mode['mode']} | {mode['seconds']:.0f} s ({mode['images_per_second']} img/s) | "
                     f"{mode['seconds'] / gen[0]['seconds']:.0%} | "
                     + ("the reference |" if i == 0 else "weights within 1e-5 (tests/unit/test_ddp.py) |"))
    return "\n".join(lines)


def local_workers_table(name: str = "local_workers-cpu-2core-zen3.json") -> str:
    """benchmarks/local_workers.py: evaluate at the defaults in process against local:2, each run in turn."""
    r = load(name)
    first = r["runs"][0]["metrics_sha256"]
    lines = ["| round | evaluate's runs | wall time | metrics/evaluate.json |", "|---:|---|---:|---|"]
    for run in r["runs"]:
        lines.append(f"| {run['round'] + 1} | {run['mode']} | {run['seconds']:.0f} s | "
                     + ("the same bytes |" if run["metrics_sha256"] == first else "**differs** |"))
    for mode, share in r["share_of_default"].items():
        total = sum(run["seconds"] for run in r["runs"] if run["mode"] == mode)
        lines.append(f"| all | {mode} | {total:.0f} s ({share:.0%}) | |")
    return "\n".join(lines)


def faults_table() -> str:
    """benchmarks/faults.py: each fault tried, what the user saw, and whether anything was lost."""
    r = load("faults.json")
    total = r["summary"]
    lines = [f"{total['faults']} faults tried ({r['date']}, `{r['command']}`, {r['machine']}): {total['named']} named "
             f"with the fix, {total['tracebacks']} tracebacks, {total['partial_outputs']} with anything lost or "
             "half-written.", "",
             "| the user ... | exit | what they see | nothing lost |", "|---|---:|---|---|"]
    for case in r["cases"]:
        seen = case.get("outcome") or case["message"]
        seen = seen if len(seen) <= 240 else seen[:239] + "…"
        lost = "yes" if case["nothing_lost"] and case["named"] and not case["traceback"] else "**NO**"
        lines.append(f"| {case['fault']} | {case['exit']} | {seen.replace('|', '/')} | {lost} |")
    return "\n".join(lines)


def variants_table(*names: str) -> str:
    """benchmarks/pipeline_runs.py's variants (real_oracle.py, label_mix.py, generator_oracle.py, pixel_blends.py,
    latent_oracle.py), from one result file or several (their pipelines in turn): per variant the val and test means
    over evaluate's seeds on each pipeline seed measured, and the test lift over the first variant, averaged over
    them."""
    pipelines = [p for name in names for p in load(name)["pipelines"]]
    seeds = [r["pipeline_seed"] for r in pipelines]
    lines = ["| variant | " + " | ".join(f"pipeline seed {s}: val | test" for s in seeds) +
             " | lift (test, mean over pipeline seeds) |",
             "|---|" + "---:|---:|" * len(seeds) + "---:|"]
    base = next(iter(pipelines[0]["mean"]))
    for variant in dict.fromkeys(v for r in pipelines for v in r["mean"]):
        cells = [f"{r['mean'][variant]['val']:.4f} | {r['mean'][variant]['test']:.4f}" if variant in r["mean"]
                 else " | " for r in pipelines]
        lifts = [r["lift"][variant]["test"] for r in pipelines if variant in r["lift"]]
        lift = "(baseline)" if variant == base else f"{np.mean(lifts):+.4f}"
        lines.append(f"| {variant} | {' | '.join(cells)} | {lift} |")
    return "\n".join(lines)


def cvae_augment_table() -> str:
    """The fp32 pipelines with the cVAE trained on shifted and mirrored batches (train_generator.cvae.augment), each
    beside the defaults: the samples (filter, recall, FD, CAS), the downstream arms, and where generator_oracle.py
    measured that cVAE, how far its reconstructions are from unseen and from its own train images and what they add
    with their true labels. A pipeline seed's rows appear once its augmented run is measured."""
    lines = ["| pipeline seed | cVAE | label check rejects | recall | FD | CAS | val: synthetic | test: synthetic | "
             "lift (test) | grey levels off: unseen / own | unseen through it, true labels: lift (test) |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    default_oracle = {r["pipeline_seed"]: r for r in load("generator_oracle-100-fp32.json")["pipelines"]}
    for seed in (0, 1, 2):
        augmented_oracle = f"generator_oracle-100-seed{seed}-fp32-cvae-augment-6000.json"
        augmented = load(augmented_oracle)["pipelines"][0] if (RESULTS / augmented_oracle).exists() else None
        rows = [("defaults (2,000 steps)", f"protocol-100-seed{seed}-fp32.json", default_oracle.get(seed)),
                ("augment, 2,000 steps", f"protocol-100-seed{seed}-fp32-cvae-augment.json", None),
                ("augment, 6,000 steps", f"protocol-100-seed{seed}-fp32-cvae-augment-6000.json", augmented),
                # the same decoder (the prior is drawn after training): the same reconstructions
                ("augment, 6,000 steps, prior gaussian", f"protocol-100-seed{seed}-fp32-cvae-augment-gaussian.json",
                 augmented),
                ("augment, 6,000 steps, prior gaussian, latent_dim 16",
                 f"protocol-100-seed{seed}-fp32-cvae-augment-gaussian-latent16.json", None),
                ("augment, 6,000 steps, prior gaussian, beta 2",
                 f"protocol-100-seed{seed}-fp32-cvae-augment-gaussian-beta2.json", None)]
        rows = [r for r in rows if (RESULTS / r[1]).exists()]
        if len(rows) == 1:
            continue
        for name, protocol, oracle in rows:
            run = load(protocol)["budgets"][0]
            real, synthetic = gate_arms(run)
            g, f = run["generative"], run["filter"]
            cells = " — | — |"
            if oracle:
                levels = oracle["reconstruction_grey_levels"]
                cells = (f" {levels['unseen']:.1f} / {levels['train']:.1f} | "
                         f"{oracle['lift']['unseen real through the cVAE, true labels']['test']:+.4f} |")
            lines.append(f"| {seed} | {name} | {f['rejected']['label'] / f['candidates']:.1%} | {g['recall']:.3f} | "
                         f"{g['fd']:.3f} | {g['cas']['balanced_accuracy']:.4f} | {synthetic['val']:.4f} | "
                         f"{mean_std(synthetic)} | {synthetic['mean'] - real['mean']:+.4f} |{cells}")
    return "\n".join(lines)


def prior_spread_table() -> str:
    """prior_spread.py on the default and the augmented fp32 pipelines: per decoder and prior, the mean over the
    pipeline seeds (and their range) of the candidates' label agreement and of the kept candidates' FD, precision
    and recall against unseen pool images."""
    lines = ["| cVAE | prior | label agreement | FD of the kept (range) | precision | recall |",
             "|---|---|---:|---|---:|---:|"]
    for decoder, name in (("defaults (2,000 steps)", "prior_spread-100-fp32.json"),
                          ("augment, 6,000 steps", "prior_spread-100-fp32-cvae-augment-6000.json")):
        pipelines = load(name)["pipelines"]
        for prior in pipelines[0]["priors"]:
            rows = [p["priors"][prior] for p in pipelines]
            fd = [r["kept"]["fd"] for r in rows]
            lines.append(f"| {decoder} | {prior} | {np.mean([r['label_agreement'] for r in rows]):.3f} | "
                         f"{np.mean(fd):.2f} ({min(fd):.2f}-{max(fd):.2f}) | "
                         f"{np.mean([r['kept']['precision'] for r in rows]):.3f} | "
                         f"{np.mean([r['kept']['recall'] for r in rows]):.3f} |")
    return "\n".join(lines)


LATENT_ORACLE = [f"latent_oracle-100-seed{seed}-fp32-cvae-augment-6000.json" for seed in (0, 1, 2)]
LATENT_ORACLE_16 = "latent_oracle-100-seed0-fp32-cvae-augment-latent16.json"  # generator.latent_dim 16


def latent_placement_table(*names: str) -> str:
    """latent_oracle.py's latent placement: per source, the mean over the pipeline seeds of the per-class medians."""
    pipelines = [p for name in names for p in load(name)["pipelines"]]
    columns = {"to_train": "to the nearest train latent", "to_unseen": "to the nearest unseen latent",
               "unseen_to_these": "unseen latent to the nearest of these",
               "unseen_mahalanobis": "unseen latents' Mahalanobis^2 / dim", "unseen_nll": "unseen latents' NLL / dim"}
    measured = {key for figures in pipelines[0]["latent_placement"].values() for key in figures}
    columns = {key: title for key, title in columns.items() if key in measured}  # older runs lack the NLL
    lines = ["| latents | " + " | ".join(columns.values()) + " |", "|---|" + "---:|" * len(columns)]
    for source in pipelines[0]["latent_placement"]:
        cells = [f"{np.mean([p['latent_placement'][source][key] for p in pipelines]):.2f}"
                 if key in pipelines[0]["latent_placement"][source] else "—" for key in columns]
        lines.append(f"| {source} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


DIFFUSION = [f"diffusion_samples-100-seed{seed}-bf16.json" for seed in (0, 1, 2)]


def measured(names: list[str]) -> list[str]:
    """Those of the result files that exist; FileNotFoundError (the table is skipped) where none does."""
    there = [name for name in names if (RESULTS / name).exists()]
    if not there:
        raise FileNotFoundError(2, "not measured", names[0])
    return there


def diffusion_table() -> str:
    """diffusion_samples.py per pipeline seed: its cost, what the filter made of its candidates, and the coverage of
    the kept samples against unseen real images beside the pipeline's own samples'."""
    lines = ["| pipeline seed | train s | sample + check s | made | rejected: label | rejected: duplicate | kept | "
             "FD | precision | recall | pipeline's samples: FD | precision | recall |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name in measured(DIFFUSION):
        for r in load(name)["pipelines"]:
            d, c = r["coverage"]["diffusion, kept"], r["coverage"]["pipeline's samples"]
            lines.append(f"| {r['pipeline_seed']} | {r['seconds']['train']} | {r['seconds']['sample_and_check']} | "
                         f"{r['made']} | {r['rejected']['label']} | {r['rejected']['duplicate']} | "
                         f"{sum(r['kept'].values())} | {d['fd']:.3g} | {d['precision']:.3f} | {d['recall']:.3f} | "
                         f"{c['fd']:.3g} | {c['precision']:.3f} | {c['recall']:.3f} |")
    return "\n".join(lines)


# generator.kind diffusion trained with label_dropout 0.1 (classifier-free guidance), pipeline seed 0 in fp32, generate
# at each guidance from the same weights (learning_curve.py; the first the pipeline's run, the other --from
# train_generator, which resumes at the last step and writes generator.pt with the new guidance)
GUIDANCE = [f"protocol-100-seed0-fp32-diffusion-dropout0.1-guidance{w}.json" for w in ("1", "2")]


def guidance_table() -> str:
    """Per guidance: the arms that decide the gate on test and val, and the kept samples' measures (test images)."""
    lines = ["| guidance | `real_classic` test | `real_synthetic_classic` test | lift (test) | lift (val) | "
             "precision | recall | CAS | filter kept | generate s |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name in measured(GUIDANCE):
        data = load(name)
        r, guidance = data["budgets"][0], data["overrides"].get("train_generator.diffusion.guidance", 1.0)
        real, synthetic = gate_arms(r)
        lines.append(f"| {guidance:g} | {mean_std(real)} | {mean_std(synthetic)} | "
                     f"{synthetic['mean'] - real['mean']:+.4f} | {synthetic['val'] - real['val']:+.4f} | "
                     f"{r['generative']['precision']:.3f} | {sample_cells(r)} {r['seconds']['generate']:.0f} |")
    return "\n".join(lines)


def write_curve_csv() -> None:
    """benchmarks/results/learning_curve.csv, dvc.yaml's learning-curve plot, from the same rows."""
    (RESULTS / "learning_curve.csv").write_text("per_class,best_non_synthetic,best_synthetic,lift\n" + "".join(
        f"{r['per_class']},{r['best_non_synthetic']['mean']},{r['best_synthetic']['mean']},{r['lift']}\n"
        for r in curve_rows()))


TABLES = {"main": lambda: main_table("bf16"), "generative": lambda: generative_table("bf16"),
          "main_fp32": lambda: main_table("fp32"), "generative_fp32": lambda: generative_table("fp32"),
          "main_fp32_now": lambda: main_table("fp32_now"), "generative_fp32_now": lambda: generative_table("fp32_now"),
          "options": options_table, "denoiser": denoiser_table,
          "coverage": coverage_table, "imbalance": imbalance_table, "imbalance_judge": imbalance_judge_table,
          "imbalance_kind": imbalance_kind_table, "imbalance_seeds": imbalance_seeds_table,
          "curve": curve_table, "curve_10": lambda: curve_seeds_table(10), "curve_50": lambda: curve_seeds_table(50),
          "curve_500": lambda: curve_seeds_table(500), "oracle": lambda: variants_table("real_oracle-100-fp32.json"),
          "label_mix": lambda: variants_table("label_mix-100-fp32.json"),
          "label_mix_seeds": lambda: variants_table("label_mix-100-seeds012-fp32.json"),
          "label_mix_gaussian": lambda: variants_table("label_mix-100-seeds012-fp32-cvae-augment-gaussian.json"),
          "generator_oracle": lambda: variants_table("generator_oracle-100-fp32.json"),
          "pixel_blends": lambda: variants_table("pixel_blends-100-fp32.json"),
          "pixel_blends_10": lambda: variants_table("pixel_blends-10-fp32.json"),
          "latent_placement": lambda: latent_placement_table(*LATENT_ORACLE),
          "latent_oracle": lambda: variants_table(*LATENT_ORACLE),
          "latent_placement_16": lambda: latent_placement_table(LATENT_ORACLE_16),
          "latent_oracle_16": lambda: variants_table(LATENT_ORACLE_16),
          "diffusion": diffusion_table, "diffusion_arms": lambda: variants_table(*measured(DIFFUSION)),
          "guidance": guidance_table,
          "cvae_augment": cvae_augment_table, "prior_spread": prior_spread_table,
          "parallel": parallel_table, "parallel_zen3": lambda: parallel_table("parallel_flow-cpu-2core-zen3.json"),
          "parallel_zen4_guard": lambda: parallel_table("parallel_flow-cpu-2core-zen4-bf16-guard.json"),
          "faults": faults_table, "local_workers": local_workers_table,
          "scale": scale_table, "scale_zen3": lambda: scale_table("scale_out-cpu-2core-zen3.json"),
          "scale_zen4": lambda: scale_table("scale_out-cpu-2core-zen4.json")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    readme = REPO / "README.md"
    text = readme.read_text()
    new = text
    for name, make in TABLES.items():
        pattern = re.compile(rf"(<!-- table:{name} -->\n).*?(<!-- /table -->)", re.S)
        if not pattern.search(new):
            continue
        try:
            table = make()
        except FileNotFoundError as exc:
            print(f"{name}: skipped, {exc.filename} not measured yet")
            continue
        before, new = new, pattern.sub(lambda m: m.group(1) + table + "\n" + m.group(2), new)
        print(f"{name}: {'up to date' if new == before else 'written'}")
    if args.check:
        sys.exit(0 if new == text else 1)
    readme.write_text(new)
    if any((RESULTS / name).exists() for name in CURVE):
        write_curve_csv()


if __name__ == "__main__":
    main()
