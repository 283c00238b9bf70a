"""Where each stage reads and writes, relative to the repository root; dvc.yaml names the same paths."""

from pathlib import Path

PARAMS = Path("params.yaml")
DATA = Path("data")
PREPARED = DATA / "prepared"
GENERATOR = DATA / "models" / "generator"
GENERATED = DATA / "generated"
AUGMENTED = DATA / "augmented"
METRICS = Path("metrics")
PLOTS = Path("plots")


def metrics_file(stage: str) -> Path:
    return METRICS / f"{stage}.json"
