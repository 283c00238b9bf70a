"""Command line: `python -m components <stage>` runs one pipeline stage; plus `version` and `export`.

STAGES is the one list of the dvc.yaml stage names, each run by components/stages/<name>.py's `run`; a test
keeps the two in step. A stage's module is imported only when that stage runs: a stage process loads what
its own stage needs (torch, or scipy and torchmetrics, only where used), a second or two less per stage.
Errors meant for the user (GenaugError) print as one clear message, without a traceback. A stage and
`version` hold the workspace lock (components/workspace.py) while they run.
"""

import argparse
import ast
import importlib
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from components import paths
from components.config import load_params
from components.errors import GateRefused, GenaugError
from components.workspace import hold

STAGES = ("prepare", "train_generator", "generate", "train_scorer", "train_denoiser", "denoise", "train_upscaler",
          "upscale", "train_judge", "filter", "assemble", "evaluate")
STAGE_FOLDER = Path(__file__).parent / "stages"


def stage(name: str) -> Callable[..., dict]:
    """The function that runs stage `name`, or `version` (its module imported now)."""
    return importlib.import_module(f"components.stages.{name}").run


def summary(module: str) -> str:
    """The first line of a stages module's docstring, read without importing it."""
    text = ast.get_docstring(ast.parse((STAGE_FOLDER / f"{module}.py").read_text())) or ""
    return text.split("\n")[0]


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "export":  # reads a version: no need to hold the workspace
            args.handler(args)
        else:
            with hold(Path("."), f"genaug {args.command}"):
                args.handler(args)
    except GenaugError as exc:
        kind = "" if isinstance(exc, GateRefused) else "error: "  # a verdict, not a fault
        print(f"genaug {args.command}: {kind}{exc}", file=sys.stderr)
        sys.exit(exc.exit_code)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="genaug", description=__doc__.splitlines()[0])
    sub = top.add_subparsers(dest="command", required=True)
    for name in STAGES:
        cmd = sub.add_parser(name, help=summary(name))
        cmd.add_argument("--params", type=Path, default=paths.PARAMS)
        cmd.set_defaults(handler=lambda args, name=name: stage(name)(load_params(args.params)))

    cmd = sub.add_parser("version", help=summary("version"))
    cmd.add_argument("--params", type=Path, default=paths.PARAMS)
    cmd.add_argument("--tag", help="tag name instead of the next <tag_prefix>N")
    cmd.set_defaults(handler=lambda args: stage("version")(load_params(args.params), tag=args.tag))

    cmd = sub.add_parser("export", help="write a dataset version as an ImageFolder tree of PNG files")
    cmd.add_argument("--rev", default=None, help="git revision or tag (default: the workspace)")
    cmd.add_argument("--repo", default=".", help="path or URL of the genaug repository")
    cmd.add_argument("--split", default="train", choices=["train", "val", "test", "all"])
    cmd.add_argument("--out", type=Path, required=True)
    cmd.set_defaults(handler=export)
    return top


def export(args: argparse.Namespace) -> None:
    from components.data.versions import export_imagefolder, load_version

    dataset = load_version(rev=args.rev, repo=args.repo)
    count = export_imagefolder(dataset, args.out, split=None if args.split == "all" else args.split)
    print(f"wrote {count} PNG files under {args.out}")
