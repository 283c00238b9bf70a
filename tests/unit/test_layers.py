"""The layers of components/ (README, Architecture) hold: no module imports from a layer below it in the list,
so a model never depends on a stage, nor a stage on the Prefect/CLI drivers."""

from pathlib import Path

from tests.unit.test_dvc_deps import imports

REPO = Path(__file__).resolve().parents[2]
LAYERS = [
    {"config", "errors.py", "paths.py", "device.py", "pixels.py", "dvc_cli.py", "fanout.py", "ranks.py"},
    {"data", "models", "metrics", "plots.py", "workspace.py"},
    {"generation", "training"},
    {"stages"},
    {"cli.py", "__main__.py", "pipeline.py"},
]


def layer(path: Path) -> int | None:
    return next((i for i, names in enumerate(LAYERS) if path.parts[1] in names), None)


def test_no_module_imports_from_a_later_layer():
    modules = [p.relative_to(REPO) for p in (REPO / "components").rglob("*.py") if p.name != "__init__.py"]
    unplaced = [str(m) for m in modules if layer(m) is None]
    assert not unplaced, f"modules in no layer (add them to LAYERS and the README's Architecture): {unplaced}"
    upward = [f"{module} -> {dep}" for module in modules for dep in imports(module)
              if dep.name != "__init__.py" and layer(dep) > layer(module)]
    assert not upward, "imports against the layers: " + "; ".join(sorted(upward))
    assert {layer(m) for m in modules} == set(range(len(LAYERS)))  # every layer holds modules
