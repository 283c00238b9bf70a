"""Where each stage reads and writes, relative to the repository root, stage by stage in pipeline order: its
output folder (a dvc.yaml out: tests/unit/test_dvc_deps.py checks that the two agree) and the names of the
files in it that other modules read or users look at."""

from pathlib import Path

PARAMS = Path("params.yaml")
DATA = Path("data")
METRICS = Path("metrics")
PLOTS = Path("plots")

PREPARED = DATA / "prepared"

GENERATOR = DATA / "models" / "generator"
GENERATOR_FILE, GENERATOR_GRID = "generator.pt", "samples.png"

# The synthetic samples pass generate -> denoise -> upscale -> filter, each stage writing its own folder.
GENERATED = DATA / "generated"
PLAN = "plan.csv"

SCORER = DATA / "models" / "scorer"
SCORER_FILE, SCORER_GRID = "scorer.pt", "reconstructions.png"
SCORES = SCORER / "scores.parquet"  # the real images' outlier scores, read by filter and assemble

DENOISER = DATA / "models" / "denoiser"
DENOISER_FILE, DENOISER_GRID, DENOISER_NOTE = "denoiser.pt", "denoised.png", "no_denoiser.txt"

DENOISED = DATA / "denoised"
DENOISE_GRID = "before_after.png"

UPSCALER = DATA / "models" / "upscaler"
UPSCALER_FILE, UPSCALER_GRID, UPSCALER_NOTE = "upscaler.pt", "lr_bicubic_sr_hr.png", "no_upscaler.txt"

UPSCALED = DATA / "upscaled"
UPSCALE_GRID = "lr_sr.png"

JUDGE = DATA / "models" / "judge"
JUDGE_FILE = "judge.pt"

FILTERED = DATA / "filtered"
FILTER_REPORT, FILTER_GRID = "filter.json", "filter.png"

AUGMENTED = DATA / "augmented"
CARD, OUTLIERS = "card.md", "outliers.png"

# evaluate: its downstream training runs (a scratch folder DVC does not track: a killed evaluate resumes
# from it) and its plots.
EVALUATION_RUNS = DATA / "evaluation" / "runs"
EVALUATE_PLOTS = PLOTS / "evaluate"


def metrics_file(stage: str) -> Path:
    return METRICS / f"{stage}.json"
