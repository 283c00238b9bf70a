"""Command line: `python -m components <stage>` runs one pipeline stage; plus `version` and `export`.

STAGES is the one table from a dvc.yaml stage name to the function that runs it; a test keeps the two
in step. Errors meant for the user (GenaugError) print as one clear message, without a traceback. A stage
and `version` hold the workspace lock (components/workspace.py) while they run.
"""

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from components import paths
from components.config import Params, load_params
from components.errors import GateRefused, GenaugError
from components.stages import (assemble, denoise, evaluate, generate, prepare, train_denoiser, train_generator,
                               train_judge, train_scorer, train_upscaler, upscale, version)
from components.stages import filter as filter_samples
from components.workspace import hold

STAGES: dict[str, Callable[[Params], dict]] = {
    "prepare": prepare.run,
    "train_generator": train_generator.run,
    "generate": generate.run,
    "train_scorer": train_scorer.run,
    "train_denoiser": train_denoiser.run,
    "denoise": denoise.run,
    "train_upscaler": train_upscaler.run,
    "upscale": upscale.run,
    "train_judge": train_judge.run,
    "filter": filter_samples.run,
    "assemble": assemble.run,
    "evaluate": evaluate.run,
}


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
    for name, function in STAGES.items():
        cmd = sub.add_parser(name, help=(sys.modules[function.__module__].__doc__ or "").split("\n")[0])
        cmd.add_argument("--params", type=Path, default=paths.PARAMS)
        cmd.set_defaults(handler=lambda args, function=function: function(load_params(args.params)))

    cmd = sub.add_parser("version", help=version.__doc__.split("\n")[0])
    cmd.add_argument("--params", type=Path, default=paths.PARAMS)
    cmd.add_argument("--tag", help="tag name instead of the next <tag_prefix>N")
    cmd.set_defaults(handler=lambda args: version.run(load_params(args.params), tag=args.tag))

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
