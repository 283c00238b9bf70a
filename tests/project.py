"""A throw-away copy of this repository as a user would have it: a git repo with DVC, a local remote,
and tiny params, for the end-to-end and deployment tests."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
COPIED = ["components", "flows", "dvc.yaml", "params.yaml", "prefect.yaml", "pyproject.toml",
          ".dvc/config", ".dvc/.gitignore", ".dvcignore", ".gitignore"]

# Three Fashion-MNIST classes, 12 images each, a tiny generator: seconds per stage on 2 cores.
TINY = {
    "prepare.per_class": 12,
    "prepare.classes": ["Trouser", "Bag", "Sneaker"],
    "prepare.shard_size": 16,
    # The cascade (generator at 14, SR x2), not the default 28 x 1: the project then runs every stage's
    # real work, and test_cvae_at_full_size_with_denoise_off_and_no_upscaler switches to the defaults.
    "generator.size": 14,
    # The cGAN here (params.yaml's default is the cVAE, which that test runs).
    "generator.kind": "cgan",
    "upscale.factor": 2,
    # The denoiser on (params.yaml's default, strength 0, trains none: that test runs it too).
    "denoise.strength": 1.0,
    "generator.width": 8,
    "generator.embed_dim": 8,
    "generator.latent_dim": 16,
    "train_generator.steps": 20,
    "train_generator.batch_size": 16,
    "train_generator.checkpoint_every": 10,
    "train_generator.log_every": 5,
    "generate.n": 10,
    "generate.shard_size": 16,
    "train_generator.cvae.steps": 20,
    "train_generator.cvae.batch_size": 16,
    "train_generator.cvae.checkpoint_every": 10,
    "train_generator.cvae.log_every": 5,
    "train_scorer.steps": 20,
    "train_scorer.batch_size": 16,
    "train_scorer.checkpoint_every": 10,
    "train_scorer.log_every": 5,
    "train_scorer.width": 8,
    "train_scorer.latent_dim": 4,
    "train_denoiser.steps": 20,
    "train_denoiser.batch_size": 16,
    "train_denoiser.checkpoint_every": 10,
    "train_denoiser.log_every": 5,
    "train_denoiser.width": 8,
    "train_denoiser.variants": 2,
    "denoise.batch_size": 8,
    "train_upscaler.steps": 20,
    "train_upscaler.batch_size": 16,
    "train_upscaler.checkpoint_every": 10,
    "train_upscaler.log_every": 5,
    "train_upscaler.width": 8,
    "train_upscaler.blocks": 1,
    "upscale.batch_size": 8,
    "assemble.shard_size": 16,
    "train_judge.steps": 20,
    "train_judge.batch_size": 16,
    "train_judge.checkpoint_every": 10,
    "train_judge.log_every": 5,
    "train_judge.model": {"width": 8, "stages": 2},
    # A 20-step generator makes noise that a 20-step judge rightly rejects: the checks are off here and
    # have their own tests (test_filter.py), so the samples flow through to assemble and evaluate.
    "filter.label_check": False,
    "filter.realism_quantile": None,
    "filter.duplicate_ratio": None,
    "evaluate.seeds": [0],
    "evaluate.classifier": {"width": 8, "stages": 2},
    "evaluate.fit": {"steps": 20, "batch_size": 16, "checkpoint_every": 10, "log_every": 5},
    "evaluate.kid": {"subset_size": 50, "subsets": 5},
    # 20-step classifiers on 33 real images decide nothing: the gate has its own tests (test_evaluate.py).
    "version.gate.enabled": False,
}


def env() -> dict[str, str]:
    out = dict(os.environ)
    out["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{out.get('PATH', '')}"
    out.update(DVC_NO_ANALYTICS="1", NO_ALBUMENTATIONS_UPDATE="1", PREFECT_SERVER_ANALYTICS_ENABLED="false",
               # Prefect's ephemeral server takes ~20 s to start on 2 busy cores (DESIGN.md)
               PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="90",
               GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@localhost",
               GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@localhost",
               GENAUG_STAGE_RETRIES="0",  # a stage that fails once fails the test (flows/augment.py)
               # One torch thread per stage process: two test processes already fill the 2 cores, and a torch
               # thread waiting for a busy core stalls tiny nets (tests/unit/conftest.py). Every stage of these
               # projects runs at this count, so their outputs still compare bit for bit.
               OMP_NUM_THREADS="1")
    # Run our code from the copy, not from the checkout the tests live in.
    out.pop("PYTHONPATH", None)
    return out


def run(cwd: Path, *args: str, check: bool = True, timeout: int = 600,
        extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(list(args), cwd=cwd, env={**env(), **(extra_env or {})}, text=True,
                            capture_output=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def dvc(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(cwd, sys.executable, "-m", "dvc", *args, check=check)


def set_params(root: Path, overrides: dict) -> None:
    path = root / "params.yaml"
    data = yaml.safe_load(path.read_text())
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def make_project(root: Path, remote: Path, overrides: dict | None = None) -> Path:
    """Copy the repository's pipeline files into `root`, make it a git+DVC repo with a local remote."""
    root.mkdir(parents=True)
    for name in COPIED:
        src = REPO / name
        if not src.exists():
            continue
        dst = root / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)
    set_params(root, {**TINY, **(overrides or {})})
    run(root, "git", "init", "-q", "-b", "main")
    # --force: `make setup` may already have written a default remote into .dvc/config.
    dvc(root, "remote", "add", "--force", "-d", "local", str(remote))
    run(root, "git", "add", "-A")
    run(root, "git", "commit", "-q", "-m", "genaug project")
    return root
