"""train_denoiser: train the denoising autoencoder on the real train images, corrupted by the noise of
train_denoiser.noise (components/data/transforms.py: blur, Gaussian noise, salt-and-pepper, JPEG), into
data/models/denoiser; and measure it on the real val images under the same noise against two classic
filters, OpenCV's 3x3 median and non-local means (metrics/train_denoiser.json).

Everything happens at the generator's size, where the denoise stage applies the model to the
generated samples. Non-local means gets its best strength h, picked on the val images themselves,
so the comparison favours the classic filter, not the denoiser.

PSNR is computed from the mean squared error over all val images (an image the noise left untouched
would otherwise count as infinite dB); SSIM is the mean over images (components/metrics/fidelity.py,
which needs sides of at least 11 pixels: below that it is reported as null).

data/models/denoiser holds denoiser.pt, metrics.csv, checkpoints/, samples/ and denoised.png (clean,
noisy and denoised val images). The folder persists between runs (dvc.yaml: persist: true). With
train_denoiser.nproc N > 1 it trains in N processes (components/stages/processes.py); rank 0 measures.
With denoise.strength 0 (the default) the denoise stage passes the samples through, so there is nothing to
train: the folder holds only a note saying so (README: Evaluation, why the default is 0).
"""

import cv2
import numpy as np
import torch

from components import paths, ranks
from components.config import Params
from components.data.atomic import write_json
from components.data.manifest import read_manifest
from components.data.shards import gather_images
from components.data.transforms import noise
from components.device import describe
from components.errors import DataError
from components.metrics.fidelity import ssim
from components.models import autoencoder
from components.pixels import psnr_uint8, resize_images, stream_seed
from components.stages import processes
from components.training.autoencoder import train_denoiser

GRID_IMAGES = 10
BATCH = 512
NL_MEANS_H = (4, 6, 8, 11, 15, 20, 27, 35)  # strengths tried for non-local means (grey levels)
SSIM_MIN_SIDE = 11


def run(params: Params) -> dict:
    if params.denoise.strength == 0:
        why = ("denoise.strength is 0: no denoiser is trained, and the denoise stage passes the generated samples "
               "through unchanged")
        return processes.nothing_to_train("train_denoiser", paths.DENOISER, paths.DENOISER_NOTE, why,
                                          {"strength": 0.0, "denoiser": None})
    return processes.run("train_denoiser", params, params.train_denoiser.nproc, train)


def train(params: Params, device: torch.device) -> dict:
    tp, size = params.train_denoiser, params.generator.size
    manifest = read_manifest(paths.PREPARED)
    train_rows, val = (manifest[manifest["split"] == split] for split in ("train", "val"))
    if train_rows.empty or val.empty:
        raise DataError(f"{paths.PREPARED}: the denoiser trains on the train split and is measured on the val "
                        f"split; one is empty: set prepare.val_fraction above 0 (it is "
                        f"{params.prepare.val_fraction}) and a budget of at least 2 images per class")
    images = resize_images(gather_images(paths.PREPARED, train_rows), size)
    val = resize_images(gather_images(paths.PREPARED, first_of_each_class_first(val)), size)
    if ranks.is_main():
        (paths.DENOISER / paths.DENOISER_NOTE).unlink(missing_ok=True)
        print(f"train_denoiser: denoising autoencoder on {len(images)} real images x {tp.variants} noisy copies "
              f"at {size}x{size}, {tp.steps} steps on {describe(device, tp.precision)}"
              + ranks.count_text())
    model, summary = train_denoiser(images, val[:GRID_IMAGES], tp, params.seed, device, paths.DENOISER)
    if not ranks.is_main():
        return summary

    noisy = noise(val, tp.noise, stream_seed(params.seed, 1))  # the picture's val noise: same seed
    summary = {**summary, "train_images": len(images), "val": measure(model, val, noisy, device)}
    write_json(paths.metrics_file("train_denoiser"), summary)
    print(format_table(summary["val"]))
    return summary


def first_of_each_class_first(rows):
    """The val rows, the first image of every class first, then the second of each, ...: a grid of the
    first few shows every class."""
    rank = rows.groupby("label").cumcount()
    return rows.assign(rank=rank.to_numpy()).sort_values(["rank", "label"], kind="stable")


def measure(model: autoencoder.Autoencoder, clean: np.ndarray, noisy: np.ndarray, device: torch.device) -> dict:
    """PSNR and SSIM against the clean images of: the noisy input, the 3x3 median filter, non-local means
    at its best h, and the denoiser; and the denoiser's gain over the better classic filter."""
    h = max(NL_MEANS_H, key=lambda h: psnr_uint8(nl_means(noisy, h), clean, pooled=True))
    restored = {"noisy": noisy, "median": median(noisy), "nl_means": nl_means(noisy, h),
                "denoiser": autoencoder.outputs(model, noisy, BATCH, device)}
    quality = {name: {"psnr": round(psnr_uint8(images, clean, pooled=True), 3), "ssim": mean_ssim(images, clean)}
               for name, images in restored.items()}
    best = max(("median", "nl_means"), key=lambda name: quality[name]["psnr"])
    gain = {"over": best, "psnr_db": round(quality["denoiser"]["psnr"] - quality[best]["psnr"], 3)}
    if quality["denoiser"]["ssim"] is not None:
        gain["ssim"] = round(quality["denoiser"]["ssim"] - max(quality[n]["ssim"] for n in ("median", "nl_means")), 4)
    return {"images": len(clean), "nl_means_h": h, **quality, "gain": gain}


def mean_ssim(images: np.ndarray, clean: np.ndarray) -> float | None:
    return round(ssim(images, clean), 4) if min(images.shape[1:3]) >= SSIM_MIN_SIDE else None


def median(images: np.ndarray) -> np.ndarray:
    """OpenCV's 3x3 median filter, image by image (uint8 (N, H, W, C))."""
    return np.stack([cv2.medianBlur(image, 3).reshape(image.shape) for image in images])


def nl_means(images: np.ndarray, h: float) -> np.ndarray:
    """OpenCV's non-local means (the colour variant for 3 channels), image by image; 3x3 patches and a 7x7
    search window: the sizes suited to images of a few dozen pixels."""
    if images.shape[-1] == 1:
        return np.stack([cv2.fastNlMeansDenoising(image, None, h, 3, 7).reshape(image.shape) for image in images])
    return np.stack([cv2.fastNlMeansDenoisingColored(image, None, h, h, 3, 7) for image in images])


def format_table(val: dict) -> str:
    lines = [f"{'':10} {'PSNR dB':>8} {'SSIM':>7}   ({val['images']} val images; nl_means h={val['nl_means_h']})"]
    for name in ("noisy", "median", "nl_means", "denoiser"):
        q = val[name]
        lines.append(f"{name:10} {q['psnr']:8.2f} {q['ssim'] if q['ssim'] is not None else 'n/a':>7}")
    return "\n".join(lines)
