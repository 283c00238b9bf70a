"""Every trainer survives kill -9: each runs in a child process that is killed (SIGKILL) once its first
checkpoint is on disk, wherever it is between checkpoints; run again, it resumes from its last checkpoint
(the step is checked in its log) and ends with the weights of an uninterrupted run, bit for bit."""

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STEPS, EVERY = 120, 40

TRAIN = """
import hashlib, logging, sys
import numpy as np, torch
from pathlib import Path
from components.config.autoencoder import TrainDenoiserParams, TrainScorerParams
from components.config.classifier import ClassifierParams
from components.config.generator import GeneratorParams, TrainGeneratorParams
from components.config.quality import ClassifierFitParams
from components.config.upscale import TrainUpscalerParams

logging.basicConfig(level=logging.INFO, format="%(message)s")
torch.set_num_threads(1)
trainer, run_dir, steps, every = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = np.random.default_rng(0)
images = rng.integers(0, 256, (48, 16, 16, 1), dtype=np.uint8)
labels, names, cpu = np.arange(48) % 3, ["a", "b", "c"], torch.device("cpu")
loop = dict(steps=steps, batch_size=8, checkpoint_every=every, log_every=every // 2, keep_checkpoints=2)
arch = GeneratorParams(size=16, latent_dim=8, width=8, embed_dim=4)
if trainer == "gan":
    from components.training.gan import train_gan
    train_gan(images, labels, names, arch, TrainGeneratorParams(**loop), 0, cpu, run_dir)
    model = torch.load(run_dir / "generator.pt", weights_only=True)["state_dict"]
elif trainer == "cvae":
    from components.training.cvae import train_cvae
    train_cvae(images, labels, names, arch.model_copy(update={"kind": "cvae"}), TrainGeneratorParams(cvae=loop), 0,
               cpu, run_dir)
    model = torch.load(run_dir / "generator.pt", weights_only=True)["state_dict"]
elif trainer == "scorer":
    from components.training.autoencoder import train_scorer
    model = train_scorer(images, images[:2], TrainScorerParams(**loop, width=8, latent_dim=4), 0, cpu, run_dir)[0]
elif trainer == "denoiser":
    from components.training.autoencoder import train_denoiser
    model = train_denoiser(images, images[:2], TrainDenoiserParams(**loop, width=8, variants=2), 0, cpu, run_dir)[0]
elif trainer == "upscaler":
    from components.training.upscaler import train_upscaler
    model = train_upscaler(images, images[:2], TrainUpscalerParams(**loop, width=8, blocks=1), 2, 0, cpu, run_dir)[0]
elif trainer == "classifier":  # the judge's and every evaluate run's trainer
    from components.training.classify import train_classifier
    model = train_classifier(images, labels, 3, ClassifierParams(width=8, stages=2), ClassifierFitParams(**loop), 0,
                             cpu, run_dir, "classifier")[0]
state = model if isinstance(model, dict) else model.state_dict()
digest = hashlib.sha256(b"".join(t.cpu().numpy().tobytes() for t in state.values())).hexdigest()
print("weights", digest)
"""


def train(trainer: str, run_dir: Path, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", TRAIN, trainer, str(run_dir), str(STEPS), str(EVERY)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def weights(process: subprocess.Popen) -> tuple[str, str]:
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 0, out[-3000:]
    return re.search(r"weights (\w+)", out).group(1), out


def checkpoint_steps(run_dir: Path) -> list[int]:
    return sorted(int(p.stem.split("-")[1]) for p in (run_dir / "checkpoints").glob("step-*.pt"))


@pytest.mark.parametrize("trainer", ["gan", "cvae", "scorer", "denoiser", "upscaler", "classifier"])
def test_a_trainer_killed_between_checkpoints_resumes_to_the_same_weights(tmp_path, trainer):
    straight, _ = weights(train(trainer, tmp_path / "straight"))

    run_dir = tmp_path / "killed"
    process = train(trainer, run_dir)
    deadline = time.monotonic() + 120
    while not checkpoint_steps(run_dir) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    kept = checkpoint_steps(run_dir)
    assert process.returncode == -signal.SIGKILL and kept and kept[-1] < STEPS, "killed too late to test anything"

    resumed, log = weights(train(trainer, run_dir))
    assert f"(step {kept[-1]})" in log and f"resumed from step {kept[-1]}" in log
    assert resumed == straight
