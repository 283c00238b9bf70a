"""Faults a user can cause, tried for real against `python -m components <stage>` in a scratch workspace: bad
images and manifests, bad params, damaged stage outputs, a read-only folder and a full disk (a real read-only
bind mount and a real tiny tmpfs, in a user+mount namespace via `unshare -rm`), a second run in the workspace,
kill -9 in the middle of a training. Each case starts from a copy of one good workspace (prepare and train_judge
run) and records the exit code, the message the user sees, whether a traceback was printed, and whether
nothing was lost: data/ and metrics/ byte for byte as before the failed run, nothing half-written beside them
(for the skip and kill cases: what the case promises instead). Writes benchmarks/results/faults.json;
benchmarks/readme_tables.py makes the README's table of it (What happens when ...).

    python benchmarks/faults.py [--work DIR] [--only NAME ...]
"""

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from components.workspace import TOKEN, hold  # noqa: E402
from tests.project import set_params  # noqa: E402

OUT = REPO / "benchmarks/results/faults.json"
CLASSES, PER_CLASS = ["0", "1", "2"], 20
JUDGE_STEPS, JUDGE_EVERY = 60, 20
PARAMS = {  # a tiny workspace: three digit classes as PNG folders, a judge that trains in seconds
    "device": "cpu",
    "prepare.source": {"kind": "imagefolder", "path": "images"},
    "prepare.per_class": 12,
    "prepare.shard_size": 8,
    "train_judge.steps": JUDGE_STEPS,
    "train_judge.batch_size": 16,
    "train_judge.checkpoint_every": JUDGE_EVERY,
    "train_judge.log_every": 10,
    "train_judge.model": {"width": 8, "stages": 2},
}


# --- the workspace -----------------------------------------------------------------------------------------

def stage_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != TOKEN}  # a holder of ours must not lend its lock
    env.update(PYTHONPATH=str(REPO), NO_ALBUMENTATIONS_UPDATE="1", OMP_NUM_THREADS="1")
    return env


