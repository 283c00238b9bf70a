"""evaluate: does the synthetic data help? A fixed downstream classifier trained on each arm over several
seeds, tested on the real test split (the reported numbers) and on the real val split (for choosing
settings: the test split never chooses anything); and the generative quality of the synthetic samples on
judge features.

Every run has the same recipe (evaluate.fit: steps, optimiser and schedule, label smoothing) and the same
real batches (components/data/sampling.py): an arm changes only what it adds to them or how it weighs them.
- real: the real train images; real_weighted: class-weighted loss; real_oversampled: every class drawn
  as often (rare images repeated); *_classic: the classic augmentation (params' `classic:`) on every batch.
  On balanced classes weighting and oversampling change nothing: those arms share the plain arm's runs.
- real_synthetic(_classic): each batch also holds synthetic images, evaluate.synthetic_share of it, with
  loss weight synthetic_weight, against their labels or the judge's soft labels (synthetic_labels), and
  none in the last real_only_final share of the steps. Real images are seen exactly as often as in the
  real arm: equal real exposure. real_weighted_synthetic(_classic): the same with class weights over the
  whole batch, real and synthetic (classify.mixture_weights), for rare classes; or, with
  synthetic_weighting: real, class weights on the real part alone (the synthetic part added unweighted).
- real_blend_classic: real_synthetic_classic's recipe with pixel blends of the real train images in the samples'
  place (components/generation/blends.py), as many a class: a baseline, so the lift is over it too.
With evaluate.shares set, also a share sweep: the synthetic arm at each share (0: its real-only twin).

Writes metrics/evaluate.json (the recipe; per arm: accuracy and balanced accuracy on test and val, mean and
spread over the seeds, per-class recall; the lift of each synthetic arm over the strongest non-synthetic arm;
the share sweep; Fréchet distance overall and per class with its real-vs-real floor, KID, precision/recall,
CAS) and plots/evaluate/ (arms.csv, runs.csv, classes.csv, shares.csv, samples.png, report.md). The
downstream runs live in data/evaluation/runs, outside DVC: a killed evaluate resumes the runs it had finished.
Each run (components/training/downstream.py: the arms' recipes, one run trained and scored) is a piece of work
for components/fanout.py: here, one after another, or on a Dask cluster; components/metrics/summary.py
summarises them.
"""

import logging
import time
from dataclasses import replace

import numpy as np
import torch

from components import fanout, paths
from components.config import Params
from components.config.quality import SYNTHETIC_ARMS, EvaluateParams
from components.data.atomic import atomic_dir, write_json
from components.data.manifest import DatasetInfo
from components.data.sampling import synthetic_per_batch
from components.device import describe, resolve_device, resolve_precision
from components.generation.blends import checked_blends
from components.metrics.report import METRICS, rounded, write_report
from components.metrics.summary import feature_distances, lift, mean_of, mean_std, summarize_arms, val_summary
from components.models import classifier
from components.training.classify import balancing_weights, load_judge, mixture_weights
from components.training.downstream import CAS, NAMES, RECIPES, Context, Images, Run, Sets, read_sets, train_run

log = logging.getLogger("genaug")
BLEND_ARM = "real_blend_classic"


