"""End to end, as a user runs it: `dvc repro`, again (no work), a param change, the Prefect flow
(same dvc.lock), versioning, and getting the version back with `dvc get`, load_version and a torch Dataset.

The project is reproduced once; each test that starts from it gets its own copy, so any order passes."""

import json
import os
import signal
import shutil
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

from tests.project import dvc, env, make_project, run, set_params

pytestmark = pytest.mark.e2e


def test_repro_writes_the_augmented_set(project):
    root, first = project
    for stage in ("prepare", "train_generator", "generate", "filter", "assemble"):
        assert f"Running stage '{stage}'" in first.stdout
    manifest = pd.read_parquet(root / "data/augmented/manifest.parquet")
    train = manifest[manifest["split"] == "train"]
    assert sorted(train["class_name"].unique()) == ["Bag", "Sneaker", "Trouser"]
    real = train[train["source"] == "real"]
    synthetic = train[train["source"] == "synthetic"]
    assert real.groupby("class_name").size().tolist() == [11, 11, 11]  # 12 per class, 1 for val
    # The filter keeps at most the quota (10 a class): what it accepted, topping classes up when short.
    filtered = pd.read_parquet(root / "data/filtered/manifest.parquet")
    accepted = filtered[filtered["filter"] == "accepted"]
    assert sorted(synthetic["id"]) == sorted(accepted["id"])
    assert synthetic.groupby("class_name").size().le(10).all() and (synthetic["filter"] == "accepted").all()
    report = json.loads((root / "metrics/filter.json").read_text())
    assert report["accepted"] == len(synthetic) and report["candidates"] == len(filtered) >= 30
    assert (synthetic["model"] == "cgan").all() and synthetic["checkpoint"].str.len().eq(64).all()
    assert (manifest[manifest["split"] != "train"]["source"] == "real").all()
    assert manifest["id"].is_unique
    assert len(manifest[manifest["split"] == "test"]) == 3000  # the official test images of 3 classes
    card = (root / "data/augmented/card.md").read_text()
    assert f"{len(synthetic)} synthetic training images beside 33 real ones" in card and "## Filter" in card
    images = np.load(root / "data/augmented" / synthetic["shard"].iloc[0])
    assert images.dtype == np.uint8 and images.shape[1:] == (28, 28, 1)
    assert (root / "data/models/generator/samples.png").exists()


def test_denoise_on_cleans_and_scores_the_samples(project):
    """The denoiser applied at full strength (the project's params), every image scored, outliers in the card."""
    root, first = project
    for stage in ("train_scorer", "train_denoiser", "denoise"):
        assert f"Running stage '{stage}'" in first.stdout
    denoised = pd.read_parquet(root / "data/denoised/manifest.parquet")
    assert (denoised["denoise_strength"] == 1).all() and denoised["denoiser"].str.len().eq(64).all()
    shard = denoised["shard"].iloc[0]
    assert not np.array_equal(np.load(root / "data/denoised" / shard), np.load(root / "data/generated" / shard))
    augmented = pd.read_parquet(root / "data/augmented/manifest.parquet")
    assert augmented["outlier_score"].notna().all()
    assert "## Real images with the highest outlier scores" in (root / "data/augmented/card.md").read_text()
    for picture in ("data/augmented/outliers.png", "data/denoised/before_after.png",
                    "data/models/denoiser/denoised.png", "data/models/scorer/reconstructions.png"):
        assert (root / picture).exists(), picture
    measured = json.loads((root / "metrics/train_denoiser.json").read_text())["val"]
    assert {"noisy", "median", "nl_means", "denoiser"} <= set(measured)


