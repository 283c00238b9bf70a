"""dvc.yaml's code deps cannot drift from the code: every module of components/ that a stage imports (directly
or through other components modules) is a dep of that stage, as a file or inside a listed folder (otherwise a
change to that module would leave `dvc repro` thinking the stage is up to date), and every code dep listed is
imported (otherwise an unrelated change would re-run it)."""

import ast
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def module_file(name: str) -> Path | None:
    """The file of a components.* module or package, relative to the repo; None for anything else."""
    if name != "components" and not name.startswith("components."):
        return None
    base = REPO / name.replace(".", "/")
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.exists():
            return path.relative_to(REPO)
    return None


def imports(path: Path) -> set[Path]:
    """The components files `path` imports (`from components.x import y` counts y when it is a module)."""
    found = set()
    for node in ast.walk(ast.parse((REPO / path).read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(f for f in map(module_file, names) if f is not None)
    return found


def closure(start: Path) -> set[Path]:
    seen, todo = set(), [start]
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(imports(path))
    return seen


def covered(path: Path, deps: list[str]) -> bool:
    return any(path == Path(dep) or Path(dep) in path.parents for dep in deps)


def test_every_module_a_stage_imports_is_a_dep():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    missing, stale = {}, {}
    for name, stage in stages.items():
        deps = [d for d in stage["deps"] if isinstance(d, str)]
        used = closure(Path(f"components/stages/{name}.py"))
        # The package markers hold no logic; the CLI table and __main__ dispatch only.
        used = {p for p in used if p.name != "__init__.py" and p.parts[1:] not in (("cli.py",), ("__main__.py",))}
        gaps = sorted(str(p) for p in used if not covered(p, deps))
        if gaps:
            missing[name] = gaps
        unused = [d for d in deps if d.startswith("components/") and not any(covered(p, [d]) for p in used)]
        if unused:
            stale[name] = unused
    assert not missing, f"dvc.yaml misses these code deps (stage: modules it imports): {missing}"
    assert not stale, f"dvc.yaml lists code the stage does not import (stage: deps): {stale}"


def test_the_import_walk_finds_indirect_imports():
    used = closure(Path("components/stages/train_generator.py"))
    assert Path("components/training/gan.py") in used          # direct
    assert Path("components/training/rundir.py") in used       # through training/fit.py
    assert Path("components/pixels.py") in used                # through training/fit.py


def test_every_stage_writes_where_paths_py_says():
    """dvc.yaml's outs are the folders components/paths.py names (the stages write through those names), one
    stage each, and each stage's metrics file is paths.metrics_file(stage)."""
    from components import paths
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    named = {value for value in vars(paths).values() if isinstance(value, Path)}
    outs = {}
    for name, stage in stages.items():
        for out in stage.get("outs", []):
            outs[Path(next(iter(out)) if isinstance(out, dict) else out)] = name
        metrics = [Path(next(iter(m)) if isinstance(m, dict) else m) for m in stage.get("metrics", [])]
        assert metrics == [paths.metrics_file(name)], name
    assert set(outs) <= named, f"dvc.yaml outs that components/paths.py does not name: {set(outs) - named}"
    data = {p for p in named if p.parts[0] == "data" and len(p.parts) > 1} - {paths.EVALUATION_RUNS}
    stray = {p for p in data if not covered(p, [str(out) for out in outs])}
    assert not stray, f"paths of components/paths.py that no stage outputs: {stray}"
