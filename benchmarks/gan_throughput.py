"""GAN throughput: training images/s of the default 28x28 cGAN in our loop against a classic loop, and
generation images/s. Prints the figures and writes them, with the machine and the exact command, to
benchmarks/results/gan_throughput-<machine>.json. Never asserted in tests.

  (a) ours: components.training.gan.train_gan itself (data resident on the device, index sampling
      from a seeded generator, bf16 autocast on CUDA, metrics read every log_every steps), at --batch-size.
      Timed on a resumed run, so start-up is not counted: a run of --warmup steps, then the same
      run_dir continued by --steps more.
  (b) reference: the PyTorch DCGAN example's loop (examples/dcgan/main.py) with the same networks and
      loss: fp32, a DataLoader over a TensorDataset, host-to-device copies and .item() every step,
      at --ref-batch-size.
  generation: components.generation.sample.generate_class_range over --gen-images images per class.

    python benchmarks/gan_throughput.py --steps 200 --batch-size 256 --subset 5000
"""

import argparse
import gzip
import json
import math
import os
import platform
import re
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.config.generator import GenerateParams, GeneratorParams, TrainGeneratorParams  # noqa: E402
from components.device import resolve_device  # noqa: E402
from components.generation.sample import generate_class_range  # noqa: E402
from components.models import cgan  # noqa: E402
from components.training.gan import train_gan  # noqa: E402

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    args = parse_args()
    device = resolve_device(args.device)
    images, labels, data = load_data(args.subset)
    arch = GeneratorParams()
    print(f"{len(labels)} images ({data}), {arch.size}x{arch.size}, device {device}, {torch.get_num_threads()} threads")

    figures = {}
    # same math per image in both loops: no DiffAugment (the reference has none)
    figures["ours"] = ours(images, labels, arch, args, device, diffaugment=[])
    figures["ours_default_params"] = ours(images, labels, arch, args, device,
                                          diffaugment=TrainGeneratorParams().diffaugment)
    figures["reference"] = reference(images, labels, arch, args, device)
    figures["generation"] = generation(arch, args, device)
    speedup = figures["ours"]["images_per_s"] / figures["reference"]["images_per_s"]
    result = {
        "benchmark": "gan_throughput",
        "command": shlex.join([sys.executable, *sys.argv]),
        "machine": machine(device),
        "data": {"source": data, "images": int(len(labels)), "size": arch.size},
        "model": arch.model_dump(mode="json"),
        "figures": figures,
        "ratio_ours_to_reference": round(speedup, 2),
    }
    out = Path(args.out) if args.out else RESULTS / f"gan_throughput-{machine_slug(device)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    print(f"ours / reference: {speedup:.2f}x  -> {out}")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=200, help="timed training steps per loop")
    p.add_argument("--warmup", type=int, default=20, help="untimed steps before the timed ones")
    p.add_argument("--batch-size", type=int, default=None, help="our loop's batch (default: 4096 on CUDA, 256 on CPU)")
    p.add_argument("--log-every", type=int, default=TrainGeneratorParams().log_every, help="our loop's metric reads")
    p.add_argument("--ref-batch-size", type=int, default=128, help="the reference loop's batch (the example's 128)")
    p.add_argument("--workers", type=int, default=2, help="reference DataLoader workers (the example's 2)")
    p.add_argument("--subset", type=int, default=5000, help="training images (Fashion-MNIST train, first N)")
    p.add_argument("--gen-images", type=int, default=None,
                   help="images per class to generate (default: 20000 on CUDA, 1000 on CPU)")
    p.add_argument("--gen-batch-size", type=int, default=None,
                   help="generation micro-batch (default: 8192 on CUDA, generate's default on CPU)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/gan_throughput-<machine>.json)")
    return p.parse_args()