def stage(ws: Path, name: str, prefix: tuple[str, ...] = (), wait: bool = True):
    env = stage_env()
    args = [*prefix, sys.executable, "-m", "components", name]
    if not wait:
        return subprocess.Popen(args, cwd=ws, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(args, cwd=ws, env=env, capture_output=True, text=True, timeout=600)


def base_workspace(work: Path) -> Path:
    """Digits 0/1/2 of scikit-learn's set as 28x28 PNG class folders, the repo's params with PARAMS, prepare
    and train_judge run once."""
    from sklearn.datasets import load_digits

    ws = work / "base"
    shutil.rmtree(ws, ignore_errors=True)
    ws.mkdir(parents=True)
    digits = load_digits()
    for c in CLASSES:
        folder = ws / "images" / c
        folder.mkdir(parents=True)
        for i, image in enumerate(digits.images[digits.target == int(c)][:PER_CLASS]):
            Image.fromarray((image * 255 / 16).astype(np.uint8)).resize((28, 28)).save(folder / f"{i}.png")
    shutil.copy(REPO / "params.yaml", ws / "params.yaml")
    set_params(ws, PARAMS)
    for name in ("prepare", "train_judge"):
        result = stage(ws, name)
        if result.returncode:
            sys.exit(f"the good workspace failed at {name}:\n{result.stderr[-3000:]}")
    return ws


def snapshot(ws: Path) -> dict[str, str]:
    """sha256 of every file under data/ and metrics/ (temporary and lock files included: they would be losses)."""
    return {str(p.relative_to(ws)): hashlib.sha256(p.read_bytes()).hexdigest()
            for top in ("data", "metrics") for p in sorted((ws / top).rglob("*")) if p.is_file()}


def message(ws: Path, stderr: str) -> str:
    """What the user is told: our error from its `genaug <command>:` line on (params errors list one bad value a
    line), else the last line; workspace paths shown relative."""
    lines = stderr.strip().splitlines()
    start = max((i for i, line in enumerate(lines) if line.startswith("genaug ")), default=len(lines) - 1)
    text = " ".join(line.strip() for line in lines[start:])
    return text.replace(f"{ws}/", "").replace(str(ws), ".")


def refused(ws: Path, name: str, prefix: tuple[str, ...] = ()) -> dict:
    """Run a stage that must refuse: exit 2, our one-line error, data/ and metrics/ untouched."""
    before = snapshot(ws)
    result = stage(ws, name, prefix)
    return {"exit": result.returncode, "message": message(ws, result.stderr),
            "traceback": "Traceback" in result.stderr, "named": result.returncode == 2 and
            f"genaug {name}: error:" in result.stderr, "nothing_lost": snapshot(ws) == before}


# --- the cases: each gets a fresh copy of the good workspace and returns refused()'s record -----------------

def bad_image(kind: str, on_bad_file: str = "fail"):
    def case(ws: Path) -> dict:
        path = ws / "images/1" / {"corrupt": "corrupt.png", "truncated": "cut.jpg", "text": "notes.png",
                                  "bomb": "bomb.png"}[kind]
        if kind == "corrupt":
            path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
        elif kind == "truncated":
            Image.fromarray(np.full((28, 28), 128, np.uint8)).save(path, quality=90)
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        elif kind == "text":
            path.write_text("not an image\n")
        else:  # 10,000 x 10,000 pixels (over Pillow's 89 M limit) of zeros: ~100 KB on disk
            Image.new("L", (10_000, 10_000)).save(path, optimize=True)
        set_params(ws, {"prepare.on_bad_file": on_bad_file})
        return refused(ws, "prepare") if on_bad_file == "fail" else skipped(ws, [path.name])
    return case


def skipped(ws: Path, names: list[str]) -> dict:
    """A stage that must go on without the bad files: exit 0, each named in data/prepared/info.json."""
    result = stage(ws, "prepare")
    info = json.loads((ws / "data/prepared/info.json").read_text()) if result.returncode == 0 else {}
    listed = [Path(s[0]).name for s in info.get("skipped", [])]
    warning = next((line for line in result.stderr.splitlines() if "skipp" in line), "")
    return {"exit": result.returncode, "message": message(ws, warning) if warning else "",
            "traceback": "Traceback" in result.stderr,
            "named": result.returncode == 0 and all(n in listed for n in names), "nothing_lost": True,
            "outcome": "skipped: prepare goes on, the file listed in data/prepared/info.json"}


def not_utf8_name(ws: Path) -> dict:
    name = b"caf\xe9.png"  # Latin-1, as an old camera or a Windows share writes it
    shutil.copy(ws / "images/2/0.png", os.path.join(os.fsencode(ws / "images/2"), name))
    return skipped(ws, [name.decode("utf-8", "replace")])  # info.json is UTF-8: the name as it can be shown


def empty_class(ws: Path) -> dict:
    (ws / "images/empty").mkdir()
    return refused(ws, "prepare")


def one_class(ws: Path) -> dict:
    for c in CLASSES[1:]:
        shutil.rmtree(ws / "images" / c)
    return refused(ws, "prepare")


def params_change(overrides: dict, name: str = "prepare"):
    def case(ws: Path) -> dict:
        set_params(ws, overrides)
        return refused(ws, name)
    return case


def params_text(old: str, new: str):
    def case(ws: Path) -> dict:
        path = ws / "params.yaml"
        path.write_text(path.read_text().replace(old, new, 1))
        return refused(ws, "prepare")
    return case


def manifest(rows: list[tuple[str, str]]):
    def case(ws: Path) -> dict:
        good = [(f"{c}/{i}.png", c) for c in CLASSES for i in range(PER_CLASS)]
        lines = ["path,label"] + [f"{p},{label}" for p, label in good + rows]
        (ws / "images/manifest.csv").write_text("\n".join(lines) + "\n")
        set_params(ws, {"prepare.source": {"kind": "manifest", "path": "images", "file": "manifest.csv",
                                           "classes": CLASSES}})
        return refused(ws, "prepare")
    return case


def read_only_output(ws: Path) -> dict:
    """data/ bind-mounted read-only onto itself (EROFS for every write under it)."""
    mount = "mount --bind data data && mount -o remount,bind,ro data && exec \"$0\" \"$@\""
    set_params(ws, {"prepare.per_class": 10})  # a changed output to write
    return refused(ws, "prepare", ("unshare", "-rm", "sh", "-c", mount))


def full_disk(stage_name: str, overrides: dict, first_training: bool = False):
    """data/ on a tmpfs with room for what it holds plus 16 KiB: less than the new prepared set, or a checkpoint,
    needs. The tmpfs goes with the namespace, so what is left is inspected inside it and reported here. A stage
    that replaces its output must leave the previous one byte for byte; a trainer (which writes in place, to
    resume) must leave no half-written file and no checkpoint that does not load."""
    def case(ws: Path) -> dict:
        if first_training:
            shutil.rmtree(ws / "data/models")
        size = sum(-(-p.stat().st_size // 4096) * 4096 for p in (ws / "data").rglob("*") if p.is_file()) + 64 * 4096
        script = (f"cp -a data {ws}.saved && mount -t tmpfs -o size={size} tmpfs data && cp -a {ws}.saved/. data/ && "
                  f"dd if=/dev/zero of=data/.filler bs=4096 count=60 2>/dev/null; "
                  f"\"$0\" \"$@\" 2>{ws}.stderr; echo $? > {ws}.rc; rm -f data/.filler; "
                  f"{sys.executable} {__file__} --inspect {ws} > {ws}.after")
        set_params(ws, overrides)
        before = snapshot(ws)
        subprocess.run(["unshare", "-rm", "sh", "-c", script, sys.executable, "-m", "components", stage_name],
                       cwd=ws, env=stage_env(), check=True, timeout=600)
        stderr, code = Path(f"{ws}.stderr").read_text(), int(Path(f"{ws}.rc").read_text())
        after = json.loads(Path(f"{ws}.after").read_text())
        intact = (not after["half_written"] and not after["unreadable"]) if first_training else \
            after["files"] == before
        return {"exit": code, "message": message(ws, stderr), "traceback": "Traceback" in stderr,
                "named": code == 2 and f"genaug {stage_name}: error:" in stderr, "nothing_lost": intact}
    return case


def inspect(ws: Path) -> dict:
    """What a failed run left: every file's hash, the temporary files beside outputs, the .pt files that do
    not load."""
    import torch

    unreadable = []
    for path in (ws / "data").rglob("*.pt"):
        try:
            torch.load(path, weights_only=True)
        except Exception:
            unreadable.append(str(path.relative_to(ws)))
    return {"files": snapshot(ws), "unreadable": unreadable,
            "half_written": [str(p.relative_to(ws)) for p in (ws / "data").rglob("*") if ".tmp-" in p.name]}


def another_run(ws: Path) -> dict:
    with hold(ws, "another genaug run (benchmarks/faults.py)"):
        record = refused(ws, "prepare")
    record["nothing_lost"] = record["nothing_lost"] and not (ws / ".genaug.lock").exists()
    return record


def damaged_prepared(damage: Callable[[Path], None]):
    def case(ws: Path) -> dict:
        set_params(ws, {"train_judge.lr": 0.005})  # a new judge to train from the damaged set
        damage(ws / "data/prepared")
        return refused(ws, "train_judge")
    return case


def first_shard(prepared: Path) -> Path:
    return prepared / "images/train-00000.npy"  # one train_judge reads


def zero_bytes(prepared: Path) -> None:
    first_shard(prepared).write_bytes(b"")


def cut_short(prepared: Path) -> None:
    """A shard that holds fewer images than its manifest says: a valid .npy file, its md5 sidecar rewritten."""
    shard = first_shard(prepared)
    images = np.load(shard)
    np.save(shard, images[: len(images) // 2])
    (shard.parent / f"{shard.name}.md5").write_text(hashlib.md5(shard.read_bytes()).hexdigest())


def flip_bit(prepared: Path) -> None:
    shard = first_shard(prepared)
    data = bytearray(shard.read_bytes())
    data[-5] ^= 0x10
    shard.write_bytes(bytes(data))


def kill_mid_training(ws: Path) -> dict:
    """kill -9 of train_judge once its step-20 checkpoint is on disk; run again: it must resume from a checkpoint
    (its log says which) and end with the base workspace's weights, with nothing of the killed run left over."""
    import torch

    straight = torch.load(ws / "data/models/judge/judge.pt", weights_only=True)
    shutil.rmtree(ws / "data/models/judge")
    process = stage(ws, "train_judge", wait=False)
    checkpoints = ws / "data/models/judge/checkpoints"
    while process.poll() is None and not any(checkpoints.glob("step-*.pt")):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    again = stage(ws, "train_judge")
    found = re.search(r"resumed from step (\d+)", again.stderr)
    resumed = found and int(found.group(1))
    final = torch.load(ws / "data/models/judge/judge.pt", weights_only=True) if again.returncode == 0 else None
    leftovers = [p.name for p in (ws / "data/models").iterdir() if ".tmp-" in p.name or ".old-" in p.name]
    return {"exit": again.returncode, "message": f"resumed from step {resumed}" if resumed else "did not resume",
            "traceback": "Traceback" in again.stderr, "named": resumed is not None,
            "nothing_lost": equal(straight, final) and not leftovers,
            "outcome": f"killed after its step-{JUDGE_EVERY} checkpoint; the next run resumed from step {resumed} "
                       "and ended with the uninterrupted run's weights"}


def equal(a, b) -> bool:
    """Checkpoint contents equal to the bit (tensors in nested dicts and lists)."""
    import torch

    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(equal, a, b))
    return a == b


CASES: dict[str, tuple[str, Callable[[Path], dict]]] = {
    # name: (what the user did, the case)
    "corrupt-image": ("a corrupt PNG, `prepare.on_bad_file: fail`", bad_image("corrupt")),
    "truncated-image": ("a truncated JPEG, `on_bad_file: fail`", bad_image("truncated")),
    "not-an-image": ("a text file named .png, `on_bad_file: fail`", bad_image("text")),
    "decompression-bomb": ("a 10,000 x 10,000 PNG (decompression bomb), `on_bad_file: fail`", bad_image("bomb")),
    "bad-image-skipped": ("a corrupt PNG with the default `on_bad_file: skip`", bad_image("corrupt", "skip")),
    "name-not-utf8": ("an image whose file name is not UTF-8", not_utf8_name),
    "empty-class": ("an empty class folder", empty_class),
    "one-class": ("a dataset of one class", one_class),
    "classes-empty": ("`prepare.classes: []`", params_change({"prepare.classes": []})),
    "class-twice": ("a class listed twice in `prepare.classes`", params_change({"prepare.classes": ["0", "1", "1"]})),
    "unknown-class": ("an unknown class in `prepare.classes`", params_change({"prepare.classes": ["0", "7"]})),
    "unknown-label": ("a manifest row with a label not in `prepare.source.classes`", manifest([("0/0.png", "9")])),
    "path-outside": ("a manifest path that leaves its root (`../`)", manifest([("../params.yaml", "0")])),
    "missing-source": ("a source folder that does not exist",
                       params_change({"prepare.source": {"kind": "imagefolder", "path": "no/such/folder"}})),
    "unknown-key": ("a misspelt params key", params_text("per_class:", "per_clas:")),
    "wrong-type": ("a params value of the wrong type", params_change({"prepare.per_class": "many"})),
    "out-of-range": ("a params value out of range", params_change({"prepare.val_fraction": 1.5})),
    "yaml-syntax": ("params.yaml that is not valid YAML", params_text("prepare:", "prepare: [")),
    "no-cuda": ("`device: cuda` on a machine without a GPU", params_change({"device": "cuda"}, "train_judge")),
    "read-only": ("the output folder on a read-only file system", read_only_output),
    "disk-full": ("the disk fills up while prepare writes", full_disk("prepare", {"prepare.per_class": 10})),
    "disk-full-checkpoint": ("the disk fills up while train_judge writes a checkpoint",
                             full_disk("train_judge", {}, first_training=True)),
    "two-runs": ("a second run while another holds the workspace", another_run),
    "zero-byte-shard": ("a zero-byte shard in data/prepared", damaged_prepared(zero_bytes)),
    "short-shard": ("a shard shorter than its manifest", damaged_prepared(cut_short)),
    "flipped-bit": ("one flipped bit in a shard (bit rot)", damaged_prepared(flip_bit)),
    "missing-shard": ("a shard deleted", damaged_prepared(lambda d: first_shard(d).unlink())),
    "corrupt-manifest": ("a corrupt manifest.parquet",
                         damaged_prepared(lambda d: (d / "manifest.parquet").write_bytes(b"PAR1 garbage"))),
    "corrupt-info": ("a corrupt info.json", damaged_prepared(lambda d: (d / "info.json").write_text("{\"classes\": "))),
    "kill-9": ("train_judge killed with kill -9 between checkpoints, run again", kill_mid_training),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--only", nargs="*", choices=sorted(CASES), help="run these cases, print, save nothing")
    parser.add_argument("--inspect", type=Path, help=argparse.SUPPRESS)  # used inside full_disk's namespace
    args = parser.parse_args()
    if args.inspect:
        print(json.dumps(inspect(args.inspect)))
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="genaug-faults-"))
    base = base_workspace(work)
    rows = []
    for name in args.only or CASES:
        what, case = CASES[name]
        ws = work / name
        shutil.rmtree(ws, ignore_errors=True)
        shutil.copytree(base, ws, symlinks=True)
        started = time.perf_counter()
        record = {"case": name, "fault": what, **case(ws), "seconds": round(time.perf_counter() - started, 1)}
        rows.append(record)
        ok = not record["traceback"] and record["named"] and record["nothing_lost"]
        print(f"{'ok  ' if ok else 'FAIL'} {name:20s} exit {record['exit']}  {record['message'][:150]}", flush=True)
    summary = {"faults": len(rows), "named": sum(r["named"] for r in rows),
               "tracebacks": sum(r["traceback"] for r in rows),
               "partial_outputs": sum(not r["nothing_lost"] for r in rows)}
    print(json.dumps(summary))
    if args.only is None:
        OUT.write_text(json.dumps({"machine": f"{platform.node()} ({platform.machine()}, {os.cpu_count()} cores)",
                                   "command": "python benchmarks/faults.py", "date": time.strftime("%Y-%m-%d"),
                                   "summary": summary, "cases": rows}, indent=1) + "\n")
        print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