def run(params: Params) -> dict:
    started = time.perf_counter()
    device = resolve_device(params.device)
    params = driver_precision(params, device)
    p = params.evaluate
    info = DatasetInfo.read(paths.AUGMENTED)
    sets = read_sets(paths.AUGMENTED)
    arms, notes = runnable_arms(p, len(sets.synthetic))
    blends = None
    if BLEND_ARM in arms:
        sets, blends = with_blends(params, info, sets, device, notes)
        if not len(sets.blends):
            arms.remove(BLEND_ARM)
    ctx = Context(params, sets, len(info.class_names), device)
    print(f"evaluate: {len(arms)} arm(s) x {len(p.seeds)} seed(s) on {len(sets.real)} real + {len(sets.synthetic)} "
          f"synthetic train images; testing on {len(sets.test)} real test images (val: {len(sets.val)}); "
          f"{describe(ctx.device, p.fit.precision)}, runs as "
          f"{fanout.where(ctx.device.type == 'cuda')}\n"
          f"evaluate: recipe: {recipe_text(params, len(sets.synthetic) > 0)}")
    # CAS is one more run of the same fan-out, so that it can train beside an arm's run
    cas_run = Run(CAS, p.seeds[0], "cas", p.synthetic_share) if p.cas and len(sets.synthetic) else None
    runs, done = train_arms(ctx, arms, notes, [cas_run] if cas_run else [])
    report = {"recipe": recipe_summary(params), "arms": summarize_arms(runs, info.class_names),
              "lift": lift(runs, "test"), "lift_val": lift(runs, "val"), "notes": notes}
    if blends is not None:
        report["blends"] = blends
    if p.shares and not len(sets.synthetic):
        note(notes, "shares: the sweep is skipped, the dataset has no synthetic samples")
    elif p.shares:
        report["shares"] = sweep_shares(ctx, arms, runs)
    if len(sets.synthetic):
        report["generative"] = generative(p, info, sets, ctx)
    if cas_run is not None:
        report["generative"]["cas"] = {metric: rounded(done[cas_run.key]["test"][metric]) for metric in METRICS}
    write_json(paths.metrics_file("evaluate"), report)
    with atomic_dir(paths.EVALUATE_PLOTS) as out:
        real, synthetic = sets.real, sets.synthetic
        write_report(out, report, runs, info, (real.images, real.labels), (synthetic.images, synthetic.labels),
                     p.grid_columns)
    log.info("evaluate: done in %.1f s", time.perf_counter() - started)
    return report


def runnable_arms(p: EvaluateParams, synthetic: int) -> tuple[list[str], list[str]]:
    if synthetic:
        return list(p.arms), []
    notes: list[str] = []
    for arm in p.arms:
        if arm in SYNTHETIC_ARMS:
            note(notes, f"{arm}: skipped, the dataset has no synthetic samples")
        elif arm == BLEND_ARM:
            note(notes, f"{arm}: skipped, the dataset has no synthetic samples to set the blends beside")
    return [arm for arm in p.arms if arm not in SYNTHETIC_ARMS and arm != BLEND_ARM], notes


def with_blends(params: Params, info: DatasetInfo, sets: Sets, device: torch.device,
                notes: list[str]) -> tuple[Sets, dict]:
    """The sets with the blend arm's blends of the real train images (components/generation/blends.py), as many
    a class as the synthetic samples, and what was made, rejected and kept."""
    classes, counts = np.unique(sets.synthetic.labels, return_counts=True)
    judge = load_judge(info, device, str(paths.AUGMENTED))
    images, labels, probs, made = checked_blends(sets.real.images, sets.real.labels,
                                                 dict(zip(classes.tolist(), counts.tolist())), judge, params.filter,
                                                 params.seed, device)
    note(notes, f"{BLEND_ARM}: {len(labels)} blends of the real train images kept of {made['made']} made (rejected: "
                f"{made['rejected']['label']} by the label check, {made['rejected']['duplicate']} as duplicates)")
    short = [f"{info.class_names[k]} {made['kept'][k]} of {n}" for k, n in zip(classes.tolist(), counts.tolist())
             if made["kept"][k] < n]
    if short:
        note(notes, f"{BLEND_ARM}: fewer blends than samples passed the checks: {', '.join(short)}"
                    + ("; the arm is skipped" if not len(labels) else ""))
    blends = Images(images, labels, probs)
    return replace(sets, blends=blends), {"made": made["made"], "rejected": made["rejected"],
                                          "kept": {info.class_names[k]: n for k, n in made["kept"].items()}}


def note(notes: list[str], text: str) -> None:
    notes.append(text)
    print(f"evaluate: {text}")