def test_cvae_at_full_size_with_denoise_off_and_no_upscaler(project):
    """generator.kind cvae in params is all it takes (with params.yaml's cVAE recipe: the interpolated prior);
    denoise.strength 0 (the default): no denoiser is trained, and denoise passes the samples through
    unchanged; generator.size 28 and upscale.factor 1 (the defaults): no SR net is trained, and upscale
    passes the samples through."""
    root, _ = project
    set_params(root, {"generator.kind": "cvae", "denoise.strength": 0.0, "generator.size": 28, "upscale.factor": 1})
    out = dvc(root, "repro", "assemble")
    assert "Running stage 'train_generator'" in out.stdout and "Running stage 'train_judge'" not in out.stdout
    assert (root / "data/models/generator/metrics.csv").read_text().startswith("step,loss,recon,kl\n")
    saved = torch.load(root / "data/models/generator/generator.pt", weights_only=True)
    train = pd.read_parquet(root / "data/prepared/manifest.parquet").query("split == 'train'")
    assert saved["posterior"]["mix"] == 0.5 and len(saved["posterior"]["labels"]) == len(train)  # interpolated
    assert "Running stage 'train_denoiser'" in out.stdout
    assert [p.name for p in (root / "data/models/denoiser").iterdir()] == ["no_denoiser.txt"]
    denoised = pd.read_parquet(root / "data/denoised/manifest.parquet")
    assert (denoised["denoise_strength"] == 0).all() and denoised["denoiser"].isna().all()
    for shard in denoised["shard"].unique():
        assert (root / "data/denoised" / shard).read_bytes() == (root / "data/generated" / shard).read_bytes()

    assert "Running stage 'train_upscaler'" in out.stdout and "Running stage 'upscale'" in out.stdout
    assert [p.name for p in (root / "data/models/upscaler").iterdir()] == ["no_upscaler.txt"]
    assert json.loads((root / "metrics/train_upscaler.json").read_text()) == {"factor": 1, "upscaler": None}
    upscaled = pd.read_parquet(root / "data/upscaled/manifest.parquet")
    assert (upscaled["upscale_factor"] == 1).all() and upscaled["upscaler"].isna().all()
    for shard in upscaled["shard"].unique():
        assert (root / "data/upscaled" / shard).read_bytes() == (root / "data/denoised" / shard).read_bytes()

    synthetic = pd.read_parquet(root / "data/augmented/manifest.parquet").query("source == 'synthetic'")
    assert 0 < len(synthetic) <= 30 and (synthetic["model"] == "cvae").all() and (synthetic["temperature"] == 1).all()
    assert synthetic["outlier_score"].notna().all()
    assert np.load(root / "data/augmented" / synthetic["shard"].iloc[0]).shape[1:] == (28, 28, 1)


def test_cascade_generates_at_half_size_and_upscales(project):
    """The cascade (the project's params): the generator at 14x14, the samples brought to 28x28 by the SR net."""
    root, first = project
    for stage in ("train_upscaler", "upscale"):
        assert f"Running stage '{stage}'" in first.stdout
    sizes = {name: json.loads((root / f"data/{name}/info.json").read_text())["size"]
             for name in ("prepared", "generated", "denoised", "upscaled", "augmented")}
    assert sizes == {"prepared": 28, "generated": 14, "denoised": 14, "upscaled": 28, "augmented": 28}
    upscaled = pd.read_parquet(root / "data/upscaled/manifest.parquet")
    assert np.load(root / "data/upscaled" / upscaled["shard"].iloc[0]).shape[1:] == (28, 28, 1)
    synthetic = pd.read_parquet(root / "data/augmented/manifest.parquet").query("source == 'synthetic'")
    assert (synthetic["upscale_factor"] == 2).all() and synthetic["upscaler"].str.len().eq(64).all()
    measured = json.loads((root / "metrics/train_upscaler.json").read_text())
    assert measured["factor"] == 2 and set(measured["val"]["area"]) == {"bicubic", "sr", "gain"}
    for picture in ("data/models/upscaler/lr_bicubic_sr_hr.png", "data/upscaled/lr_sr.png"):
        assert (root / picture).exists(), picture


def test_second_repro_does_no_work(project):
    root, _ = project
    manifest = root / "data/augmented/manifest.parquet"
    before = manifest.stat().st_mtime_ns
    again = dvc(root, "repro")
    assert "Running stage" not in again.stdout
    assert manifest.stat().st_mtime_ns == before


def test_param_change_reruns_only_dependent_stages(project):
    root, _ = project
    set_params(root, {"assemble.shard_size": 8})
    out = dvc(root, "repro")
    assert "Running stage 'assemble'" in out.stdout
    for upstream in ("prepare", "train_generator", "generate"):
        assert f"Running stage '{upstream}'" not in out.stdout
    shards = {p.name for p in (root / "data/augmented/images").iterdir()}
    assert "train-real-00004.npy" in shards  # 33 train images, 8 per shard
    set_params(root, {"generate.n": 8})
    out = dvc(root, "repro", "generate")  # generate and what it depends on: not its trainer
    assert "Running stage 'generate'" in out.stdout and "Running stage 'train_generator'" not in out.stdout


def test_prefect_flow_writes_dvc_repro_s_lock_and_a_refusal_is_its_verdict(project, tmp_path):
    """The flow on a new project, two stages at once (the CPU default is one), versioning behind a gate no lift
    can clear: the lock is dvc repro's, and the refusal is the flow's verdict (it completes), with no tag made.
    (That a stage whose deps did not change is skipped: tests/deploy/test_deployment.py.)"""
    root, _ = project
    other = make_project(tmp_path / "other", remote=tmp_path / "remote")
    flow = [sys.executable, "-c", "from flows.augment import augment; augment(max_parallel=2, overrides={"
            "'version.gate.enabled': True, 'version.gate.min_lift': 1.0})"]
    prefect_home = {"PREFECT_HOME": str(tmp_path / "prefect-home")}  # its own ephemeral server and database
    result = run(other, *flow, timeout=900, extra_env=prefect_home)
    assert (other / "dvc.lock").read_text() == (root / "dvc.lock").read_text()
    assert "release gate: refused" in result.stdout + result.stderr
    assert run(other, "git", "tag", "--list").stdout.strip() == ""