def load_data(subset: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Fashion-MNIST's first `subset` training images, or random pixels where it is not installed."""
    try:
        with gzip.open(FASHION_MNIST / "train-images-idx3-ubyte.gz") as fh:
            images = np.frombuffer(fh.read(), np.uint8, offset=16).reshape(-1, 28, 28, 1)[:subset].copy()
        with gzip.open(FASHION_MNIST / "train-labels-idx1-ubyte.gz") as fh:
            labels = np.frombuffer(fh.read(), np.uint8, offset=8)[:subset].astype(np.int64)
        return images, labels, "fashion-mnist"
    except FileNotFoundError:
        rng = np.random.default_rng(0)
        return (rng.integers(0, 256, (subset, 28, 28, 1), dtype=np.uint8),
                rng.integers(0, 10, subset).astype(np.int64), "random pixels (fashion-mnist not installed)")


def ours(images, labels, arch, args, device, diffaugment) -> dict:
    batch = args.batch_size or (4096 if device.type == "cuda" else 256)
    params = TrainGeneratorParams(batch_size=batch, diffaugment=diffaugment, steps=args.warmup,
                                  log_every=args.warmup, checkpoint_every=args.warmup)
    names = [str(k) for k in range(10)]
    with tempfile.TemporaryDirectory() as run_dir:
        train_gan(images, labels, names, arch, params, 0, device, Path(run_dir))
        total, every = args.warmup + args.steps, args.log_every
        # the same run continued: checkpoints (and sample grids) only at its last step
        params = params.model_copy(update={"steps": total, "log_every": every,
                                           "checkpoint_every": every * math.ceil(total / every)})
        started = time.perf_counter()
        train_gan(images, labels, names, arch, params, 0, device, Path(run_dir))
        seconds = time.perf_counter() - started
    return {"batch_size": batch, "steps": args.steps, "diffaugment": diffaugment, "log_every": args.log_every,
            "seconds": round(seconds, 2), "images_per_s": round(args.steps * batch / seconds, 1),
            "precision": "bf16 autocast" if device.type == "cuda" else "fp32"}


def reference(images, labels, arch, args, device) -> dict:
    """The DCGAN example's loop, with our networks and hinge loss."""
    G, D = cgan.build(arch, 10, 1, seed=0)
    G, D = G.to(device), D.to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(D.parameters(), lr=4e-4, betas=(0.0, 0.99))
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    loader = DataLoader(TensorDataset(x, torch.from_numpy(labels)), batch_size=args.ref_batch_size,
                        shuffle=True, drop_last=True, num_workers=args.workers,
                        persistent_workers=args.workers > 0, generator=torch.Generator().manual_seed(0))

    def batches():
        while True:
            yield from loader

    done, started, stats = 0, None, {}
    for i, (real, y) in enumerate(batches()):
        if i == args.warmup:
            sync(device)
            started = time.perf_counter()
        if i == args.warmup + args.steps:
            break
        real, y = real.to(device), y.to(device)
        D.zero_grad()
        err_real = torch.relu(1 - D(real, y)).mean()
        err_real.backward()
        z = torch.randn(len(y), arch.latent_dim, device=device)
        fake = G(z, y)
        out_fake = D(fake.detach(), y)
        err_fake = torch.relu(1 + out_fake).mean()
        err_fake.backward()
        opt_d.step()
        G.zero_grad()
        out = D(fake, y)
        err_g = -out.mean()
        err_g.backward()
        opt_g.step()
        stats = {"loss_d": err_real.item() + err_fake.item(), "loss_g": err_g.item(),
                 "d_g_z1": out_fake.mean().item(), "d_g_z2": out.mean().item()}
        done += 1 if i >= args.warmup else 0
    sync(device)
    seconds = time.perf_counter() - started
    return {"batch_size": args.ref_batch_size, "steps": done, "workers": args.workers, "seconds": round(seconds, 2),
            "images_per_s": round(done * args.ref_batch_size / seconds, 1), "precision": "fp32",
            "last": {k: round(v, 4) for k, v in stats.items()}}


def generation(arch, args, device) -> dict:
    per_class = args.gen_images or (20_000 if device.type == "cuda" else 1000)
    batch = args.gen_batch_size or (8192 if device.type == "cuda" else GenerateParams().batch_size)
    G, _ = cgan.build(arch, 10, 1, seed=0)
    G = G.to(device).eval()
    generate_class_range(G, 0, 0, batch, seed=0, batch_size=batch, device=device)  # warm-up
    sync(device)
    started = time.perf_counter()
    for label in range(10):
        generate_class_range(G, label, 0, per_class, seed=0, batch_size=batch, device=device)
    sync(device)
    seconds = time.perf_counter() - started
    return {"images": 10 * per_class, "batch_size": batch, "seconds": round(seconds, 2),
            "images_per_s": round(10 * per_class / seconds, 1),
            "note": "uint8 images on the host, latents derived per sample on the CPU, as the generate stage does"}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def machine(device: torch.device) -> dict:
    return {
        "cpu": cpu_name(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_device": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "cuda": torch.version.cuda,
        "load_average_at_end": os.getloadavg(),
    }


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_slug(device: torch.device) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu-{os.cpu_count()}core"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


if __name__ == "__main__":
    main()