def driver_precision(params: Params, device: torch.device) -> Params:
    """The params with evaluate.fit.precision resolved here: a run sent to a Dask worker trains at this process's
    precision, not at what `auto` would pick on the worker's CPU, so its bits do not depend on where it ran."""
    fit = params.evaluate.fit
    fit = fit.model_copy(update={"precision": resolve_precision(device, fit.precision)})
    return params.model_copy(update={"evaluate": params.evaluate.model_copy(update={"fit": fit})})


def recipe_summary(params: Params) -> dict:
    """The recipe of every downstream run, stated next to the numbers (driver_precision's params: the precision
    resolved)."""
    p = params.evaluate
    return {"classifier": p.classifier.model_dump(mode="json"),
            "fit": p.fit.model_dump(mode="json", exclude={"checkpoint_every", "keep_checkpoints", "log_every"}),
            "classic": params.classic.model_dump(mode="json"),
            "synthetic": {"share": p.synthetic_share, "per_batch": synthetic_per_batch(p.fit.batch_size,
                                                                                     p.synthetic_share),
                          "weight": p.synthetic_weight, "labels": p.synthetic_labels,
                          "temperature": p.label_temperature, "real_only_final": p.real_only_final,
                          "weighting": p.synthetic_weighting}}


def recipe_text(params: Params, synthetic: bool = True) -> str:
    p, c = params.evaluate, params.classic
    f = p.fit
    text = (f"{f.steps} steps of {f.batch_size} real images, {f.optimizer} lr {f.lr:g} ({f.schedule}, warm-up "
            f"{f.warmup:g}), weight decay {f.weight_decay:g}, label smoothing {f.label_smoothing:g}; classic "
            f"augmentation: shift {c.shift} px, {'flip, ' if c.hflip else 'no flip, '}erase "
            f"{c.erase.size:g} x side (p {c.erase.p:g})")
    if synthetic:
        text += (f"; synthetic arms: + {synthetic_per_batch(f.batch_size, p.synthetic_share)} synthetic images a "
                 f"batch (share {p.synthetic_share:g}), loss weight {p.synthetic_weight:g}, "
                 + ("hard labels" if p.synthetic_labels == "hard" else
                    f"the judge's soft labels (temperature {p.label_temperature:g})")
                 + (f", real only in the last {p.real_only_final:g} of the steps" if p.real_only_final else ""))
    return text


def train_arms(ctx: Context, arms: list[str], notes: list[str],
               also: list[Run]) -> tuple[dict[str, list[dict]], dict]:
    """Scores of each arm's runs on the test and val splits, one per seed, and every run's scores by Run.key
    (with those of `also`, trained in the same fan-out). Arms whose recipe comes to the same training
    (weighting or oversampling balanced classes) share their runs."""
    real, synthetic, p = ctx.sets.real.labels, ctx.sets.synthetic.labels, ctx.p
    balanced = balancing_weights(real, ctx.num_classes) is None
    mixture_balanced = (mixture_weights(real, synthetic, p.synthetic_weight, ctx.num_classes) is None
                        if p.synthetic_weighting == "mixture" else balanced)
    recipes = {}
    for arm in arms:
        recipe = RECIPES[arm]
        if recipe.balance != "none" and (mixture_balanced if recipe.synthetic else balanced):
            recipe = replace(recipe, balance="none")
            mixed = recipe.synthetic and p.synthetic_weighting == "mixture"
            notes.append(f"{arm}: the {'batches' if mixed else 'real classes'} are balanced, so "
                         f"{RECIPES[arm].balance} changes nothing: the runs of arm {NAMES[recipe]}")
        recipes[arm] = recipe
    done = train_runs(ctx, [Run(recipe, seed, NAMES[recipe], p.synthetic_share) for recipe in recipes.values()
                            for seed in p.seeds] + also, {})
    runs: dict[str, list[dict]] = {}
    for arm, recipe in recipes.items():
        runs[arm] = [done[Run(recipe, seed, NAMES[recipe], p.synthetic_share).key] for seed in p.seeds]
        print(f"evaluate: {arm}: balanced accuracy {mean_of(runs[arm], 'test'):.4f} (test), "
              f"{mean_of(runs[arm], 'val'):.4f} (val) over {len(p.seeds)} seed(s)")
    return runs, done