def test_version_tags_once_and_a_consumer_gets_it_back(project, tmp_path):
    root, _ = project
    out = run(root, sys.executable, "-m", "components", "version")
    assert "created dataset version dataset-v1" in out.stdout
    assert run(root, "git", "tag", "--list").stdout.split() == ["dataset-v1"]
    again = run(root, sys.executable, "-m", "components", "version")
    assert "no new version" in again.stdout
    assert run(root, "git", "tag", "--list").stdout.split() == ["dataset-v1"]

    # A consumer: dvc get and the Python loaders, through a file:// URL (a git clone, as from a server) and with
    # the project's DVC cache gone, so the bytes can only come from what `version` pushed to the remote.
    shutil.rmtree(root / ".dvc/cache")
    url = (root / "").as_uri()
    dvc(tmp_path, "get", url, "data/augmented", "--rev", "dataset-v1", "-o", "got")
    got = pd.read_parquet(tmp_path / "got/manifest.parquet")
    original = pd.read_parquet(root / "data/augmented/manifest.parquet")
    pd.testing.assert_frame_equal(got, original)
    shards = sorted((root / "data/augmented").rglob("*.npy"))
    assert shards and all((tmp_path / "got" / p.relative_to(root / "data/augmented")).read_bytes() == p.read_bytes()
                          for p in shards)

    from components.data.torch_dataset import ImageDataset
    from components.data.versions import export_imagefolder, load_version

    version = load_version(rev="dataset-v1", repo=url, dest=tmp_path / "loaded")
    assert len(version.manifest) == len(original)
    dataset = ImageDataset(version, split="train")
    image, label = dataset[0]
    assert image.shape == (1, 28, 28) and 0.0 <= float(image.min()) <= float(image.max()) <= 1.0
    assert dataset.class_names[label] == dataset.manifest["class_name"][0]
    count = export_imagefolder(version, tmp_path / "folder", split="train")
    assert count == 33 + 30  # 11 real and 10 generated images a class
    assert sorted(p.name for p in (tmp_path / "folder").iterdir()) == ["Bag", "Sneaker", "Trouser"]


def test_a_failed_dvc_push_versions_nothing_and_says_how_to_fix_it(project):
    """A default remote that cannot take the data (a path under a file): version stops before it commits or
    tags, exits 2 with DVC's reason and the fix; with a working remote the same command versions as usual."""
    root, _ = project
    head = run(root, "git", "rev-parse", "HEAD").stdout
    dvc(root, "remote", "add", "--force", "-d", "broken", "/dev/null/remote")
    failed = run(root, sys.executable, "-m", "components", "version", check=False)
    assert failed.returncode == 2, failed.stdout + failed.stderr
    assert "dvc push failed" in failed.stderr and "dvc remote add -d" in failed.stderr
    assert run(root, "git", "tag", "--list").stdout.split() == []
    assert run(root, "git", "rev-parse", "HEAD").stdout == head
    dvc(root, "remote", "default", "local")
    assert "created dataset version dataset-v1" in run(root, sys.executable, "-m", "components", "version").stdout


def test_killed_repro_resumes_training_to_the_same_generator(tmp_path):
    """kill -9 during train_generator, `dvc repro` again: it resumes from the last checkpoint and ends
    with the generator an uninterrupted run writes."""
    longer = {"train_generator.steps": 60, "train_generator.checkpoint_every": 10}
    straight = make_project(tmp_path / "straight", remote=tmp_path / "remote", overrides=longer)
    dvc(straight, "repro", "train_generator")

    killed = make_project(tmp_path / "killed", remote=tmp_path / "remote", overrides=longer)
    checkpoints = killed / "data/models/generator/checkpoints"
    process = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "train_generator"], cwd=killed, env=env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not (checkpoints / "step-0000020.pt").exists():
        assert process.poll() is None and time.monotonic() < deadline, "training ended before it could be killed"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (killed / "data/models/generator/generator.pt").exists()

    out = dvc(killed, "repro", "train_generator")
    assert "resuming from" in out.stdout + out.stderr
    generator = "data/models/generator/generator.pt"
    assert (killed / generator).read_bytes() == (straight / generator).read_bytes()
