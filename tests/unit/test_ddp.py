"""train_generator.nproc: 2 on the CPU (torchrun --standalone, gloo): the stage trains the same cVAE as one
process (and the cGAN and the diffusion model theirs, and train_scorer, train_denoiser, train_upscaler their
models) (weights within 1e-5, in fp32: under bf16 autocast a half batch rounds otherwise than the whole, so the
precision is pinned where the CPU would pick bf16; the diffusion model's within 1e-4, below), a 2-process run
stopped and resumed ends as a straight one, and a NaN on one rank stops both with the usual divergence message.
Every torchrun runs under a timeout: a hung rank fails the test instead of the suite."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from components import cli, paths
from components.stages import prepare
from tests.quality_data import FASHION_MNIST, small_params

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 240
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
ENV = {"GLOO_SOCKET_IFNAME": "lo", "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}

SCRIPT = """
import hashlib, logging, sys
import numpy as np, torch
from pathlib import Path
from components import ranks
from components.config.generator import GeneratorParams, TrainGeneratorParams
from components.config.training import FitParams
from components.errors import DivergenceError
from components.training.cvae import train_cvae
from components.training.diffusion import train_diffusion
from components.training.fit import fit
from components.training.gan import train_gan

logging.basicConfig(level=logging.INFO, format="%(message)s")
case, run_dir, steps = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
cpu = ranks.join(torch.device("cpu"))
rng = np.random.default_rng(0)
images = rng.integers(0, 256, (48, 16, 16, 1), dtype=np.uint8)
labels = np.arange(48) % 3
try:
    loop = dict(steps=steps, batch_size=8, checkpoint_every=10, log_every=5, keep_checkpoints=2, precision="fp32")
    if case in ("cvae", "gan", "diffusion"):
        arch = GeneratorParams(kind={"gan": "cgan"}.get(case, case), size=16, latent_dim=8, width=8, embed_dim=4)
        if case == "cvae":
            train_cvae(images, labels, ["a", "b", "c"], arch, TrainGeneratorParams(cvae=loop, nproc=2), 0, cpu,
                       run_dir)
        elif case == "diffusion":  # timesteps, noise, shift-and-mirror and dropped labels drawn for the global batch
            recipe = dict(loop, width=16, embedding=8, timesteps=50, sample_steps=3, label_dropout=0.25,
                          augment={"shift": 1, "hflip": True})
            train_diffusion(images, labels, ["a", "b", "c"], arch, TrainGeneratorParams(diffusion=recipe, nproc=2), 0,
                            cpu, run_dir)
        else:  # every DiffAugment policy and LeCam: each must draw and average as one process would
            tp = TrainGeneratorParams(**loop, nproc=2, diffaugment=["translation", "cutout", "color"], lecam=0.1)
            train_gan(images, labels, ["a", "b", "c"], arch, tp, 0, cpu, run_dir)
        if ranks.is_main():
            state = torch.load(run_dir / "generator.pt", weights_only=True)["state_dict"]
            print("weights", hashlib.sha256(b"".join(t.numpy().tobytes() for t in state.values())).hexdigest())
    else:  # a NaN loss on rank 1 alone, from step 3
        model = torch.nn.Linear(4, 1)
        def batch_metrics(m, g, step):
            loss = m(torch.randn(4, 4, generator=g)).pow(2).mean()
            return torch.stack([loss * float("nan") if ranks.rank() == 1 and step >= 3 else loss])
        fit(model, batch_metrics, ("loss",), FitParams(steps=20, batch_size=4, log_every=5, checkpoint_every=5), 0,
            cpu, run_dir, {}, (), "nan test")
except DivergenceError as exc:
    print(f"rank {ranks.rank()} stopped: {exc}", flush=True)
    sys.exit(3)
finally:
    ranks.leave()