def train_runs(ctx: Context, wanted: list[Run], done: dict) -> dict:
    """`done` ({Run.key: scores}) with the wanted runs it lacks, trained here or on a Dask cluster
    (components/fanout.py: a run is a piece)."""
    todo = list({run.key: run for run in wanted if run.key not in done}.values())
    folder = paths.EVALUATION_RUNS.absolute()  # a worker's working folder is not ours
    # The judge is trained with the downstream recipe and the classic augmentation: with the default params it
    # is the real_classic run of the pipeline's seed, which is then taken from it, not trained again.
    results = fanout.ordered_map(train_run, todo, ctx.device.type == "cuda", ctx=ctx, folder=folder,
                                 donors=(paths.JUDGE.absolute(),))
    for count, (run, result) in enumerate(zip(todo, results), 1):
        done[run.key] = result
        val = f", {result['val']['balanced_accuracy']:.4f} (val)" if result["val"] else ""
        print(f"evaluate: run {count}/{len(todo)} done, {run.name} seed {run.seed}: balanced accuracy "
              f"{result['test']['balanced_accuracy']:.4f} (test){val}", flush=True)
    return done


def sweep_shares(ctx: Context, arms: list[str], runs: dict[str, list[dict]]) -> list[dict]:
    """One row per share, 0 first: the synthetic arm (the first in evaluate.arms, else real_synthetic_classic)
    at that share; share 0 is its real-only twin, whose runs are shared with that arm."""
    p = ctx.p
    arm = next((a for a in arms if a in SYNTHETIC_ARMS), "real_synthetic_classic")
    recipe = RECIPES[arm]
    twin = replace(recipe, synthetic=False)
    done = {(RECIPES[a], seed, None): r for a in runs if not RECIPES[a].synthetic for seed, r in zip(p.seeds, runs[a])}
    if arm in runs:
        done.update({(recipe, seed, p.synthetic_share): r for seed, r in zip(p.seeds, runs[arm])})
    shares = [0.0, *sorted(p.shares)]
    sweep = {share: [Run(twin, seed, NAMES[twin], share) if share == 0 else
                     Run(recipe, seed, arm if share == p.synthetic_share else f"{arm}-share{share:g}", share)
                     for seed in p.seeds] for share in shares}
    done = train_runs(ctx, [run for share in shares for run in sweep[share]], done)
    rows = []
    for share in shares:
        results = [done[run.key] for run in sweep[share]]
        rows.append({"share": share, "arm": arm if share else NAMES[twin],
                     "synthetic_per_batch": synthetic_per_batch(p.fit.batch_size, share),
                     **{m: mean_std([r["test"][m] for r in results]) for m in METRICS},
                     "val": val_summary(results)})
        print(f"evaluate: share {share:g}: balanced accuracy {rows[-1]['balanced_accuracy']['mean']:.4f} (test) "
              f"over {len(p.seeds)} seed(s)")
    return rows


def generative(p: EvaluateParams, info: DatasetInfo, sets: Sets, ctx: Context) -> dict:
    """The synthetic train images against the real test images (a reference no model trained on) on judge
    features; the real train images on the same scale, for comparison (CAS, a run, is added by `run`)."""
    judge = load_judge(info, ctx.device, str(paths.AUGMENTED))
    parts = (("real", sets.real), ("synthetic", sets.synthetic), ("test", sets.test))
    feats = {name: classifier.embed(judge, s.images, p.batch_size, ctx.device) for name, s in parts}
    out = feature_distances(feats["test"], feats["synthetic"], feats["real"], p.kid, p.pr_k)
    out["per_class"] = {}
    for label, name in enumerate(info.class_names):
        ref, fake, own = (feats[k][s.labels == label] for k, s in
                          (("test", sets.test), ("synthetic", sets.synthetic), ("real", sets.real)))
        out["per_class"][name] = feature_distances(ref, fake, own, p.kid, p.pr_k)
    return out
