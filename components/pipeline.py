"""The pipeline as dvc.yaml states it: stage order, up-to-date checks, running one stage, param overrides.

The Prefect flow drives stages through these, so it runs exactly what `dvc repro` runs and DVC writes
the same dvc.lock whichever driver ran.
"""

import base64
import csv
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


from components.config import load_params
from components.dvc_cli import dvc, dvc_env
from components.errors import GenaugError
from components.paths import METRICS, PARAMS


class StageError(GenaugError):
    """A pipeline stage failed; the message carries the end of its output."""


def stage_order(cwd: Path) -> list[str]:
    """dvc.yaml's stages, each after the stages it depends on, in the order `dvc repro` runs them: its plan, as
    `dvc repro --dry --force` prints it (the command line, not DVC's internals, which move between releases).

    The same order matters, not only a valid one: dvc.lock lists stages in the order they first ran, so
    another topological order (once the DAG branches) writes a different dvc.lock for the same data."""
    result = dvc(cwd, "repro", "--dry", "--force")
    order = re.findall(r"^Running stage '([^']+)':", result.stdout, re.M)
    if result.returncode != 0 or not order:
        raise StageError(f"dvc repro --dry could not plan the pipeline:\n{(result.stderr or result.stdout)[-3000:]}")
    return order


def stage_predecessors(cwd: Path) -> dict[str, set[str]]:
    """Each dvc.yaml stage's direct predecessors: the stages that write a dep of it (the dep is one of their
    outs, metrics or plots, or lies inside one). Stages with no path between them can run at once."""
    import yaml

    stages = yaml.safe_load((cwd / "dvc.yaml").read_text())["stages"]
    written = {name: [Path(entry if isinstance(entry, str) else next(iter(entry)))
                      for key in ("outs", "metrics", "plots") for entry in stage.get(key, [])]
               for name, stage in stages.items()}
    return {name: {other for other, outs in written.items() if other != name and any(
                Path(dep) == out or out in Path(dep).parents for dep in stage.get("deps", []) for out in outs)}
            for name, stage in stages.items()}


def lock_stages(cwd: Path) -> list[str]:
    """The stages dvc.lock records, in its order ([] without a dvc.lock)."""
    from dvc.utils.serialize import load_yaml

    path = cwd / "dvc.lock"
    return list(load_yaml(path).get("stages", {})) if path.exists() else []


def restore_lock_order(cwd: Path, before: list[str], order: list[str]) -> None:
    """Rewrite dvc.lock with its stages in the order a one-at-a-time `dvc repro` leaves them: DVC keeps a
    recorded stage where it is and appends a new one when it finishes, so after stages ran at once (finishing
    in any order) the stages recorded `before` come first, then the new ones in `order`, dvc repro's order."""
    from dvc.utils.serialize import modify_yaml

    path = cwd / "dvc.lock"
    if not path.exists():
        return
    with modify_yaml(path) as data:
        stages = data.get("stages", {})
        wanted = [s for s in before if s in stages] + [s for s in order if s in stages and s not in before]
        wanted += [s for s in stages if s not in wanted]
        if list(stages) != wanted:
            entries = [(name, stages[name]) for name in wanted]
            for name in list(stages):
                del stages[name]
            for name, entry in entries:
                stages[name] = entry