"""


def torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    script = cwd / "train.py"
    script.write_text(SCRIPT)
    return subprocess.run(["timeout", str(TIMEOUT), *TORCHRUN, str(script), *args], cwd=cwd, env=ENV, text=True,
                          capture_output=True, timeout=TIMEOUT + 30)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def test_two_processes_train_the_stage_s_cvae_as_one_does(tmp_path, monkeypatch):
    if not FASHION_MNIST.is_dir():
        pytest.skip("needs the Fashion-MNIST package")
    tiny = {"generator": {"kind": "cvae", "size": 28, "latent_dim": 8, "width": 8, "embed_dim": 4},
            "upscale": {"factor": 1}}
    runs = {}
    for nproc in (1, 2):
        root = tmp_path / f"nproc{nproc}"
        root.mkdir()
        monkeypatch.chdir(root)
        params = small_params(**tiny, train_generator={
            "nproc": nproc, "cvae": {"steps": 20, "batch_size": 16, "checkpoint_every": 10, "log_every": 5,
                                        "precision": "fp32", "augment": {"shift": 2, "hflip": True}}})
        prepare.run(params)
        (root / "params.yaml").write_text(yaml.safe_dump(params.model_dump(mode="json")))
        result = subprocess.run(["timeout", str(TIMEOUT), sys.executable, "-m", "components", "train_generator"],
                                cwd=root, env=ENV, text=True, capture_output=True, timeout=TIMEOUT + 30)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        runs[nproc] = weights(root / paths.GENERATOR / paths.GENERATOR_FILE)
        if nproc == 2:
            assert "2 processes" in result.stdout
    assert runs[1].keys() == runs[2].keys()
    for name in runs[1]:
        assert torch.allclose(runs[1][name].float(), runs[2][name].float(), atol=1e-5, rtol=0), name


TINY_FIT = {"steps": 12, "batch_size": 16, "checkpoint_every": 6, "log_every": 3, "precision": "fp32"}
OTHER_TRAINERS = {"train_scorer": {**TINY_FIT, "width": 4, "levels": 1, "latent_dim": 4},
                  "train_denoiser": {**TINY_FIT, "width": 4, "levels": 1, "variants": 2},
                  "train_upscaler": {**TINY_FIT, "width": 8, "blocks": 1}}
MODEL_FILES = {"train_scorer": paths.SCORER / paths.SCORER_FILE, "train_denoiser": paths.DENOISER / paths.DENOISER_FILE,
               "train_upscaler": paths.UPSCALER / paths.UPSCALER_FILE}


def test_two_processes_train_the_other_stages_models_as_one_does(tmp_path, monkeypatch):
    """The scorer, the denoiser and the upscaler on the shared loop with nproc 2: the same weights as the stage
    in one process (within 1e-5), and rank 0 writes the stage's metrics. One project (the cascade, so that
    there is an upscaler), the one-process stages run here."""
    if not FASHION_MNIST.is_dir():
        pytest.skip("needs the Fashion-MNIST package")
    monkeypatch.chdir(tmp_path)
    cascade = {"upscale": {"factor": 2}, "generator": {"size": 14}, "denoise": {"strength": 1.0}}
    one = small_params(**cascade, **OTHER_TRAINERS)
    prepare.run(one)
    reference = {}
    for stage, model_file in MODEL_FILES.items():
        cli.stage(stage)(one)
        reference[stage] = weights(model_file)
        shutil.rmtree(model_file.parent)
        paths.metrics_file(stage).unlink()
    two = small_params(**cascade, **{stage: {**fit, "nproc": 2} for stage, fit in OTHER_TRAINERS.items()})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(two.model_dump(mode="json")))
    for stage, model_file in MODEL_FILES.items():
        result = subprocess.run(["timeout", str(TIMEOUT), sys.executable, "-m", "components", stage],
                                cwd=tmp_path, env=ENV, text=True, capture_output=True, timeout=TIMEOUT + 30)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert f"{stage}: 2 processes" in result.stdout and ", 2 processes" in result.stdout, stage
        assert paths.metrics_file(stage).is_file(), stage
        trained = weights(model_file)
        assert trained.keys() == reference[stage].keys(), stage
        for key in trained:
            assert torch.allclose(reference[stage][key].float(), trained[key].float(), atol=1e-5, rtol=0), \
                (stage, key)


def test_a_batch_that_does_not_split_over_the_processes_is_refused():
    with pytest.raises(Exception, match=r"batch_size \(15\) must be a multiple of nproc \(2\)"):
        small_params(train_denoiser={"batch_size": 15, "nproc": 2})


@pytest.mark.parametrize("case", ["gan", "diffusion"])
def test_two_processes_train_the_generator_as_one_does(tmp_path, case):
    """The cGAN's two-optimiser step under DDP: D's step through its wrapper, G's through D itself; DiffAugment
    draws of the global batch, LeCam's averages over both processes. The diffusion model's timesteps, noise and
    shifted and mirrored images: each process's rows of the global batch's draws."""
    two = torchrun(case, str(tmp_path / "two"), "20", cwd=tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]
    one = subprocess.run(["timeout", str(TIMEOUT), sys.executable, str(tmp_path / "train.py"), case,
                          str(tmp_path / "one"), "20"], cwd=tmp_path, env=ENV, text=True, capture_output=True)
    assert one.returncode == 0, one.stderr[-3000:]
    runs = [weights(tmp_path / name / paths.GENERATOR_FILE) for name in ("one", "two")]
    # The U-Net has weights whose first gradients are near zero: the two processes' other order of summation
    # changes them in the last bits, and Adam's first steps scale that up to ~1e-5. A wrong slice of any draw
    # moves every weight by ~1e-2.
    atol = 1e-4 if case == "diffusion" else 1e-5
    for name in runs[0]:
        assert torch.allclose(runs[0][name].float(), runs[1][name].float(), atol=atol, rtol=0), name


def test_a_stopped_two_process_run_resumes_to_the_straight_run_s_weights(tmp_path):
    straight = torchrun("cvae", str(tmp_path / "straight"), "20", cwd=tmp_path)
    assert straight.returncode == 0, straight.stderr[-3000:]
    first = torchrun("cvae", str(tmp_path / "resumed"), "10", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    resumed = torchrun("cvae", str(tmp_path / "resumed"), "20", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "(step 10)" in resumed.stdout + resumed.stderr  # resumed from its checkpoint, not from scratch
    digest = [line for line in straight.stdout.splitlines() if line.startswith("weights")]
    assert digest and digest == [line for line in resumed.stdout.splitlines() if line.startswith("weights")]


def test_a_nan_on_one_rank_stops_both_with_the_divergence_message(tmp_path):
    result = torchrun("nan", str(tmp_path / "run"), "0", cwd=tmp_path)
    assert result.returncode != 0
    for rank in (0, 1):
        assert f"rank {rank} stopped: nan test diverged by step 5: a loss became NaN or infinite" in result.stdout
