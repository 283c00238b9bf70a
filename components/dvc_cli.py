"""Running the dvc command line from Python, with this interpreter's environment."""

import json
import os
import subprocess
import sys
from pathlib import Path


def dvc_env() -> dict[str, str]:
    """This interpreter's bin folder first on PATH, so that stage commands (`python -m components ...`)
    run in the same virtual environment as the caller."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def dvc(cwd: Path, *args: str, capture: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, text=True,
                          capture_output=capture, env=dvc_env())


def dvc_json(cwd: Path, *args: str) -> dict:
    """`dvc <args> --json`, parsed; raises RuntimeError with dvc's message on failure."""
    result = dvc(cwd, *args, "--json")
    if result.returncode != 0:
        raise RuntimeError(f"dvc {' '.join(args)} failed: {result.stderr.strip() or result.stdout.strip()}")
    return json.loads(result.stdout or "{}")
