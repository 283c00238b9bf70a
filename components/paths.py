"""Where each stage reads and writes, relative to the repository root; dvc.yaml names the same paths."""

from pathlib import Path

PARAMS = Path("params.yaml")
DATA = Path("data")
PREPARED = DATA / "prepared"
GENERATOR = DATA / "models" / "generator"
DENOISER = DATA / "models" / "denoiser"
UPSCALER = DATA / "models" / "upscaler"
SCORER = DATA / "models" / "scorer"
JUDGE = DATA / "models" / "judge"
# The synthetic samples pass generate -> denoise -> upscale -> filter, each stage writing its own folder.
GENERATED = DATA / "generated"
DENOISED = DATA / "denoised"
UPSCALED = DATA / "upscaled"
FILTERED = DATA / "filtered"
AUGMENTED = DATA / "augmented"
# evaluate: its downstream training runs (a scratch folder DVC does not track: a killed evaluate resumes
# from it) and its plots.
EVALUATION_RUNS = DATA / "evaluation" / "runs"
EVALUATE_PLOTS = Path("plots") / "evaluate"
# The model files the training stages write into their folders (and later stages read).
GENERATOR_FILE, GENERATOR_GRID = "generator.pt", "samples.png"
METRICS = Path("metrics")
PLOTS = Path("plots")


def metrics_file(stage: str) -> Path:
    return METRICS / f"{stage}.json"