def repro_stage(cwd: Path, stage: str, on_line: Callable[[str], None] = print, shared_cores: bool = False) -> bool:
    """`dvc repro --single-item <stage>`, passing each output line to `on_line` as it comes; True when the stage
    ran, False when DVC found it up to date (deps, params and outs as dvc.lock records them). DVC holds its lock
    only for its bookkeeping, not while the stage's command runs: other stages' repros wait for it, then run at
    the same time. `shared_cores`: other stages may run meanwhile (sharing_env)."""
    command = [sys.executable, "-m", "dvc", "--wait-for-lock", "repro", "--single-item", stage]
    env = sharing_env(dvc_env()) if shared_cores else dvc_env()
    process = subprocess.Popen(command, cwd=cwd, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    tail: list[str] = []
    ran = False
    for line in process.stdout:
        line = line.rstrip()
        on_line(line)
        ran = ran or line.startswith(f"Running stage '{stage}'")
        tail = (tail + [line])[-20:]
    if process.wait() != 0:
        raise StageError(f"stage {stage} failed (exit {process.returncode}):\n" + "\n".join(tail))
    return ran


def sharing_env(env: dict[str, str]) -> dict[str, str]:
    """`env` for a stage that shares the CPU cores with other stages: OpenMP's idle threads sleep
    (OMP_WAIT_POLICY=PASSIVE) instead of spinning. By default torch's waiting threads spin through the time the
    other stage's threads need: two 2-thread training processes on 2 cores ran 3.4 times slower each than one
    alone, and with passive waiting 1.17 times faster together than one alone (benchmarks/shared_cores.py). The
    thread count, hence every result, stays the same. A policy the user set is kept."""
    return {**env, "OMP_WAIT_POLICY": env.get("OMP_WAIT_POLICY", "PASSIVE")}


def bf16_cpu_trainers(cwd: Path) -> list[str]:
    """The trainers of the project in `cwd` that train in bf16 on this machine's CPU (none where params put
    them on CUDA, or where the CPU has no bf16 hardware and `auto` means fp32). The denoiser and the upscaler
    count only where params use them (denoise.strength above 0, upscale.factor above 1): else they train nothing."""
    from components.device import resolve_device, resolve_precision
    from components.training.generators import KINDS

    params = load_params(cwd / PARAMS)
    device = resolve_device(params.device)
    if device.type != "cpu":
        return []
    generator = KINDS[params.generator.kind].recipe(params.train_generator)
    settings = {"train_generator": generator.precision, "train_scorer": params.train_scorer.precision,
                "train_denoiser": params.train_denoiser.precision if params.denoise.strength > 0 else "fp32",
                "train_upscaler": params.train_upscaler.precision if params.upscale.factor > 1 else "fp32",
                "train_judge": params.train_judge.precision, "evaluate": params.evaluate.fit.precision}
    return [name for name, setting in settings.items() if resolve_precision(device, setting) == "bf16"]


def stages_at_once(requested: int, bf16_trainers: list[str], cores: int, threads: int) -> tuple[int, str | None]:
    """How many stages the flow runs at once when `requested`, and why fewer (None: as requested). Stages that
    train in bf16 on the CPU must not share cores: two 2-thread bf16 trainings on 2 cores ran 17 to 20 times
    slower each than one alone, with idle threads spinning or asleep alike (`benchmarks/shared_cores.py
    --precision bf16`; in fp32 passive waiting makes them 1.27 times faster together), so the flow then runs as
    many as the cores hold at `threads` each."""
    fits = max(1, cores // threads)
    if requested <= fits or not bf16_trainers:
        return requested, None
    return fits, (f"max_parallel {requested} lowered to {fits}: {', '.join(bf16_trainers)} train in bf16 on this "
                  f"CPU, and bf16 training sharing the cores runs many times slower ({requested} stages x {threads} "
                  f"torch threads on {cores} cores; README: Scaling out). Set OMP_NUM_THREADS to at most "
                  f"{max(1, cores // requested)} to run {requested} at once (other low bits than dvc repro at "
                  f"{threads} threads), or precision: fp32 in those sections")


def apply_overrides(cwd: Path, overrides: dict[str, Any] | None) -> None:
    """Write dotted-key overrides (`prepare.per_class: 50`) into params.yaml, keeping its comments.

    They are validated first, so a bad override changes nothing.
    """
    if not overrides:
        return
    from dvc.utils.serialize import modify_yaml

    from components.config import set_dotted

    load_params(cwd / PARAMS, overrides)
    with modify_yaml(cwd / PARAMS) as data:
        for key, value in overrides.items():
            set_dotted(data, key, value)


def plot_files(cwd: Path) -> tuple[list[Path], list[Path]]:
    """The files dvc.yaml's top-level `plots:` name that exist now: (PNG images, CSV tables)."""
    import yaml

    names: list[str] = []
    for entry in yaml.safe_load((cwd / "dvc.yaml").read_text()).get("plots", []):
        if isinstance(entry, str):
            names.append(entry)
        else:
            for spec in entry.values():
                y = (spec or {}).get("y", {})
                names += list(y) if isinstance(y, dict) else []
    files = [cwd / n for n in dict.fromkeys(names) if (cwd / n).is_file()]
    return [f for f in files if f.suffix == ".png"], [f for f in files if f.suffix == ".csv"]


def image_markdown(path: Path, title: str) -> str:
    """A markdown page showing a PNG inline (a data URI: Prefect artifacts cannot link local files)."""
    data = base64.b64encode(path.read_bytes()).decode()
    return f"## {title}\n\n![{title}](data:image/png;base64,{data})\n"


def artifact_key(path: str) -> str:
    """A Prefect artifact key for a file: lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")


def csv_rows(path: Path) -> list[dict[str, Any]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def metrics_rows(cwd: Path) -> list[dict[str, Any]]:
    """Every value of metrics/*.json as a row (stage, metric, value), nested keys dotted."""
    rows = []
    for file in sorted((cwd / METRICS).glob("*.json")):
        for key, value in flatten(json.loads(file.read_text())).items():
            rows.append({"stage": file.stem, "metric": key, "value": value})
    return rows


def flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
